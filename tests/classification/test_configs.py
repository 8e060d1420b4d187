"""Every Table 1 / Table 2 / Fig. 2 row has a config that loads, validates and runs one step."""
from pathlib import Path

import pytest
import torch

import classification.train as T
from classification.launch import main as launch_main, table_configs
from classification.select_alpha import main as select_main
from classification.methods import Context, build_method
from classification.train import Dist, TrainConfig, train_step
from core.methods import get_method
from core.config import load_config
from core.runlog import read_run_log

CONFIGS = Path(T.__file__).parent / "configs"
# the seed paper's lines, the peers' (CS-KD, TF-KD-reg) lines of the official PS-KD README, and LWR, DLB, Zipf's LS
TABLE1 = {"resnet50": 3, "resnet101": 3, "densenet_bc100": 3, "resnext29_8x64d": 3 + 2, "pyramidnet200": 9 + 2,
          "preact_resnet18": 2 + 3, "preact_resnet101": 2, "densenet121": 2}


def _all_rows():
    return sorted(CONFIGS.glob("table*_*.yaml")) + sorted(CONFIGS.glob("fig2_*.yaml"))


def test_every_table_row_has_a_config():
    rows = {}
    for f in table_configs("table1"):
        cfg = load_config(TrainConfig, f)
        rows.setdefault(cfg.row, set()).add(cfg.method.name)
        assert f.name == f"table1_{cfg.row}_{cfg.method.name}.yaml"
        assert cfg.epochs == 300 and list(cfg.optim.milestones) == [150, 225]
        assert cfg.method.selfkd.alpha_T == (0.7 if "selfkd" in cfg.method.name else 0.8)  # the default elsewhere
    assert {r: len(m) for r, m in rows.items()} == TABLE1
    py = load_config(TrainConfig, CONFIGS / "table1_pyramidnet200_cutmix_sd_selfkd.yaml")
    assert (py.optim.batch_size, py.optim.lr, py.optim.weight_decay) == (64, 0.25, 1e-4)
    t2 = {load_config(TrainConfig, f).method.name for f in table_configs("table2")}
    assert t2 == {"baseline", "ls", "selfkd", "cutmix", "cutmix_selfkd", "cskd", "tfkd"}
    im = load_config(TrainConfig, CONFIGS / "table2_resnet152_selfkd.yaml")
    assert (im.epochs, im.optim.batch_size, im.method.selfkd.alpha_T, list(im.optim.milestones)) == (90, 256, 0.3, [30, 60])
    fig2 = {(c.method.selfkd.alpha_kind, c.method.selfkd.alpha_T) for c in map(lambda f: load_config(TrainConfig, f), table_configs("fig2"))
            if c.method.name == "selfkd"}
    assert fig2 == {("fixed", a / 10) for a in range(1, 8)} | {("linear", 0.7)}


@pytest.mark.parametrize("config", _all_rows(), ids=lambda p: p.stem)
def test_config_validates_and_steps(config, monkeypatch):
    monkeypatch.setattr(T, "check_data_path", lambda *a: None)  # no CIFAR-100 / ImageNet here
    cfg = load_config(TrainConfig, config)
    T.validate(cfg)
    if config.stem.startswith("fig2") or config.stem.split("_")[-1] not in ("baseline", "selfkd", "sd"):
        return  # each (model, regulariser) pair is stepped once below, via its baseline/selfkd/sd rows
    k, size = (1000, 64) if cfg.data.name == "imagenet" else (100, 32)
    from classification.models import build_model
    model = build_model(cfg.model, k, **({"shakedrop": True} if get_method(cfg.method.name).shakedrop else {}))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    method = build_method(cfg.method, Context(k, range(4), cfg.epochs, Dist("cpu")))
    method.start_epoch(model, 2)  # epoch 2: a snapshot teacher's extra forward runs
    x, y = torch.randn(2, 3, size, size), torch.tensor([1, 3])
    loss, logits = train_step(model, opt, method, x, y, torch.tensor([0, 2]))
    assert torch.isfinite(loss) and logits.shape == (2, k)


def test_table2_follows_the_official_and_cutmix_imagenet_settings():
    """The official ImageNet ResNet initialises every BatchNorm scale to 1 (timm
    zero-initialises the last of each block unless told not to); CutMix alone mixes every batch on
    ImageNet (its code's setting); the Self-KD rows say where p_{t-1} comes from (Sec. 2.2)."""
    from classification.models import build_model
    cfgs = {c.method.name: c for c in (load_config(TrainConfig, f) for f in table_configs("table2"))}
    assert all(c.model == "timm/resnet152" and c.model_kwargs == {"zero_init_last": False} for c in cfgs.values())
    assert all(c.optim.nesterov for c in cfgs.values())
    assert cfgs["cutmix"].method.cutmix.prob == 1.0
    assert {n: c.method.selfkd.teacher for n, c in cfgs.items() if "selfkd" in n} == {
        "selfkd": "snapshot", "cutmix_selfkd": "snapshot"}
    # the kwargs reach timm: a (smaller) timm ResNet built with them has no zero BN scale
    bn = lambda m: [x.weight for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]  # noqa: E731
    official = build_model("timm/resnet50", 10, **cfgs["baseline"].model_kwargs)
    assert all(bool((w == 1).all()) for w in bn(official))
    assert any(bool((w == 0).all()) for w in bn(build_model("timm/resnet50", 10)))  # timm's default


def test_launcher_runs_missing_runs_and_skips_done(tmp_path, capsys, monkeypatch):
    common = ["model=small_cnn", "data.name=digits", "data.num_workers=0", "data.train_subset=64",
              "data.test_subset=64", "epochs=1", "progress=false", f"out_dir={tmp_path}"]
    assert launch_main(["table1", *common, "--rows", "resnet50", "--seeds", "0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("todo  ") == 3 and "3 of 3 runs to do" in out
    assert launch_main(["table1", *common, "--rows", "resnet50", "--methods", "selfkd", "--seeds", "0"]) == 0
    assert read_run_log(tmp_path / "table1/resnet50_selfkd_s0/log.jsonl", strict=True).complete
    assert launch_main(["table1", *common, "--rows", "resnet50", "--methods", "selfkd", "--seeds", "0", "--dry-run"]) == 0
    assert "0 of 1 runs to do" in capsys.readouterr().out
    assert launch_main(["table9"]) == 2


def test_select_alpha(tmp_path, capsys):
    import json
    rc = select_main(["--alphas", "0.0", "0.8", "--", "model=small_cnn", "data.name=digits", "data.num_workers=0",
                      "data.train_subset=200", "epochs=2", "progress=false", f"out_dir={tmp_path}"])
    assert rc == 0
    sel = json.loads((tmp_path / "alpha_select/small_cnn_s0.selection.json").read_text())
    errs = {float(a): e for a, e in sel["holdout_top1_err"].items()}
    assert sel["alpha_T"] == min(errs, key=lambda a: (errs[a], a)) and sel["holdout_fraction"] == 0.1
    log = read_run_log(tmp_path / "alpha_select/small_cnn_a0.8_s0/log.jsonl", strict=True)
    assert log.meta["eval_split"] == "holdout" and sum(log.final["reliability"]["count"]) == 20
    assert select_main(["--holdout", "1.0", "--", "data.name=digits"]) == 2
    assert "holdout fraction must be in (0, 1)" in capsys.readouterr().err


def test_every_paper_row_has_its_config():
    """The transcribed paper numbers (reports/paper) and the configs name rows the same way."""
    import csv
    paper = Path(T.__file__).parents[1] / "reports" / "paper" / "results.csv"
    with open(paper) as f:
        rows = {(r["table"], r["row"], r["method"]) for r in csv.DictReader(f)
                if r["table"] in ("table1", "table2") and r["method"] != "reported"}
    missing = [f"{t}_{r}_{m}.yaml" for t, r, m in sorted(rows) if not (CONFIGS / f"{t}_{r}_{m}.yaml").is_file()]
    assert len(rows) == 26 and not missing, missing
