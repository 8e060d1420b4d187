"""detection.synthetic: the generated shapes set is a valid VOCdevkit, deterministic, and its
boxes sit on the drawn shapes."""
import numpy as np
import pytest

from detection.synthetic import class_style, write_synthetic_voc
from detection.voc import VOCDetection, continuous_to_devkit

CLASSES = ("bird", "boat", "cat")


def _files(devkit):
    return {p.relative_to(devkit): p.read_bytes() for p in sorted(devkit.rglob("*")) if p.is_file()}


def test_written_set_reads_back(tmp_path):
    s = write_synthetic_voc(tmp_path, 24, CLASSES, image_size=(64, 80), objects_per_image=(1, 3),
                            object_size=(12, 24), seed=3)
    assert s.splits == {"trainval": 18, "test": 6, "train": 9, "val": 9}
    train = VOCDetection(s.devkit, "2007:trainval", classes=CLASSES)
    test = VOCDetection(tmp_path, "2007:test", classes=CLASSES)  # the folder above VOCdevkit works too
    assert len(train) == 18 and len(test) == 6
    anns = train.annotations + test.annotations
    assert sum(len(a.labels) for a in anns) == s.num_objects and s.num_objects >= 24
    for ds in (train, test):
        for i in range(len(ds)):
            img, t = ds[i]
            assert img.shape == (3, 64, 80)
            for box, label in zip(continuous_to_devkit(t["boxes"]), t["labels"].tolist()):
                x0, y0, x1, y1 = (int(v) for v in box)
                assert 12 - 1 <= x1 - x0 + 1 <= 24 and 12 - 1 <= y1 - y0 + 1 <= 24
                # the centre pixel of every shape (rectangle, ellipse, triangle: all cover it) has
                # the class colour, within the colour jitter and JPEG error
                _, colour = class_style(label - 1)
                centre = img[:, (y0 + y1) // 2 - 1, (x0 + x1) // 2 - 1].numpy() * 255
                assert np.abs(centre - colour).max() < 60, (centre, colour)


def test_deterministic_given_seed(tmp_path):
    kw = dict(num_images=6, classes=CLASSES, image_size=48, object_size=(10, 20))
    a = _files(write_synthetic_voc(tmp_path / "a", seed=1, **kw).devkit)
    b = _files(write_synthetic_voc(tmp_path / "b", seed=1, **kw).devkit)
    c = _files(write_synthetic_voc(tmp_path / "c", seed=2, **kw).devkit)
    assert a == b and a.keys() == c.keys() and a != c


def test_styles_are_distinct_for_all_voc_classes():
    assert len({class_style(i) for i in range(20)}) == 20


def test_difficult_and_bad_arguments(tmp_path):
    s = write_synthetic_voc(tmp_path, 4, ("dog",), image_size=32, object_size=(8, 12), difficult_fraction=1.0)
    anns = VOCDetection(s.devkit, "2007:trainval+2007:test", classes=("dog",)).annotations
    assert all(a.difficult.all() for a in anns)
    with pytest.raises(ValueError, match="'circle' is not one"):
        write_synthetic_voc(tmp_path / "x", 4, ("dog", "circle"))
    with pytest.raises(ValueError, match="object_size"):
        write_synthetic_voc(tmp_path / "y", 4, ("dog",), image_size=32, object_size=(8, 40))
