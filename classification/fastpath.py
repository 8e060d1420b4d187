"""The fast path for CIFAR-size data: the whole uint8 training set resident on the training
device, random crop (4-pixel zero padding), horizontal flip and normalisation done there in batch
(Cutout/CutMix run in classification.augment, on the same device). Same distribution of views as
the DataLoader path (torchvision RandomCrop(32, padding=4) + RandomHorizontalFlip + ToTensor +
Normalize); tests/classification/test_fastpath.py checks the two give identical pixels for the same
crop offsets and flips.
"""
from __future__ import annotations

import numpy as np
import torch

from core.cli import UserError


def crop_flip(padded: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    """padded: (B, H + 2p, W + 2p, C) uint8; oy, ox: (B,) offsets in [0, 2p]; flip: (B,) bool.
    Returns (B, size, size, C): the crop at (oy, ox), mirrored left-right where flip. One gather."""
    b = padded.shape[0]
    ar = torch.arange(size, device=padded.device)
    rows = oy[:, None] + ar  # (B, size)
    cols = ox[:, None] + torch.where(flip[:, None], size - 1 - ar, ar)  # flip before the offset
    bi = torch.arange(b, device=padded.device)[:, None, None]
    return padded[bi, rows[:, :, None], cols[:, None, :]]


class DeviceData:
    """uint8 images (N, H, W, C) and labels on `device`, served as normalised float batches."""

    def __init__(self, images, labels, stats, device, augment: bool = True, pad: int = 4):
        """stats: the (mean, std) per channel of the normalisation."""
        mean, std = stats
        self.device = torch.device(device)
        imgs = torch.as_tensor(np.asarray(images))
        self.size = imgs.shape[1]
        self.pad = pad if augment else 0
        # pad once, in uint8, with zeros: what RandomCrop(padding=4) does to the PIL image
        self.images = torch.nn.functional.pad(imgs, (0, 0, self.pad, self.pad, self.pad, self.pad)).to(self.device)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).to(self.device)
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255
        self.augment = augment

    def __len__(self):
        return len(self.labels)

    def batch(self, idx: torch.Tensor, channels_last: bool = False):
        """(x, y, idx) for dataset indices idx (a (B,) tensor), augmented on the device."""
        idx = idx.to(self.device)
        b = len(idx)
        if self.augment:
            oy = torch.randint(0, 2 * self.pad + 1, (b,), device=self.device)
            ox = torch.randint(0, 2 * self.pad + 1, (b,), device=self.device)
            flip = torch.rand(b, device=self.device) < 0.5
            imgs = crop_flip(self.images[idx], oy, ox, flip, self.size)
        else:
            imgs = self.images[idx]
        x = (imgs.permute(0, 3, 1, 2).float() - self.mean) / self.std
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[idx], idx

    def batches(self, order: list[int], batch_size: int, channels_last: bool = False):
        order_t = torch.as_tensor(order, dtype=torch.long)
        for s in range(0, len(order_t), batch_size):
            yield self.batch(order_t[s:s + batch_size], channels_last)


def device_data_from(indexed, mean, std, device, augment=True) -> DeviceData:
    """Build DeviceData from an Indexed CIFAR-style dataset (torchvision CIFAR or ArrayImages)."""
    base = indexed.base
    images = getattr(base, "data", None)
    if images is None:
        images = getattr(base, "images", None)
    if images is None or np.asarray(images).dtype != np.uint8:
        raise UserError(f"data.on_device=true needs uint8 CIFAR-style images; {type(base).__name__} has none "
                        "(set data.on_device=false)")
    sel = np.asarray(indexed.indices)
    labels = np.asarray(base.targets)[sel]
    return DeviceData(np.asarray(images)[sel], labels, (mean, std), device, augment)
