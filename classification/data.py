"""Datasets for classification, each item ``(image, label, index)``: the index addresses the
prediction bank row of that sample.

Formats: torchvision's CIFAR-10/100 folders (``download=true`` only when asked), scikit-learn's
bundled ``digits`` (1,797 real 8x8 images; the offline demo), and ``cifar10_npz``: the JPEG copy
of CIFAR-10 that ../shared/data holds (see its README) for tests and reduced-scale runs.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

DATASETS = ("cifar10", "cifar100", "cifar10_npz", "digits")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "cifar10_npz": 10, "digits": 10}
IN_CHANNELS = {"digits": 1}

# Per-channel statistics of the CIFAR training sets (the usual values in CIFAR code bases).
CIFAR_MEAN = {10: (0.4914, 0.4822, 0.4465), 100: (0.5071, 0.4865, 0.4409)}
CIFAR_STD = {10: (0.2470, 0.2435, 0.2616), 100: (0.2673, 0.2564, 0.2762)}


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


def cifar_transforms(num_classes: int, train: bool, augment: bool = True):
    import torchvision.transforms as T
    norm = [T.ToTensor(), T.Normalize(CIFAR_MEAN[num_classes], CIFAR_STD[num_classes])]
    if train and augment:  # Sec. 3.1: 32x32 random crop after 4-pixel padding, horizontal flip
        return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), *norm])
    return T.Compose(norm)


def load_cifar10_npz(path: Path, split: str):
    """Decode the shared JPEG copy: uint8 (N, 32, 32, 3) images and (N,) labels."""
    from PIL import Image
    with np.load(path) as z:
        buf, off, labels = z[f"{split}_jpeg"], z[f"{split}_offsets"], z[f"{split}_labels"]
    imgs = np.stack([np.asarray(Image.open(io.BytesIO(buf[off[i]:off[i + 1]].tobytes())).convert("RGB"))
                     for i in range(len(labels))])
    return imgs, labels


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


def check_data_path(name: str, root: str, download: bool) -> None:
    """Fail early, before any run directory exists, with a one-line message."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if name == "digits":
        return
    p = Path(root)
    if name == "cifar10_npz":
        if not p.is_file():
            raise FileNotFoundError(f"dataset file not found: {p} (expected cifar10_jpeg.npz)")
        return
    folder = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[name]
    if not download and not (p / folder).is_dir():
        raise FileNotFoundError(f"dataset path not found: {p / folder} (set data.root, or data.download=true to fetch {name})")


def build_datasets(name: str, root: str = "", download: bool = False, augment: bool = True,
                   train_subset: int = 0, test_subset: int = 0):
    """(train, test) datasets of (x, y, index) items, and the number of classes."""
    check_data_path(name, root, download)
    k = NUM_CLASSES[name]
    if name == "digits":
        train, test = _digits_split()
    elif name == "cifar10_npz":
        train = ArrayImages(*load_cifar10_npz(Path(root), "train"), cifar_transforms(10, True, augment))
        test = ArrayImages(*load_cifar10_npz(Path(root), "test"), cifar_transforms(10, False))
    else:
        import torchvision
        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        train = cls(root, train=True, download=download, transform=cifar_transforms(k, True, augment))
        test = cls(root, train=False, download=download, transform=cifar_transforms(k, False))
    # Subsets take the first n items: a fixed, seed-independent slice for quick runs and tests.
    tr_idx = range(min(train_subset, len(train))) if train_subset > 0 else None
    te_idx = range(min(test_subset, len(test))) if test_subset > 0 else None
    return Indexed(train, tr_idx), Indexed(test, te_idx), k
