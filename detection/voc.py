"""PASCAL VOC from a VOCdevkit folder: Annotation XML, ImageSets/Main lists, several (year, split)
pairs concatenated (the paper's "07+12": ``"2007:trainval+2012:trainval"``), and a torch Dataset
of (image, target) for torchvision's detection models.

Layout read (the devkit's, unchanged)::

    VOCdevkit/VOC2007/Annotations/<id>.xml
    VOCdevkit/VOC2007/JPEGImages/<id>.jpg
    VOCdevkit/VOC2007/ImageSets/Main/<split>.txt      one image id a line
    VOCdevkit/VOC2012/...

Conventions (one each, used everywhere in detection/):

* **Labels.** ``0`` is background (torchvision's detection models reserve it); label ``k >= 1``
  is ``classes[k - 1]``. ``VOC_CLASSES`` is the devkit's order (alphabetical, as in VOCcode).
* **Devkit boxes** (``VOCAnnotation.boxes``, and what ``detection.voc_eval`` takes): the XML
  values as written, ``(xmin, ymin, xmax, ymax)`` in 1-based *inclusive* pixel indices: a box
  covers pixel columns ``xmin..xmax``, so ``1 <= xmin <= xmax <= width`` and its width is
  ``xmax - xmin + 1`` (hence the devkit's "+1" in areas and overlaps).
* **Continuous boxes** (``target["boxes"]``, what torchvision trains on and predicts): pixel ``i``
  (0-based) covers ``[i, i + 1)``, so the same box is ``(xmin - 1, ymin - 1, xmax, ymax)``:
  subtract 1 from xmin/ymin, keep xmax/ymax. Its continuous area equals the devkit's +1 area, and
  the continuous IoU of two converted boxes equals the devkit's +1 IoU exactly, so evaluating
  ``continuous_to_devkit(predictions)`` with the devkit formula is the devkit evaluation.
  (py-faster-rcnn instead subtracts 1 from all four and keeps its +1 widths inside; the two
  agree once each system converts back with its own inverse.)

Errors are one line and name the offending path: ``FileNotFoundError`` for a missing year folder,
list, XML or image; ``VOCFormatError`` (a ``ValueError``) for an XML that does not parse, a box
outside its image or with ``xmax < xmin``, an unknown class name, an empty split.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from core.cli import UserError
from core.config import ConfigError
from core.labels import VOC_CLASSES


class VOCFormatError(UserError):
    """A VOCdevkit file whose content is not what the devkit's format allows (message names it)."""


@dataclass(frozen=True)
class VOCAnnotation:
    """One Annotations/<id>.xml. ``boxes``: float64 (N, 4) devkit boxes (1-based inclusive, as in
    the file); ``labels``: int64 (N,), 1-based (``classes[label - 1]``); ``difficult``: bool (N,)."""
    image_id: str
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray


# ---------------------------------------------------------------------------------------------
# box conventions


def devkit_to_continuous(boxes) -> np.ndarray:
    """(N, 4) devkit boxes (1-based inclusive) -> continuous ``(xmin - 1, ymin - 1, xmax, ymax)``."""
    b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    b[:, :2] -= 1.0
    return b


def continuous_to_devkit(boxes) -> np.ndarray:
    """Inverse of ``devkit_to_continuous``: (N, 4) continuous -> ``(x0 + 1, y0 + 1, x1, y1)``.
    Accepts numpy or torch; returns float64 numpy."""
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().cpu().double().numpy()
    b = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    b[:, :2] += 1.0
    return b


def hflip_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """Mirror (N, 4) continuous boxes in an image ``width`` pixels wide: x -> width - x, so
    ``(x0, y0, x1, y1) -> (width - x1, y0, width - x0, y1)``. In devkit terms pixel column ``c``
    (1-based) goes to ``width + 1 - c``."""
    out = boxes.clone()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


def hflip(image: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal flip of a (C, H, W) image and its (N, 4) continuous boxes."""
    return image.flip(-1), hflip_boxes(boxes, image.shape[-1])


def resize_scale(height: int, width: int, min_size: int, max_size: int | None = None) -> float:
    """The factor that brings the shorter side to ``min_size`` unless the longer side would then
    exceed ``max_size`` (py-faster-rcnn's and torchvision's rule, e.g. 600 / 1000)."""
    scale = min_size / min(height, width)
    if max_size is not None and round(max(height, width) * scale) > max_size:
        scale = max_size / max(height, width)
    return scale


def resize(image: Image.Image, boxes: torch.Tensor, min_size: int, max_size: int | None = None
           ) -> tuple[Image.Image, torch.Tensor, tuple[float, float]]:
    """Resize a PIL image by ``resize_scale`` (bilinear) and its (N, 4) continuous boxes by the
    exact per-axis factors of the rounded size. Returns (image, boxes, (scale_x, scale_y))."""
    w, h = image.size
    s = resize_scale(h, w, min_size, max_size)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    sx, sy = nw / w, nh / h
    image = image.resize((nw, nh), Image.BILINEAR)
    boxes = boxes * torch.tensor([sx, sy, sx, sy], dtype=boxes.dtype)
    return image, boxes, (sx, sy)


# ---------------------------------------------------------------------------------------------
# files


def resolve_devkit(root: str | Path) -> Path:
    """``root`` may be the VOCdevkit folder itself or the folder that holds it."""
    root = Path(root)
    if (root / "VOCdevkit").is_dir():
        return root / "VOCdevkit"
    if not root.is_dir():
        raise FileNotFoundError(f"VOCdevkit folder not found: {root}")
    return root


def parse_splits(spec: str | Sequence) -> list[tuple[str, str]]:
    """``"2007:trainval+2012:trainval"`` -> ``[("2007", "trainval"), ("2012", "trainval")]``.
    A list of such strings or of (year, split) pairs is accepted too."""
    parts = spec.split("+") if isinstance(spec, str) else list(spec)
    out = []
    for p in parts:
        if isinstance(p, str):
            year, sep, split = p.strip().partition(":")
            if not sep or not year or not split:
                raise ConfigError(f"bad VOC split {p!r} in {spec!r}: expected 'YEAR:SPLIT', "
                                  f"e.g. '2007:trainval+2012:trainval'")
        else:
            year, split = (str(x) for x in p)
        out.append((year.strip(), split.strip()))
    if not out:
        raise ConfigError(f"no VOC split in {spec!r}")
    return out


def read_image_set(devkit: str | Path, year: str, split: str) -> list[str]:
    """The image ids listed in ``VOC<year>/ImageSets/Main/<split>.txt`` (first column, blank
    lines skipped). Missing year folder or list: FileNotFoundError; no id: VOCFormatError."""
    year_dir = Path(devkit) / f"VOC{year}"
    if not year_dir.is_dir():
        raise FileNotFoundError(f"VOC year folder not found: {year_dir}")
    path = year_dir / "ImageSets" / "Main" / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"VOC image list not found: {path}")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise VOCFormatError(f"empty VOC split (no image id): {path}")
    return ids


def _text(node: ET.Element, tag: str, path: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise VOCFormatError(f"<{tag}> missing in <{node.tag}> of {path}")
    return child.text.strip()


def _number(node: ET.Element, tag: str, path: Path) -> float:
    s = _text(node, tag, path)
    try:
        return float(s)  # VOC writes integers; a few VOC2012 files have decimals
    except ValueError:
        raise VOCFormatError(f"<{tag}> is not a number ({s!r}) in {path}") from None


def parse_annotation(path: str | Path, classes: Sequence[str] = VOC_CLASSES,
                     check_boxes: bool = True) -> VOCAnnotation:
    """Read one Annotations XML (only ``<object>`` children of ``<annotation>``: the ``<part>``
    names of person layouts are not objects). ``difficult`` absent counts as 0, as in the
    devkit. With ``check_boxes``, each box must satisfy ``1 <= xmin <= xmax <= width`` (and the
    same for y) in the devkit's 1-based inclusive coordinates."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VOC annotation not found: {path}")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise VOCFormatError(f"annotation XML does not parse: {path} ({e})") from None
    size = root.find("size")
    if size is None:
        raise VOCFormatError(f"<size> missing in {path}")
    width, height = int(_number(size, "width", path)), int(_number(size, "height", path))
    if width <= 0 or height <= 0:
        raise VOCFormatError(f"image size {width}x{height} is not positive in {path}")
    index = {c: i + 1 for i, c in enumerate(classes)}
    boxes, labels, difficult = [], [], []
    for obj in root.findall("object"):
        name = _text(obj, "name", path)
        if name not in index:
            raise VOCFormatError(f"unknown class {name!r} in {path}; expected one of {', '.join(classes)}")
        bb = obj.find("bndbox")
        if bb is None:
            raise VOCFormatError(f"<bndbox> missing for a {name!r} object in {path}")
        box = [_number(bb, t, path) for t in ("xmin", "ymin", "xmax", "ymax")]
        if check_boxes:
            x0, y0, x1, y1 = box
            if not (1 <= x0 <= x1 <= width and 1 <= y0 <= y1 <= height):
                kind = "degenerate" if (x1 < x0 or y1 < y0) else "outside its image"
                raise VOCFormatError(f"box {box} of a {name!r} object is {kind} "
                                     f"({width}x{height}, devkit 1-based inclusive) in {path}")
        d = obj.find("difficult")
        boxes.append(box)
        labels.append(index[name])
        difficult.append(d is not None and d.text is not None and d.text.strip() == "1")
    return VOCAnnotation(image_id=path.stem, width=width, height=height,
                         boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4),
                         labels=np.array(labels, dtype=np.int64),
                         difficult=np.array(difficult, dtype=bool))


# ---------------------------------------------------------------------------------------------
# dataset


def flip_decision(seed: int, epoch: int, index: int, prob: float) -> bool:
    """Whether sample ``index`` is flipped in ``epoch``: a pure function of its arguments, so a
    resumed run and any number of DataLoader workers see the same flips."""
    if prob <= 0:
        return False
    return bool(np.random.default_rng([seed, epoch, index]).random() < prob)


class VOCDetection(Dataset):
    """Images of one or more VOC (year, split) lists, concatenated in the order given.

    Item ``i``: ``(image, target)`` with ``image`` float32 (3, H, W) in [0, 1] (RGB, not
    normalised: torchvision's GeneralizedRCNNTransform normalises and resizes) and ``target``:

    * ``boxes`` float32 (N, 4): continuous boxes in the returned image's pixels (module docstring);
    * ``labels`` int64 (N,): 1-based (``classes[label - 1]``), 0 being background;
    * ``difficult`` bool (N,);
    * ``image_id`` int64 scalar: ``i``; ``self.ids[i]`` is ``(year, id)`` and
      ``self.annotations[i]`` its devkit ground truth (for ``detection.voc_eval``);
    * ``scale`` float32 (2,): (scale_x, scale_y) from the annotation's pixels to the returned
      image's (1, 1 without ``min_size``); divide predicted boxes by it to evaluate;
    * ``flipped`` bool scalar.

    ``min_size``/``max_size``: optionally resize so the shorter side is ``min_size`` (longer side
    at most ``max_size``) here rather than in the model. ``flip_prob``: horizontal flip with this
    probability, decided by ``flip_decision(seed, epoch, i)``; call ``set_epoch`` each epoch
    (``FlippedCopies`` instead: each image as is and mirrored in every epoch).
    ``skip_difficult``: drop difficult objects from ``target`` (py-faster-rcnn trains without
    them, ``USE_DIFF = False``); ``annotations`` always keep them, as evaluation needs them.

    All annotations are parsed when the dataset is built, so a bad file fails at once.
    ``check_boxes=False`` accepts boxes outside their image (reported as errors by default) and
    clips them to it in ``target`` (``annotations`` keep them as written).
    """

    def __init__(self, root: str | Path, splits: str | Sequence = "2007:trainval",
                 classes: Sequence[str] = VOC_CLASSES, *, min_size: int | None = None,
                 max_size: int | None = None, flip_prob: float = 0.0, seed: int = 0,
                 skip_difficult: bool = False, check_boxes: bool = True):
        if not 0.0 <= flip_prob <= 1.0:
            raise ConfigError(f"flip_prob must be in [0, 1], got {flip_prob}")
        if min_size is not None and min_size <= 0:
            raise ConfigError(f"min_size must be positive, got {min_size}")
        self.devkit = resolve_devkit(root)
        self.splits = parse_splits(splits)
        self.classes = tuple(classes)
        self.min_size, self.max_size = min_size, max_size
        self.flip_prob, self.seed, self.epoch = flip_prob, seed, 0
        self.skip_difficult = skip_difficult
        self.ids: list[tuple[str, str]] = []
        for year, split in self.splits:
            self.ids += [(year, i) for i in read_image_set(self.devkit, year, split)]
        self.annotations = [parse_annotation(self._path(y, "Annotations", i, ".xml"), self.classes,
                                             check_boxes) for y, i in self.ids]

    @property
    def num_classes(self) -> int:
        """Object classes, background not counted (torchvision's FasterRCNN wants this + 1)."""
        return len(self.classes)

    def _path(self, year: str, folder: str, image_id: str, ext: str) -> Path:
        return self.devkit / f"VOC{year}" / folder / f"{image_id}{ext}"

    def image_path(self, index: int) -> Path:
        year, image_id = self.ids[index]
        return self._path(year, "JPEGImages", image_id, ".jpg")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        ann = self.annotations[index]
        path = self.image_path(index)
        if not path.is_file():
            raise FileNotFoundError(f"VOC image not found: {path}")
        with Image.open(path) as im:
            image = im.convert("RGB")
        if image.size != (ann.width, ann.height):
            raise VOCFormatError(f"{path} is {image.size[0]}x{image.size[1]} but its annotation "
                                 f"says {ann.width}x{ann.height}")
        keep = ~ann.difficult if self.skip_difficult else np.ones(len(ann.labels), dtype=bool)
        boxes = torch.from_numpy(devkit_to_continuous(ann.boxes[keep])).float()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, ann.width)  # a no-op for checked boxes
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, ann.height)
        scale = (1.0, 1.0)
        if self.min_size is not None:
            image, boxes, scale = resize(image, boxes, self.min_size, self.max_size)
        img = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255
        flipped = flip_decision(self.seed, self.epoch, index, self.flip_prob)
        if flipped:
            img, boxes = hflip(img, boxes)
        target = {"boxes": boxes, "labels": torch.from_numpy(ann.labels[keep]),
                  "difficult": torch.from_numpy(ann.difficult[keep]),
                  "image_id": torch.tensor(index), "scale": torch.tensor(scale, dtype=torch.float32),
                  "flipped": torch.tensor(flipped)}
        return img, target


class FlippedCopies(Dataset):
    """Every image of ``dataset`` twice: items ``0..n-1`` are ``dataset``'s items as they are,
    items ``n..2n-1`` the same images mirrored (``hflip``, ``target["flipped"]`` true). An epoch
    over it (shuffled by the sampler) shows each image once as is and once flipped: py-faster-rcnn's
    and faster-rcnn.pytorch's ``TRAIN.USE_FLIPPED`` (``imdb.append_flipped_images``), whose
    VOC07+12 epoch is 2 x 16,551 = 33,102 iterations at batch 1, the epoch the paper's batch-1
    schedule counts in. ``dataset`` yields ``(image (C, H, W), target)`` as ``VOCDetection`` does
    (or a ``Subset`` of one) and must not flip by itself."""

    def __init__(self, dataset):
        base = dataset.dataset if isinstance(dataset, Subset) else dataset
        if getattr(base, "flip_prob", 0.0) > 0:
            raise ValueError(f"FlippedCopies needs a dataset that does not flip by itself, got "
                             f"flip_prob={base.flip_prob}")
        self.dataset = dataset

    def __len__(self) -> int:
        return 2 * len(self.dataset)

    def __getitem__(self, index: int):
        n = len(self.dataset)
        if not 0 <= index < 2 * n:
            raise IndexError(f"index {index} out of range for {2 * n} items")
        image, target = self.dataset[index % n]
        if index < n:
            return image, target
        image, boxes = hflip(image, target["boxes"])
        return image, {**target, "boxes": boxes, "flipped": torch.tensor(True)}


def collate_detection(batch):
    """DataLoader collate for detection: (list of images, list of targets), sizes may differ."""
    images, targets = zip(*batch)
    return list(images), list(targets)
