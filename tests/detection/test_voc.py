"""detection.voc: the VOCdevkit reader on the real 10-image sample and on generated devkits."""
import numpy as np
import pytest
import torch

from detection.voc import (VOC_CLASSES, FlippedCopies, VOCDetection, VOCFormatError, collate_detection,
                           continuous_to_devkit, devkit_to_continuous, flip_decision, hflip,
                           parse_annotation, parse_splits, read_image_set, resize_scale)
from tests.detection.helpers import write_devkit

L = {c: i + 1 for i, c in enumerate(VOC_CLASSES)}  # 1-based labels


# ------------------------------------------------------------------ real sample (VOC2007 + VOC2012)

def test_real_sample_07_plus_12(voc_sample):
    ds = VOCDetection(voc_sample, "2007:trainval+2012:trainval")
    assert len(ds) == 10 and ds.ids[0] == ("2007", "000001") and ds.ids[5] == ("2012", "2007_000027")
    ann = ds.annotations[0]  # 000001.xml: a dog and a person, as written in the file
    np.testing.assert_array_equal(ann.boxes, [[48, 240, 195, 371], [8, 12, 352, 498]])
    assert ann.labels.tolist() == [L["dog"], L["person"]] and not ann.difficult.any()
    assert (ann.width, ann.height) == (353, 500)
    assert sum(len(a.labels) for a in ds.annotations) == 28
    assert sum(int(a.difficult.sum()) for a in ds.annotations) == 2  # the two chairs of 000005
    # 2007_000027 is a person with part boxes (head, hands, feet): parts are not objects
    assert ds.annotations[5].labels.tolist() == [L["person"]]

    img, t = ds[0]
    assert img.shape == (3, 500, 353) and img.dtype == torch.float32 and 0 <= img.min() <= img.max() <= 1
    # continuous boxes: xmin - 1, ymin - 1, xmax, ymax
    torch.testing.assert_close(t["boxes"], torch.tensor([[47., 239., 195., 371.], [7., 11., 352., 498.]]))
    assert t["labels"].tolist() == [L["dog"], L["person"]] and t["image_id"].item() == 0
    for i in range(len(ds)):
        img, t = ds[i]
        b = t["boxes"]
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= img.shape[2]).all() and (b[:, 3] <= img.shape[1]).all()
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()


def test_real_sample_resize_flip_and_loader(voc_sample):
    ds = VOCDetection(voc_sample, "2007:test", min_size=100, max_size=150, flip_prob=1.0)
    img, t = ds[0]  # 353 x 500 -> shorter side 100 would make the longer 142 <= 150
    assert img.shape == (3, 142, 100) and t["flipped"].item()
    sx, sy = t["scale"].tolist()
    assert sx == pytest.approx(100 / 353) and sy == pytest.approx(142 / 500)
    x0, y0, x1, y1 = 47 * sx, 239 * sy, 195 * sx, 371 * sy  # the dog, scaled, then mirrored
    torch.testing.assert_close(t["boxes"][0], torch.tensor([100 - x1, y0, 100 - x0, y1]))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_detection)
    images, targets = next(iter(loader))
    assert len(images) == len(targets) == 2


def test_flipped_copy_epoch_on_real_sample(voc_sample):
    """py-faster-rcnn's USE_FLIPPED epoch: 2 x 10 items, the second half the first mirrored, and a
    shuffled epoch shows every image exactly once as is and once flipped."""
    from core.sampler import EpochSampler
    ds = VOCDetection(voc_sample, "2007:trainval+2012:trainval", skip_difficult=True)
    copies = FlippedCopies(ds)
    assert len(copies) == 20 and len(ds) == 10
    for i in range(10):
        img, t = copies[i]
        fimg, ft = copies[i + 10]
        torch.testing.assert_close(img, ds[i][0])
        torch.testing.assert_close(fimg, img.flip(-1))
        torch.testing.assert_close(ft["boxes"], hflip(img, t["boxes"])[1])
        assert not t["flipped"].item() and ft["flipped"].item()
        assert ft["image_id"].item() == t["image_id"].item() == i
        assert ft["labels"].tolist() == t["labels"].tolist()
    seen = {}
    for k in EpochSampler(len(copies), 0, 1):
        _, t = copies[k]
        seen.setdefault(t["image_id"].item(), []).append(t["flipped"].item())
    assert {i: sorted(f) for i, f in seen.items()} == {i: [False, True] for i in range(10)}
    sub = FlippedCopies(torch.utils.data.Subset(ds, range(3)))
    assert len(sub) == 6 and sub[4][1]["image_id"].item() == 1 and sub[4][1]["flipped"].item()
    with pytest.raises(IndexError):
        copies[20]
    with pytest.raises(ValueError, match="flip_prob=0.5"):
        FlippedCopies(VOCDetection(voc_sample, "2007:trainval", flip_prob=0.5))


def test_skip_difficult_keeps_them_in_annotations(voc_sample):
    ds = VOCDetection(voc_sample, "2007:trainval", skip_difficult=True)
    i = ds.ids.index(("2007", "000005"))
    _, t = ds[i]
    assert len(t["labels"]) == 3 and not t["difficult"].any()
    assert len(ds.annotations[i].labels) == 5 and ds.annotations[i].difficult.sum() == 2


# ------------------------------------------------------------------ conventions

def test_box_conventions_round_trip():
    dev = np.array([[1, 1, 1, 1], [5, 7, 20, 30]], dtype=float)  # a 1-pixel box is valid
    cont = devkit_to_continuous(dev)
    np.testing.assert_array_equal(cont, [[0, 0, 1, 1], [4, 6, 20, 30]])
    np.testing.assert_array_equal(continuous_to_devkit(torch.tensor(cont)), dev)


def test_hflip_moves_pixels_and_boxes_together(tmp_path):
    # A red box at devkit columns 3..7 of a 20-pixel-wide image goes to 20 + 1 - 7 .. 20 + 1 - 3.
    devkit = write_devkit(tmp_path, "2007", {"a": (20, 10, [("cat", (3, 2, 7, 9), 0)])}, colour_boxes=True)
    ds = VOCDetection(devkit, "2007:trainval", flip_prob=1.0)
    img, t = ds[0]
    np.testing.assert_array_equal(continuous_to_devkit(t["boxes"]), [[14, 2, 18, 9]])
    red = (img[0] > 0.5) & (img[1] < 0.5)
    cols = torch.nonzero(red.any(0)).flatten()
    assert (cols.min().item() + 1, cols.max().item() + 1) == (14, 18)
    img2, boxes2 = hflip(img, t["boxes"])
    np.testing.assert_array_equal(continuous_to_devkit(boxes2), [[3, 2, 7, 9]])
    torch.testing.assert_close(img2, ds.__class__(devkit, "2007:trainval")[0][0])


def test_flip_decision_is_a_pure_function():
    a = [flip_decision(0, 1, i, 0.5) for i in range(200)]
    assert a == [flip_decision(0, 1, i, 0.5) for i in range(200)]
    assert a != [flip_decision(0, 2, i, 0.5) for i in range(200)]
    assert 60 < sum(a) < 140 and not any(flip_decision(0, 1, i, 0.0) for i in range(50))


def test_resize_scale_rule():
    assert resize_scale(375, 500, 600, 1000) == pytest.approx(1.6)        # shorter side -> 600
    assert resize_scale(200, 1000, 600, 1000) == pytest.approx(1.0)       # longer side capped
    assert resize_scale(200, 1000, 600) == pytest.approx(3.0)


def test_parse_splits():
    assert parse_splits("2007:trainval+2012:trainval") == [("2007", "trainval"), ("2012", "trainval")]
    assert parse_splits([("2007", "test")]) == [("2007", "test")]
    with pytest.raises(ValueError, match="YEAR:SPLIT"):
        parse_splits("2007trainval")


# ------------------------------------------------------------------ errors: one line, the path named

def _one_line(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    for n in needles:
        assert str(n) in msg, msg


def test_missing_year_and_list(tmp_path):
    devkit = write_devkit(tmp_path, "2007", {"a": (10, 10, [("cat", (1, 1, 5, 5), 0)])})
    with pytest.raises(FileNotFoundError) as e:
        VOCDetection(devkit, "2007:trainval+2012:trainval")
    _one_line(e, devkit / "VOC2012")
    with pytest.raises(FileNotFoundError) as e:
        read_image_set(devkit, "2007", "test")
    _one_line(e, devkit / "VOC2007" / "ImageSets" / "Main" / "test.txt")
    with pytest.raises(FileNotFoundError) as e:
        VOCDetection(tmp_path / "nowhere")
    _one_line(e, tmp_path / "nowhere")


def test_empty_split(tmp_path):
    devkit = write_devkit(tmp_path, "2007", {"a": (10, 10, [])}, lists={"trainval": ["a"], "test": []})
    with pytest.raises(VOCFormatError) as e:
        VOCDetection(devkit, "2007:test")
    _one_line(e, "empty", "test.txt")
    assert len(VOCDetection(devkit, "2007:trainval")) == 1  # an image with no object is fine


@pytest.mark.parametrize("box, kind", [((0, 1, 5, 5), "outside"), ((1, 1, 11, 5), "outside"),
                                       ((1, 1, 5, 12), "outside"), ((6, 1, 5, 5), "degenerate")])
def test_bad_boxes(tmp_path, box, kind):
    devkit = write_devkit(tmp_path, "2007", {"a": (10, 11, [("cat", box, 0)])})
    with pytest.raises(VOCFormatError) as e:
        VOCDetection(devkit)
    _one_line(e, kind, devkit / "VOC2007" / "Annotations" / "a.xml")
    if kind == "outside":  # accepted on request, clipped to the image in the target
        _, t = VOCDetection(devkit, check_boxes=False)[0]
        b = t["boxes"][0]
        assert b[0] >= 0 and b[1] >= 0 and b[2] <= 10 and b[3] <= 11


def test_xml_that_does_not_parse_and_unknown_class(tmp_path):
    devkit = write_devkit(tmp_path, "2007", {"a": (10, 10, [("cat", (1, 1, 5, 5), 0)]),
                                             "b": (10, 10, [("unicorn", (1, 1, 5, 5), 0)])})
    bad = devkit / "VOC2007" / "Annotations" / "a.xml"
    bad.write_text("<annotation><size><width>10</width>")
    with pytest.raises(VOCFormatError) as e:
        parse_annotation(bad)
    _one_line(e, "does not parse", bad)
    with pytest.raises(VOCFormatError) as e:
        parse_annotation(devkit / "VOC2007" / "Annotations" / "b.xml")
    _one_line(e, "unicorn", "b.xml")
    with pytest.raises(VOCFormatError) as e:  # the dataset reports the first bad file by name
        VOCDetection(devkit)
    _one_line(e, bad)


def test_missing_annotation_image_and_size_mismatch(tmp_path):
    devkit = write_devkit(tmp_path, "2007", {"a": (10, 10, [("cat", (1, 1, 5, 5), 0)])},
                          lists={"trainval": ["a"], "test": ["zz"]})
    with pytest.raises(FileNotFoundError) as e:
        VOCDetection(devkit, "2007:test")
    _one_line(e, "zz.xml")
    ds = VOCDetection(devkit)
    from PIL import Image
    Image.new("RGB", (12, 10)).save(ds.image_path(0))
    with pytest.raises(VOCFormatError) as e:
        ds[0]
    _one_line(e, "12x10", "10x10", "a.jpg")
    ds.image_path(0).unlink()
    with pytest.raises(FileNotFoundError) as e:
        ds[0]
    _one_line(e, "a.jpg")


def test_class_subset_and_decimal_coordinates(tmp_path):
    devkit = write_devkit(tmp_path, "2012", {"a": (10, 10, [("bird", (1.0, 2.5, 5.0, 6.0), 1)])})
    ds = VOCDetection(devkit, "2012:trainval", classes=("bird", "boat"))
    assert ds.num_classes == 2
    ann = ds.annotations[0]
    assert ann.labels.tolist() == [1] and ann.difficult.tolist() == [True]
    np.testing.assert_array_equal(ann.boxes, [[1.0, 2.5, 5.0, 6.0]])
