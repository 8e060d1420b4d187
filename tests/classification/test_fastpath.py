"""The GPU-resident fast path gives the same views as the torchvision DataLoader path."""
import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from classification.data import CIFAR_MEAN, CIFAR_STD, cifar_transforms
from classification.fastpath import DeviceData, crop_flip


def _images(n=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def test_crop_flip_equals_torchvision_for_same_parameters():
    imgs = _images()
    padded = torch.nn.functional.pad(torch.from_numpy(imgs), (0, 0, 4, 4, 4, 4))
    oy, ox = torch.tensor([0, 8, 3, 5, 1, 7]), torch.tensor([8, 0, 4, 2, 6, 1])
    flip = torch.tensor([True, False, True, False, False, True])
    ours = crop_flip(padded, oy, ox, flip, 32)
    for i in range(len(imgs)):
        pil = TF.pad(Image.fromarray(imgs[i]), 4)  # RandomCrop(32, padding=4) pads with 0
        ref = TF.crop(pil, int(oy[i]), int(ox[i]), 32, 32)
        if flip[i]:
            ref = TF.hflip(ref)
        assert np.array_equal(np.asarray(ref), ours[i].numpy()), i


def test_normalisation_equals_totensor_normalize():
    imgs, labels = _images(), np.arange(6)
    dd = DeviceData(imgs, labels, (CIFAR_MEAN[10], CIFAR_STD[10]), "cpu", augment=False)
    x, y, idx = dd.batch(torch.arange(6))
    ref = torch.stack([cifar_transforms(10, train=False)(Image.fromarray(im)) for im in imgs])
    torch.testing.assert_close(x, ref, rtol=0, atol=1e-5)
    assert torch.equal(y, torch.arange(6)) and torch.equal(idx, torch.arange(6))


def test_augmented_views_cover_all_offsets_and_flips():
    torch.manual_seed(0)
    imgs = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    imgs[0, 0, 0] = 255  # one bright corner pixel reveals the offset and the flip
    dd = DeviceData(imgs, np.zeros(1), ((0, 0, 0), (1, 1, 1)), "cpu", augment=True)
    seen = set()
    for _ in range(2000):
        x, _, _ = dd.batch(torch.zeros(1, dtype=torch.long))
        pos = torch.nonzero(x[0, 0] > 0.5)
        seen.add(tuple(pos[0].tolist()) if len(pos) else None)
    # pixel (0, 0) lands at row oy' in 0..4 and column in 0..4 or 27..31 (flipped), or is cropped away
    rows = {p[0] for p in seen if p}
    cols = {p[1] for p in seen if p}
    assert rows == set(range(5)) and cols == set(range(5)) | set(range(27, 32)) and None in seen
