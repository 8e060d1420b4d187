"""Small VOCdevkit folders written in the devkit's own format (for tmp_path fixtures)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_devkit(root: Path, year: str, images: dict, lists: dict[str, list[str]] | None = None,
                 colour_boxes: bool = False) -> Path:
    """Write ``root/VOCdevkit/VOC<year>``. ``images[id] = (width, height, objects)`` with
    ``objects`` a list of (name, (xmin, ymin, xmax, ymax), difficult) in devkit coordinates;
    ``lists[split] = ids`` (default: trainval = all). With ``colour_boxes`` each object's pixels
    are painted pure red on a black image (PNG-exact content saved as high-quality JPEG)."""
    base = root / "VOCdevkit" / f"VOC{year}"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    for image_id, (w, h, objects) in images.items():
        arr = np.zeros((h, w, 3), dtype=np.uint8)
        if colour_boxes:
            for _, (x0, y0, x1, y1), _ in objects:
                arr[int(y0) - 1:int(y1), int(x0) - 1:int(x1)] = (255, 0, 0)
        Image.fromarray(arr).save(base / "JPEGImages" / f"{image_id}.jpg", quality=100)
        objs = "".join(
            f"<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>{b[0]}</xmin>"
            f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
            for n, b, d in objects)
        (base / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{image_id}.jpg</filename><size><width>{w}</width>"
            f"<height>{h}</height><depth>3</depth></size>{objs}</annotation>")
    for split, ids in (lists or {"trainval": list(images)}).items():
        (base / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(i + "\n" for i in ids))
    return root / "VOCdevkit"
