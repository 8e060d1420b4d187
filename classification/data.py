"""Datasets for classification, each item ``(image, label, index)``: the index addresses the
prediction bank row of that sample.

Formats: torchvision's CIFAR-10/100 folders (``download=true`` only when asked), scikit-learn's
bundled ``digits`` (1,797 real 8x8 images; the offline demo), and ``cifar10_npz``: the JPEG copy
of CIFAR-10 that ../shared/data holds (see its README) for tests and reduced-scale runs.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import io
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from core.cli import UserError, did_you_mean
from core.sampler import EpochSampler  # noqa: F401  (re-exported: classification's sampler lives in core)

DATASETS = ["cifar10", "cifar100", "cifar10_npz", "digits", "imagenet"]  # + register_dataset()
_CUSTOM: dict = {}


def register_dataset(name: str, in_channels: int = 3):
    """Plug in your own dataset: decorate a function ``fn(root, augment) -> (train, train_eval,
    test, num_classes)`` whose datasets yield ``(image tensor, int label)`` (train with training
    transforms, train_eval the same images without augmentation). Then ``data.name=<name>`` works
    everywhere; put the module in the config's ``imports`` so a fresh process registers it."""
    def deco(fn):
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} registered twice")
        DATASETS.append(name)
        _CUSTOM[name] = fn
        if in_channels != 3:
            IN_CHANNELS[name] = in_channels
        return fn
    return deco
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "cifar10_npz": 10, "digits": 10}  # imagenet: from its folders
IN_CHANNELS = {"digits": 1}

# Per-channel statistics of the CIFAR training sets (the usual values in CIFAR code bases).
CIFAR_MEAN = {10: (0.4914, 0.4822, 0.4465), 100: (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {10: (0.2470, 0.2435, 0.2616), 100: (0.2673, 0.2564, 0.2762)}
# What the official PS-KD code normalises with (loader/custom_dataloader.py): CIFAR-10 with
# (125.3, 123.0, 113.9) / 255 and (63.0, 62.1, 66.7) / 255, its own statistics to 3e-4; CIFAR-100
# with (0.4914, 0.4822, 0.4465) / (0.2023, 0.1994, 0.2010), CIFAR-10's mean and a std copied
# among CIFAR-10 training scripts (CIFAR-10's pixel std is 0.247, 0.243, 0.261), not CIFAR-100's:
# its inputs come out about 1.3x wider than unit variance.
PSKD_CIFAR_MEAN = {10: (125.3 / 255, 123.0 / 255, 113.9 / 255), 100: (0.4914, 0.4822, 0.4465)}
PSKD_CIFAR_STD = {10: (63.0 / 255, 62.1 / 255, 66.7 / 255), 100: (0.2023, 0.1994, 0.2010)}
# data.normalization: "own" = the dataset's own statistics, "official" = the official code's
CIFAR_NORMALIZATIONS = ("own", "official")


def cifar_normalization(num_classes: int, kind: str = "own") -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per RGB channel for CIFAR-``num_classes`` (10 or 100): ``own`` statistics of
    its training set or the ``official`` PS-KD code's constants."""
    if kind not in CIFAR_NORMALIZATIONS:
        raise ValueError(f"unknown CIFAR normalization {kind!r}; expected one of {', '.join(CIFAR_NORMALIZATIONS)}")
    if num_classes not in CIFAR_MEAN:
        raise ValueError(f"no CIFAR statistics for {num_classes} classes; expected 10 or 100")
    if kind == "official":
        return PSKD_CIFAR_MEAN[num_classes], PSKD_CIFAR_STD[num_classes]
    return CIFAR_MEAN[num_classes], CIFAR_STD[num_classes]


class Indexed(Dataset):
    """Wrap a dataset of (x, y) so items are (x, y, i)."""

    def __init__(self, base, indices=None):
        self.base = base
        self.indices = list(range(len(base))) if indices is None else list(indices)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        x, y = self.base[self.indices[i]]
        return x, int(y), i


class ArrayImages(Dataset):
    """uint8 images (N, H, W, C) + labels held in memory, with a torchvision transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels.astype(np.int64), transform
        self.targets = self.labels.tolist()

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


class DigitsTensor(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y
        self.targets = y.tolist()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])


def cifar_transforms(num_classes: int, train: bool, augment: bool = True, normalization: str = "own"):
    import torchvision.transforms as T
    norm = [T.ToTensor(), T.Normalize(*cifar_normalization(num_classes, normalization))]
    if train and augment:  # Sec. 3.1: 32x32 random crop after 4-pixel padding, horizontal flip
        return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), *norm])
    return T.Compose(norm)


def load_cifar10_npz(path: Path, split: str, indices=None):
    """Decode the shared JPEG copy: uint8 (N, 32, 32, 3) images and (N,) labels. With `indices`,
    only those images are decoded (the others stay zero), so a 2,000-image subset does not pay
    for decoding all 50,000."""
    from PIL import Image
    with np.load(path) as z:
        buf, off, labels = z[f"{split}_jpeg"], z[f"{split}_offsets"], z[f"{split}_labels"]

    def decode(i):
        return np.asarray(Image.open(io.BytesIO(buf[off[i]:off[i + 1]].tobytes())).convert("RGB"))
    if indices is None:
        return np.stack([decode(i) for i in range(len(labels))]), labels
    indices = list(indices)
    first = decode(indices[0]) if indices else np.zeros((32, 32, 3), np.uint8)
    imgs = np.zeros((len(labels), *first.shape), dtype=np.uint8)
    for i in indices:
        imgs[i] = decode(i)
    return imgs, labels


def npz_length(path: Path, split: str) -> int:
    with np.load(path) as z:
        return len(z[f"{split}_labels"])


# AlexNet-style PCA lighting noise (Krizhevsky et al. 2012), with the eigen decomposition of
# ImageNet's RGB covariance used by fb.resnet.torch and the CutMix/PS-KD ImageNet code.
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_PCA_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
_PCA_EIGVEC = torch.tensor([[-0.5675, 0.7192, 0.4009],
                            [-0.5808, -0.0045, -0.8140],
                            [-0.5836, -0.6948, 0.4203]])


class Lighting:
    """Add PCA-based RGB noise with std alphastd to a (3, H, W) tensor in [0, 1]."""

    def __init__(self, alphastd: float = 0.1):
        self.alphastd = alphastd

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if self.alphastd == 0:
            return img
        alpha = torch.empty(3).normal_(0, self.alphastd)
        rgb = (_PCA_EIGVEC * alpha * _PCA_EIGVAL).sum(1)
        return img + rgb.view(3, 1, 1)


def imagenet_transforms(train: bool, augment: bool = True):
    """Sec. 3.2 / Appendix B.1: random resized crop 224, flip, colour jitter 0.4, lighting 0.1;
    evaluation: resize 256, centre crop 224."""
    import torchvision.transforms as T
    norm = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    if train and augment:
        return T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(),
                          T.ColorJitter(0.4, 0.4, 0.4), T.ToTensor(), Lighting(0.1), norm])
    return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])


class CorruptImageError(UserError):
    pass


def _load_image(path: str):
    from PIL import Image, UnidentifiedImageError
    try:
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise CorruptImageError(f"corrupt image {path}: {type(e).__name__}") from None


def _imagefolder(root: Path, split: str, transform):
    import torchvision
    folder = root / split
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset path not found: {folder} (expected an ImageFolder with one folder per class)")
    return torchvision.datasets.ImageFolder(str(folder), transform=transform, loader=_load_image)


def _digits_split():
    """Fixed 1437 / 360 split of scikit-learn's digits (permutation with seed 0)."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.5) / 0.5
    y = torch.tensor(d.target, dtype=torch.int64)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, te = perm[:1437], perm[1437:]
    return DigitsTensor(x[tr], y[tr]), DigitsTensor(x[te], y[te])


REPO_ROOT = Path(__file__).resolve().parents[1]
NPZ_NAME = "cifar10_jpeg.npz"  # the CIFAR-10 JPEG copy's file name (../shared/data/README.md)


def relative_to_what(path: Path) -> str:
    """For the message about a missing data path: nothing for an absolute path; for a relative one,
    that it was taken relative to the current working directory (as every relative path in a
    config: not the config file's folder, not the repository), the absolute path tried, and
    whether the path exists relative to the repository root instead (the committed configs'
    ``../shared/data/...`` paths are written for a run from the repository root)."""
    if path.is_absolute():
        return ""
    cwd = Path.cwd()
    msg = f" (relative to the current working directory {cwd}: tried {os.path.abspath(path)}"
    if (REPO_ROOT / path).exists() and REPO_ROOT.resolve() != cwd.resolve():
        msg += (f"; it exists relative to the repository root {REPO_ROOT}: run from there or give "
                f"data.root={(REPO_ROOT / path).resolve()}")
    return msg + ")"


def check_data_path(name: str, root: str, download: bool) -> None:
    """Fail early, before any run directory exists, with a one-line message. A relative root is
    relative to the current working directory; the message says so (relative_to_what)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; expected one of {', '.join(DATASETS)}")
    if name == "digits" or name in _CUSTOM:
        return  # a registered dataset checks its own root
    p = Path(root)
    if name == "imagenet":
        for split in ("train", "val"):
            if not (p / split).is_dir():
                raise FileNotFoundError(f"dataset path not found: {p / split}{relative_to_what(p / split)} "
                                        f"(expected ImageFolder train/ and val/)")
        return
    if name == "cifar10_npz":
        if p.is_dir():  # the folder that holds the file rather than the file
            there = "it is in that folder" if (p / NPZ_NAME).is_file() else "that folder has none"
            raise FileNotFoundError(f"data.root={p} is a folder; data.name=cifar10_npz reads the file itself, "
                                    f"data.root={p / NPZ_NAME} ({there})")
        if not p.is_file():
            raise FileNotFoundError(f"dataset file not found: {p}{relative_to_what(p)} (expected {NPZ_NAME})")
        need = [f"{s}_{k}" for s in ("train", "test") for k in ("jpeg", "offsets", "labels")]
        try:
            with np.load(p) as z:
                missing = [k for k in need if k not in z.files]
        except Exception as e:  # not a zip, truncated, ...
            raise FileNotFoundError(f"dataset file {p} is not a readable .npz ({type(e).__name__}); "
                                    f"expected cifar10_jpeg.npz") from None
        if missing:
            raise FileNotFoundError(f"dataset file {p} lacks {', '.join(missing)} (expected the layout of "
                                    f"cifar10_jpeg.npz, see ../shared/data/README.md)")
        return
    folder = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[name]
    if not download and not (p / folder).is_dir():
        if p.name == folder and p.is_dir():  # the data folder itself rather than the one holding it
            raise FileNotFoundError(f"data.root={p} is the {name} folder itself; data.root is the folder "
                                    f"that holds {folder}/: data.root={p.parent}")
        raise FileNotFoundError(f"dataset path not found: {p / folder}{relative_to_what(p / folder)} "
                                f"(set data.root, or data.download=true to fetch {name})")


@dataclass
class DataConfig:
    name: str = "cifar100"
    root: str = "data/cifar100"
    download: bool = False
    augment: bool = True
    num_workers: int = 4
    train_subset: int = 0  # >0: a fixed random subset of n training images (quick runs, tests)
    test_subset: int = 0
    holdout_fraction: float = 0.0  # >0: evaluate on a random holdout of the training set instead of test
    holdout_seed: int = 0
    # Fit: each epoch, evaluate a fixed random subset of this many *un-augmented* training images
    # (fit_* keys of the epoch line); -1 = the whole training set, 0 = off.
    fit_subset: int = 2000
    on_device: bool = False  # fast path: uint8 CIFAR resident on the device, augmented there
    # CIFAR input statistics: own (the dataset's) or official (the official PS-KD code's constants:
    # CIFAR-100 normalised with CIFAR-10's mean and a copied std; cifar_normalization)
    normalization: str = "own"


def _base_datasets(data: DataConfig, normalization: str = "own"):
    """(train with training transforms, train with eval transforms, test, num_classes) of a `data`
    config section. ``normalization``: CIFAR's statistics, ``cifar_normalization``'s ``kind``."""
    name, root, download, augment = data.name, data.root, data.download, data.augment
    train_subset, test_subset = data.train_subset, data.test_subset
    if name in _CUSTOM:
        return _CUSTOM[name](root, augment)
    if name == "digits":
        train, test = _digits_split()
        return train, train, test, 10
    if name == "imagenet":
        p = Path(root)
        train = _imagefolder(p, "train", imagenet_transforms(True, augment))
        train_eval = _imagefolder(p, "train", imagenet_transforms(False))
        return train, train_eval, _imagefolder(p, "val", imagenet_transforms(False)), len(train.classes)
    k = NUM_CLASSES[name]
    if name == "cifar10_npz":
        n_train, n_test = npz_length(Path(root), "train"), npz_length(Path(root), "test")
        imgs, labels = load_cifar10_npz(Path(root), "train", _subset(n_train, train_subset))
        train = ArrayImages(imgs, labels, cifar_transforms(10, True, augment, normalization))
        train_eval = ArrayImages(imgs, labels, cifar_transforms(10, False, normalization=normalization))
        test = ArrayImages(*load_cifar10_npz(Path(root), "test", _subset(n_test, test_subset)),
                           cifar_transforms(10, False, normalization=normalization))
        return train, train_eval, test, k
    import torchvision
    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    train = cls(root, train=True, download=download, transform=cifar_transforms(k, True, augment, normalization))
    train_eval = cls(root, train=True, download=False, transform=cifar_transforms(k, False, normalization=normalization))
    test = cls(root, train=False, download=download, transform=cifar_transforms(k, False, normalization=normalization))
    return train, train_eval, test, k


def holdout_split(n: int, fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """A random (train, holdout) split of range(n), holdout = round(fraction * n) samples
    (Sec. 3.1: alpha_T is chosen on a random 10% of the training set)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    k = max(1, round(fraction * n))
    return sorted(perm[k:]), sorted(perm[:k])


def build_datasets(data: DataConfig, normalization: str | None = None):
    """(train, eval, fit, num_classes) of a `data` config section: datasets of (x, y, index) items.
    With holdout_fraction > 0 the eval set is a random holdout of the training set (eval
    transforms) and train is the rest. fit: a fixed random subset of `fit_subset` training images
    (all of them if it is < 0) with the eval transforms (no augmentation), to measure how well the
    model fits its training data; None when fit_subset == 0. normalization: "own" or "official"
    (``cifar_normalization``), CIFAR only; None = data.normalization."""
    normalization = data.normalization if normalization is None else normalization
    check_data_path(data.name, data.root, data.download)
    if normalization not in CIFAR_NORMALIZATIONS:
        raise ValueError(f"unknown data.normalization {normalization!r}; expected one of "
                         f"{', '.join(CIFAR_NORMALIZATIONS)}")
    train, train_eval, test, k = _base_datasets(data, normalization)
    tr_idx = _subset(len(train), data.train_subset)
    if data.holdout_fraction:
        keep, ho = holdout_split(len(tr_idx), data.holdout_fraction, data.holdout_seed)
        tr_idx, eval_set = [tr_idx[i] for i in keep], Indexed(train_eval, [tr_idx[i] for i in ho])
    else:
        eval_set = Indexed(test, _subset(len(test), data.test_subset))
    fit = None
    if data.fit_subset:
        fit = Indexed(train_eval, [tr_idx[i] for i in _subset(len(tr_idx), max(data.fit_subset, 0))])
    return Indexed(train, tr_idx), eval_set, fit, k


def unused_train_images(data: DataConfig, n: int, seed: int = 0, normalization: str | None = None):
    """`n` un-augmented training images the run did not train on, as (x, y, index) items: a fixed
    random draw (`seed`) from the training images outside its `data.train_subset`. Held-out data
    for post-hoc calibration of a run trained on a subset without a holdout: its model never saw
    them, and they are not test images. Which images the run trained on does not change."""
    normalization = data.normalization if normalization is None else normalization
    if data.holdout_fraction:
        raise ValueError("the run has a holdout of its own (data.holdout_fraction > 0): "
                         "post-hoc calibration fits on it")
    check_data_path(data.name, data.root, data.download)
    plain = replace(data, augment=False, train_subset=0)
    if data.name == "cifar10_npz":  # only the decoded images are held: decode the chosen ones
        n_train, train_eval = npz_length(Path(data.root), "train"), None
    else:
        train_eval = _base_datasets(plain, normalization)[1]
        n_train = len(train_eval)
    used = set(_subset(n_train, data.train_subset))
    rest = [i for i in range(n_train) if i not in used]
    if not 0 < n <= len(rest):
        raise ValueError(f"{n} calibration images asked for; the run trained on {len(used)} of "
                         f"{n_train} training images, {len(rest)} are left")
    perm = torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed))[:n].tolist()
    pick = sorted(rest[j] for j in perm)
    if train_eval is None:
        imgs, labels = load_cifar10_npz(Path(data.root), "train", pick)
        train_eval = ArrayImages(imgs, labels, cifar_transforms(10, False, normalization=normalization))
    return Indexed(train_eval, pick)


def _subset(n: int, size: int) -> list[int]:
    """A fixed random subset of range(n) (seed 0, whatever the run's seed), in dataset order; all
    of it when size <= 0. Random, not the first items: some copies (the shared CIFAR-10 JPEG
    file) are sorted by class."""
    if size <= 0 or size >= n:
        return list(range(n))
    return sorted(torch.randperm(n, generator=torch.Generator().manual_seed(0))[:size].tolist())
