"""A generated detection set in VOC layout, for the CPU learnability check
(detection/configs/synthetic_learnability.yaml):
coloured shapes on textured backgrounds, each class one (shape, colour) pair, written as
``VOCdevkit/VOC<year>/{JPEGImages,Annotations,ImageSets/Main}`` so the same reader, model and
evaluation run on it as on PASCAL VOC. Deterministic given the seed (and Pillow's JPEG encoder).

Why it is learnable by a small backbone: a class is told apart by shape and hue, both visible at
16 px; backgrounds are textured (low-frequency blotches, stripes, pixel noise) in muted colours so
that "any saturated blob" is not the answer, but their saturation is capped below the shapes'.
Objects' boxes do not overlap and boxes are the exact extent of the drawn pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw

from core.cli import UserError, entry_point

from .voc import VOC_CLASSES

SHAPES = ("rectangle", "ellipse", "triangle", "cross", "diamond")
# Saturated colours; 7 is coprime to the 5 shapes, so class i -> (SHAPES[i % 5], COLOURS[i % 7])
# gives 35 distinct pairs, more than the 20 VOC classes.
COLOURS = ((220, 30, 30), (30, 190, 40), (40, 70, 230), (240, 200, 20), (200, 40, 210),
           (20, 200, 210), (250, 120, 10))


def class_style(index: int) -> tuple[str, tuple[int, int, int]]:
    """(shape, RGB colour) of class ``index`` (0-based position in the generated class list)."""
    return SHAPES[index % len(SHAPES)], COLOURS[index % len(COLOURS)]


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Muted texture: a random base colour, smooth blotches, stripes at a random angle, noise."""
    base = rng.uniform(70, 170, size=3)
    gh, gw = rng.integers(3, 7, size=2)
    coarse = rng.normal(0, 25, size=(gh, gw, 3)).astype(np.float32)
    blotches = np.asarray(Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize(
        (w, h), Image.BICUBIC), dtype=np.float32) - 128
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta, period = rng.uniform(0, np.pi), rng.uniform(6, 20)
    stripes = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period)
    tint = rng.uniform(-1, 1, size=3) * rng.uniform(5, 20)
    img = base + blotches + stripes[..., None] * tint + rng.normal(0, 6, size=(h, w, 3))
    grey = img.mean(axis=2, keepdims=True)
    img = grey + 0.5 * (img - grey)  # cap saturation below the shapes'
    return np.clip(img, 0, 255)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, x0: int, y0: int, x1: int, y1: int, fill) -> None:
    """Draw ``shape`` filling the pixel rectangle x0..x1, y0..y1 (inclusive) as far as it reaches."""
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if shape == "rectangle":
        draw.rectangle([x0, y0, x1, y1], fill=fill)
    elif shape == "ellipse":
        draw.ellipse([x0, y0, x1, y1], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, y0), (x1, y1), (x0, y1)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, y0), (x1, cy), (cx, y1), (x0, cy)], fill=fill)
    elif shape == "cross":
        tw, th = max(2, (x1 - x0 + 1) // 3), max(2, (y1 - y0 + 1) // 3)
        draw.rectangle([x0, round(cy - th / 2), x1, round(cy + th / 2)], fill=fill)
        draw.rectangle([round(cx - tw / 2), y0, round(cx + tw / 2), y1], fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _annotation_xml(year: str, filename: str, w: int, h: int, objects) -> str:
    objs = "".join(
        f"\t<object>\n\t\t<name>{escape(n)}</name>\n\t\t<pose>Unspecified</pose>\n\t\t<truncated>0</truncated>\n"
        f"\t\t<difficult>{int(d)}</difficult>\n\t\t<bndbox>\n\t\t\t<xmin>{b[0]}</xmin>\n\t\t\t<ymin>{b[1]}</ymin>\n"
        f"\t\t\t<xmax>{b[2]}</xmax>\n\t\t\t<ymax>{b[3]}</ymax>\n\t\t</bndbox>\n\t</object>\n"
        for n, b, d in objects)
    return (f"<annotation>\n\t<folder>VOC{year}</folder>\n\t<filename>{filename}</filename>\n"
            f"\t<source>\n\t\t<database>selfkd synthetic shapes</database>\n\t</source>\n"
            f"\t<size>\n\t\t<width>{w}</width>\n\t\t<height>{h}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
            f"\t<segmented>0</segmented>\n{objs}</annotation>\n")


@dataclass(frozen=True)
class SyntheticVOC:
    """Where the set was written and what it holds."""
    devkit: Path
    year: str
    classes: tuple[str, ...]
    splits: dict[str, int]      # split name -> number of images
    num_objects: int


def write_synthetic_voc(root: str | Path, num_images: int = 300,
                        classes: Sequence[str] = ("aeroplane", "bicycle", "bird", "boat"), *,
                        image_size: int | tuple[int, int] = 128, objects_per_image: tuple[int, int] = (1, 3),
                        object_size: tuple[int, int] = (16, 48), test_fraction: float = 0.25,
                        difficult_fraction: float = 0.0, year: str = "2007", seed: int = 0,
                        jpeg_quality: int = 95) -> SyntheticVOC:
    """Write ``num_images`` images under ``root/VOCdevkit/VOC<year>`` and return a summary.

    ``classes``: VOC class names (any subset, in the order labels will use); class ``i`` is drawn as
    ``class_style(i)``. ``image_size``: H = W, or (H, W). Each image holds a number of objects
    drawn uniformly from ``objects_per_image`` (inclusive; fewer if they do not fit without
    overlap), each with width and height uniform in ``object_size`` (inclusive, pixels).
    ``difficult_fraction``: objects flagged ``difficult`` at random (0: none). Lists written:
    ``trainval`` (the first ``1 - test_fraction``), ``test`` (the rest), and ``train``/``val``
    (halves of trainval). Box coordinates are the devkit's (1-based inclusive) extent of the
    shape's pixels."""
    classes = tuple(classes)
    bad = [c for c in classes if c not in VOC_CLASSES]
    if bad or not classes or len(set(classes)) != len(classes):
        raise UserError(f"classes must be distinct VOC class names, got {list(classes)}"
                        + (f" ({bad[0]!r} is not one)" if bad else ""))
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    lo, hi = object_size
    if not 2 <= lo <= hi <= min(h, w):
        raise UserError(f"object_size {object_size} must satisfy 2 <= min <= max <= image side {min(h, w)}")
    if not 1 <= objects_per_image[0] <= objects_per_image[1]:
        raise UserError(f"objects_per_image {objects_per_image} must satisfy 1 <= min <= max")
    if num_images < 2 or not 0 < test_fraction < 1:
        raise UserError(f"need num_images >= 2 and 0 < test_fraction < 1, got {num_images}, {test_fraction}")
    devkit = Path(root) / "VOCdevkit"
    base = devkit / f"VOC{year}"
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids, num_objects = [], 0
    for n in range(num_images):
        image_id = f"{n:06d}"
        img = Image.fromarray(_background(rng, h, w).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        objects, taken = [], np.zeros((h, w), dtype=bool)
        for _ in range(int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))):
            for _try in range(20):  # rejection sampling for a place that overlaps nothing
                bw, bh = (int(v) for v in rng.integers(lo, hi + 1, size=2))
                x0, y0 = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
                if not taken[max(0, y0 - 2):y0 + bh + 2, max(0, x0 - 2):x0 + bw + 2].any():
                    break
            else:
                continue
            c = int(rng.integers(len(classes)))
            shape, colour = class_style(c)
            fill = tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in colour)
            mask = Image.new("L", (w, h), 0)
            _draw_shape(ImageDraw.Draw(mask), shape, x0, y0, x0 + bw - 1, y0 + bh - 1, 255)
            m = np.asarray(mask) > 0
            _draw_shape(draw, shape, x0, y0, x0 + bw - 1, y0 + bh - 1, fill)
            taken[y0:y0 + bh, x0:x0 + bw] = True  # boxes, not only pixels, stay apart
            rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
            box = (int(cols[0]) + 1, int(rows[0]) + 1, int(cols[-1]) + 1, int(rows[-1]) + 1)  # 1-based inclusive
            objects.append((classes[c], box, bool(rng.random() < difficult_fraction)))
        img.save(base / "JPEGImages" / f"{image_id}.jpg", quality=jpeg_quality)
        (base / "Annotations" / f"{image_id}.xml").write_text(
            _annotation_xml(year, f"{image_id}.jpg", w, h, objects))
        ids.append(image_id)
        num_objects += len(objects)
    n_test = max(1, round(num_images * test_fraction))
    trainval, test = ids[:num_images - n_test], ids[num_images - n_test:]
    half = max(1, len(trainval) // 2)
    lists = {"trainval": trainval, "test": test, "train": trainval[:half], "val": trainval[half:] or trainval[:1]}
    for name, lst in lists.items():
        (base / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(i + "\n" for i in lst))
    return SyntheticVOC(devkit, year, classes, {k: len(v) for k, v in lists.items()}, num_objects)


@entry_point()
def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m detection.synthetic", description="Write the synthetic shapes set in VOC layout "
                                            "(detection/configs/synthetic_learnability.yaml reads it).")
    p.add_argument("--out", default="data/synthetic_voc", help="writes OUT/VOCdevkit/VOC2007")
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for folder in (Path(args.out), *Path(args.out).parents):
        if folder.exists() and not folder.is_dir():
            raise UserError(f"--out {args.out}: {folder} is a file, not a folder")
    s = write_synthetic_voc(args.out, args.images, seed=args.seed)
    print(f"wrote {s.devkit}: {s.splits} images, {s.num_objects} objects of {', '.join(s.classes)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
