"""python -m reports qualitative (Figs. 3 and 8): two tiny models trained by classification/ on
the CIFAR-10 JPEG copy, drawn on an ImageFolder made of that copy's test images."""
import csv

import numpy as np
import pytest
import torch
from PIL import Image

from core.config import load_config
from reports.__main__ import main
from tests.conftest import SHARED_DATA


@pytest.fixture(scope="module")
def shared():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (CI always has it)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def cifar_folder(tmp_path_factory, shared):
    """An ImageFolder of 2 test images per CIFAR-10 class (the JPEG bytes as stored)."""
    npz = shared / "cifar10-jpeg/cifar10_jpeg.npz"
    root = tmp_path_factory.mktemp("cifar_folder") / "test"
    with np.load(npz) as z:
        buf, off, labels, classes = z["test_jpeg"], z["test_offsets"], z["test_labels"], z["classes"]
    for c, name in enumerate(classes):
        (root / str(name)).mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(labels == c)[:2]):
            (root / str(name) / f"{j}.jpg").write_bytes(buf[off[i]:off[i + 1]].tobytes())
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, shared):
    """A baseline and a Self-KD ResNet-20, 1 epoch on 64 images each (classification/train.py)."""
    from classification.train import TrainConfig, train
    out = tmp_path_factory.mktemp("runs")
    paths = []
    for seed, method in enumerate(("baseline", "selfkd")):  # two seeds: two different models
        cfg = load_config(TrainConfig, None, [
            "model=resnet20", "data.name=cifar10_npz", f"data.root={shared / 'cifar10-jpeg/cifar10_jpeg.npz'}",
            "data.train_subset=64", "data.test_subset=16", "data.num_workers=0", "data.fit_subset=0", "epochs=1",
            "optim.batch_size=32", "progress=false", f"out_dir={out}", "table=table1", f"method.name={method}", f"seed={seed}"])
        paths.append(train(cfg))
    return paths


def reference_probs(run_dir, image_path):
    """The model's softmax on one image, computed here without reports.qualitative."""
    from classification.data import CIFAR_MEAN, CIFAR_STD
    from classification.models import build_model
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    net = build_model("resnet20", 10)
    net.load_state_dict(state["model"])
    x = torch.from_numpy(np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)
    x = (x - torch.tensor(CIFAR_MEAN[10])[:, None, None]) / torch.tensor(CIFAR_STD[10])[:, None, None]
    with torch.no_grad():
        return torch.softmax(net.eval()(x[None]), 1)[0]


def test_figure_and_tables_from_two_checkpoints(tmp_path, cifar_folder, checkpoints):
    out = tmp_path / "fig3"
    picked = ["cat/0.jpg", "ship/1.jpg", "airplane/1.jpg"]
    rc = main(["qualitative", "--checkpoints", str(checkpoints[0]), str(checkpoints[1] / "checkpoint.pt"),
               "--data", str(cifar_folder), "--images", *picked, "--topk", "3", "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == \
        ["qualitative.csv", "qualitative.md", "qualitative.png"]
    with Image.open(out / "qualitative.png") as im:
        assert im.text["Panels"] == str(3 * (1 + 2))  # per image: the image and one chart per model
    rows = list(csv.DictReader(open(out / "qualitative.csv")))
    assert list(dict.fromkeys(r["image"] for r in rows)) == picked  # in the order given
    assert {r["model"] for r in rows} == {"baseline", "selfkd"}
    for image in picked:
        label = image.split("/")[0]
        for run, method in zip(checkpoints, ("baseline", "selfkd")):
            mine = [r for r in rows if r["image"] == image and r["model"] == method]
            assert all(r["label"] == label for r in mine)
            ref = reference_probs(run, cifar_folder / image)
            top = ref.topk(3)
            assert [int(r["rank"]) for r in mine[:3]] == [1, 2, 3]
            classes = sorted(p.name for p in cifar_folder.iterdir())
            assert [r["class"] for r in mine[:3]] == [classes[c] for c in top.indices.tolist()]
            assert [float(r["probability"]) for r in mine[:3]] == pytest.approx(top.values.tolist(), abs=1e-6)
            # the label's probability is always in the file, in the top 3 or on a row after them
            lab = [r for r in mine if r["is_label"] == "1"]
            assert len(lab) == 1 and float(lab[0]["probability"]) == pytest.approx(
                float(ref[classes.index(label)]), abs=1e-6)
    by_model = {m: [r["probability"] for r in rows if r["model"] == m] for m in ("baseline", "selfkd")}
    assert by_model["baseline"] != by_model["selfkd"]  # each column is its own model
    md = (out / "qualitative.md").read_text()
    assert md.count("## `") == 3 and "| rank | baseline | p | selfkd | p |" in md and "p(label)" in md


def test_random_draw_names_and_class_names(tmp_path, cifar_folder, checkpoints):
    names = tmp_path / "names.txt"
    names.write_text("".join(f"Class {i}\n" for i in range(10)))
    args = ["qualitative", "--checkpoints", *map(str, checkpoints), "--data", str(cifar_folder), "--num", "2",
            "--names", "A", "B", "--class-names", str(names), "--name", "fig8"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a = (tmp_path / "a/fig8.csv").read_text()
    assert a == (tmp_path / "b/fig8.csv").read_text()  # the draw is a function of --seed
    rows = list(csv.DictReader(open(tmp_path / "a/fig8.csv")))
    assert len({r["image"] for r in rows}) == 2 and {r["model"] for r in rows} == {"A", "B"}
    assert all(r["class"].startswith("Class ") for r in rows)


@pytest.mark.parametrize("extra,words", [
    (["--checkpoints", "ONE"], "two or more checkpoints"),
    (["--images", "cat/nope.jpg"], "is not an image of"),
    (["--names", "only-one"], "--names"),
    (["--topk", "0"], "--topk"),
    (["--checkpoints", "ONE", "/nope/run"], "checkpoint not found"),
    (["--data", "SMALL"], "predicts 10 classes"),
    (["--data", "/nope/folder"], "image folder not found"),
])
def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, cifar_folder, checkpoints, capsys, extra, words):
    small = tmp_path / "small"
    for c in ("a", "b", "c"):
        (small / c).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(small / c / "x.jpg")
    base = {"--checkpoints": [str(checkpoints[0]), str(checkpoints[1])], "--data": [str(cifar_folder)]}
    opts, key = {}, None
    for a in extra:
        if a.startswith("--"):
            key = a
            opts[key] = []
        else:
            opts[key].append({"ONE": str(checkpoints[0]), "SMALL": str(small)}.get(a, a))
    argv = ["qualitative"]
    for k, v in {**base, **opts}.items():
        argv += [k, *v]
    out = tmp_path / "out"
    rc = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: ") and words in err[0], err
    assert not out.exists()


def test_each_model_sees_its_own_evaluation_transform():
    from reports.qualitative import QualitativeError, eval_transform
    norm = eval_transform("cifar100", {"data": {"normalization": "official"}}).transforms[-1]
    assert tuple(norm.std) == (0.2023, 0.1994, 0.2010)
    assert tuple(eval_transform("cifar10_npz", {}).transforms[-1].mean) == (0.4914, 0.4822, 0.4465)
    names = [type(t).__name__ for t in eval_transform("imagenet", {}).transforms]
    assert names == ["Resize", "CenterCrop", "ToTensor", "Normalize"]
    with pytest.raises(QualitativeError, match="digits"):
        eval_transform("digits", {})
