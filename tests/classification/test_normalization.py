"""classification.data's CIFAR normalisation: the dataset's own statistics (default) or the
official PS-KD code's constants (CIFAR-100 normalised with CIFAR-10's mean and a copied std)."""
import pytest
import torch

from classification.data import (CIFAR_MEAN, CIFAR_STD, DataConfig, build_datasets, cifar_normalization,
                                 cifar_transforms)


def test_official_constants_are_the_official_loaders():
    # loader/custom_dataloader.py of the official code, as written there
    assert cifar_normalization(100, "official") == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    mean, std = cifar_normalization(10, "official")
    assert mean == pytest.approx([x / 255 for x in (125.3, 123.0, 113.9)])
    assert std == pytest.approx([x / 255 for x in (63.0, 62.1, 66.7)])
    assert mean == pytest.approx(CIFAR_MEAN[10], abs=3e-4) and std == pytest.approx(CIFAR_STD[10], abs=3e-4)
    assert cifar_normalization(100) == (CIFAR_MEAN[100], CIFAR_STD[100])
    with pytest.raises(ValueError, match="'cifar10'"):
        cifar_normalization(100, "cifar10")
    with pytest.raises(ValueError, match="10 or 100"):
        cifar_normalization(20)


def test_transform_normalises_with_the_chosen_statistics():
    from PIL import Image
    img = Image.new("RGB", (32, 32), (200, 100, 50))
    x = torch.tensor([200, 100, 50]) / 255
    for kind in ("own", "official"):
        mean, std = cifar_normalization(100, kind)
        out = cifar_transforms(100, train=False, normalization=kind)(img)
        torch.testing.assert_close(out[:, 0, 0], (x - torch.tensor(mean)) / torch.tensor(std))


def test_build_datasets_option(shared_data):
    npz = str(shared_data / "cifar10-jpeg/cifar10_jpeg.npz")
    data = DataConfig(name="cifar10_npz", root=str(npz), augment=False, train_subset=4, test_subset=4)
    own = build_datasets(data)
    off = build_datasets(data, normalization="official")
    a, b = own[1][0][0], off[1][0][0]  # the same test image under both
    (m0, s0), (m1, s1) = cifar_normalization(10), cifar_normalization(10, "official")
    pixels = a * torch.tensor(s0)[:, None, None] + torch.tensor(m0)[:, None, None]
    torch.testing.assert_close(b, (pixels - torch.tensor(m1)[:, None, None]) / torch.tensor(s1)[:, None, None])
    with pytest.raises(ValueError, match="data.normalization"):
        build_datasets(DataConfig(name="cifar10_npz", root=str(npz), train_subset=4, test_subset=4),
                       normalization="cifar10")


def test_config_key_selects_the_statistics(shared_data, tmp_path):
    """data.normalization reaches the datasets (and the config check): the CIFAR-100 paper configs
    follow the official code, every other config keeps its dataset's own statistics."""
    from pathlib import Path

    from classification.train import TrainConfig, validate
    from core.config import ConfigError, load_config
    configs = Path(__file__).resolve().parents[2] / "classification/configs"
    assert load_config(TrainConfig, configs / "table1_resnet50_selfkd.yaml").data.normalization == "official"
    assert load_config(TrainConfig, configs / "demo_digits.yaml").data.normalization == "own"
    npz = str(shared_data / "cifar10-jpeg/cifar10_jpeg.npz")
    data = DataConfig(name="cifar10_npz", root=npz, augment=False, train_subset=4, test_subset=4)
    own = build_datasets(data)[1][0][0]
    data.normalization = "official"
    torch.testing.assert_close(build_datasets(data)[1][0][0], build_datasets(data, "official")[1][0][0])
    assert not torch.equal(build_datasets(data)[1][0][0], own)
    cfg = load_config(TrainConfig, configs / "demo_digits.yaml", ["data.normalization=cifar10"])
    with pytest.raises(ConfigError, match="data.normalization must be one of"):
        validate(cfg)
