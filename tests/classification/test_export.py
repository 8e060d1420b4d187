"""classification.export: a finished tiny digits run -> model.safetensors + config.json + model card,
loaded back into the zoo with outputs identical to the run's own checkpoint; one-line errors."""
import json

import pytest
import torch
import yaml

from classification.export import load_exported, main, model_spec
from classification.models import build_model
from classification.train import main as train_main
from core.runlog import read_run_log

TINY = ["model=small_cnn", "data.name=digits", "data.num_workers=0", "data.train_subset=128",
        "data.test_subset=64", "progress=false", "method.name=selfkd", "run_id=r"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    assert train_main([*TINY, "epochs=1", f"out_dir={root}/done"]) == 0
    assert train_main([*TINY, "epochs=2", "stop_after_epochs=1", f"out_dir={root}/part"]) == 0
    return root


def test_export_and_load_back_identical(runs, tmp_path, capsys):
    run = runs / "done/table1/r"
    out = tmp_path / "hub"
    assert main([str(run), "--out", str(out)]) == 0
    assert "exported" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not list(tmp_path.glob(".*.tmp"))

    # the same outputs as the network rebuilt from the run's checkpoint
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    ref = build_model("small_cnn", 10, in_channels=1)
    ref.load_state_dict(state["model"])
    ref.eval()
    model = load_exported(out)
    assert not model.training
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k

    # safetensors with the hub's metadata, a config that names the zoo model
    from safetensors import safe_open
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert f.metadata() == {"format": "pt"} and set(f.keys()) == set(state["model"])
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "small_cnn" and config["num_classes"] == 10
    assert config["model_kwargs"] == {"in_channels": 1} and config["method"] == "selfkd" and config["epoch"] == 1

    # the card: YAML metadata with a model-index, the final record's metrics, method, command
    log = read_run_log(run / "log.jsonl", strict=True)
    card = (out / "README.md").read_text()
    head, body = card.split("---\n", 2)[1:]
    meta = yaml.safe_load(head)
    results = meta["model-index"][0]["results"][0]
    assert meta["model-index"][0]["name"] == "r" and results["dataset"]["name"] == "digits"
    assert {m["type"]: m["value"] for m in results["metrics"]} == log.final["metrics"]
    assert log.meta["command"] in body and "`selfkd`" in body and "alpha_T 0.8" in body
    assert f"{log.final['metrics']['top1_err']:.4g}" in body


def test_card_follows_the_hub_schema(runs, tmp_path):
    hub = pytest.importorskip("huggingface_hub")
    out = tmp_path / "hub"
    assert main([str(runs / "done/table1/r"), "--out", str(out)]) == 0
    card = hub.ModelCard.load(out / "README.md")  # a local file: no network
    assert "pytorch_model_hub_mixin" in card.data.tags
    results = card.data.eval_results
    assert results and results[0].task_type == "image-classification"
    assert {r.metric_type for r in results} >= {"top1_err", "nll", "ece"}


def test_model_spec_keeps_every_build_keyword():
    spec = model_spec({"model": "pyramidnet200_240", "model_kwargs": {"alpha": 240},
                       "data": {"name": "cifar100"}, "method": {"name": "cutmix_sd_selfkd"}}, 100)
    assert spec == {"model": "pyramidnet200_240", "num_classes": 100,
                    "model_kwargs": {"alpha": 240, "shakedrop": True}}


@pytest.mark.parametrize("which, msg", [
    ("missing", "not found"),
    ("part", "is not finished"),
    ("nolog", "has no log.jsonl"),
    ("noweights", "has no checkpoint.pt"),
    ("outfull", "is not an empty folder"),
])
def test_one_line_errors_and_nothing_written(runs, tmp_path, capsys, which, msg):
    import shutil
    run = {"missing": tmp_path / "nope", "part": runs / "part/table1/r"}.get(which, runs / "done/table1/r")
    out = tmp_path / "hub"
    if which in ("nolog", "noweights"):
        run = shutil.copytree(runs / "done/table1/r", tmp_path / "copy")
        (run / ("log.jsonl" if which == "nolog" else "checkpoint.pt")).unlink()
    if which == "outfull":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    assert main([str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and err.count("\n") == 1, err
    if which == "outfull":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".*.tmp"))
