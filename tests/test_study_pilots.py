"""The study's tools: tools/study_pilots.py, the pre-registered rule that chooses the setting from
its baseline pilots, on hand-made logs (the criteria at their edges), and the study config it
writes; tools/bench_epoch.py end to end on a tiny model."""
import importlib.util
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("study_pilots", REPO / "tools" / "study_pilots.py")
sp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sp)


def _pilot(root, run_id, n, train_err, top1, conf, ece, cpu_s=1200.0, complete=True):
    d = root / run_id
    d.mkdir(parents=True)
    meta = {"type": "meta", "schema": 1, "run_id": run_id, "task": "classification", "method": "baseline",
            "model": "resnet20", "dataset": "cifar10_npz", "seed": 0, "config": {"data": {"train_subset": n}},
            "git_commit": "abc", "git_dirty": False, "torch": "x", "device": "cpu", "started": "t",
            "table": "study_pilots", "row": run_id, "epochs": 10}
    recs = [meta, {"type": "epoch", "epoch": 10, "alpha": 0.0, "lr": 0.001, "train_loss": 0.2,
                   "train_top1_err": train_err, "fit_top1_err": train_err / 2}]
    if complete:
        recs.append({"type": "final", "metrics": {"top1_err": top1, "conf": conf, "ece": ece, "nll": 1.0},
                     "reliability": None, "wall_s": 2 * cpu_s})
    (d / "log.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    (d / "cpu_time.txt").write_text(f"{cpu_s - 110} 10 {cpu_s}\n100 0 {cpu_s}\n")  # resumed once
    return d


def test_most_images_among_those_that_fit_and_are_over_confident(tmp_path):
    _pilot(tmp_path, "a", 4500, 5.0, 30.0, 80.0, 10.0)              # meets (5.0 <= 5, conf - acc = 10)
    _pilot(tmp_path, "b", 9000, 5.01, 25.0, 85.0, 10.0)             # does not fit
    _pilot(tmp_path, "c", 2250, 1.0, 35.0, 80.0, 15.0)              # meets, fewer images
    _pilot(tmp_path, "d", 9000, 1.0, 25.0, 76.9, 1.9)               # not over-confident
    _pilot(tmp_path, "e", 9000, 1.0, 25.0, 85.0, 10.0, cpu_s=1801)  # meets; its cost flagged, not excluded
    sums = [sp.summary(d) for d in sorted(tmp_path.iterdir())]
    assert [sp.verdicts(s) for s in sums] == [
        {"fits": True, "over_confident": True, "cpu_under_30_min": True},
        {"fits": False, "over_confident": True, "cpu_under_30_min": True},
        {"fits": True, "over_confident": True, "cpu_under_30_min": True},
        {"fits": True, "over_confident": False, "cpu_under_30_min": True},
        {"fits": True, "over_confident": True, "cpu_under_30_min": False}]
    assert sp.choose(sums)["run_id"] == "e" and sp.choose(sums)["meets"] is True
    assert sp.choose(sums[:4])["run_id"] == "a"  # the most images; "b" has more but does not fit


def test_none_meets_names_the_closest_labelled(tmp_path, capsys):
    _pilot(tmp_path, "a", 4500, 9.0, 30.0, 80.0, 10.0)
    _pilot(tmp_path, "b", 9000, 7.0, 25.0, 85.0, 10.0)
    _pilot(tmp_path, "c", 2250, 2.0, 25.0, 70.0, 5.0, complete=False)  # running: not a candidate
    choice = sp.choose([sp.summary(d) for d in sorted(tmp_path.iterdir())])
    assert choice["run_id"] == "b" and choice["meets"] is False and "NOT meeting" in choice["why"]
    assert sp.main([str(tmp_path), "--json", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "| c | 2250 | 10/10 |" in out and "choice: b" in out
    assert json.loads((tmp_path / "c.json").read_text())["choice"]["run_id"] == "b"
    assert sp.main([str(tmp_path / "nowhere")]) == 2


def test_write_config_is_the_pilot_on_n_over_0_9_images_with_a_holdout(tmp_path, capsys):
    from classification.train import TrainConfig
    from core.config import load_config
    from classification.data import holdout_split
    d = _pilot(tmp_path / "p", "resnet20_4k5_aug_e130_baseline_s0", 4500, 4.0, 30.0, 80.0, 10.0)
    log = d / "log.jsonl"
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    recs[0]["row"] = "resnet20_4k5_aug_e130"
    recs[0]["command"] = ("python -m classification.train --config "
                          "classification/configs/reduced/study_resnet20_4k5_aug_e130_cpu.yaml threads=1")
    log.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    (tmp_path / "cfg").mkdir()  # the pilot's config and its base beside the written one (_base_ is relative)
    for name in ("study_resnet20_4k5_aug_e130_cpu.yaml", "regime_resnet20_cpu.yaml"):
        shutil.copy(REPO / "classification/configs/reduced" / name, tmp_path / "cfg" / name)
    out = tmp_path / "cfg" / "study_cpu.yaml"
    assert sp.main([str(tmp_path / "p"), "--write-config", str(out)]) == 0
    cfg = load_config(TrainConfig, out)
    pilot = load_config(TrainConfig, REPO / "classification/configs/reduced/study_resnet20_4k5_aug_e130_cpu.yaml")
    assert (cfg.data.train_subset, cfg.data.holdout_fraction, cfg.table, cfg.row) == (
        5000, 0.1, "study", "study_resnet20_4k5_aug_e130")
    assert len(holdout_split(5000, 0.1)[0]) == pilot.data.train_subset  # as many training images
    assert (cfg.epochs, cfg.optim.milestones, cfg.data.augment, cfg.model) == (
        pilot.epochs, pilot.optim.milestones, True, "resnet20")
    text = out.read_text()
    assert sp.main([str(tmp_path / "p"), "--write-config", str(out)]) == 0 and out.read_text() == text
    assert "kept, not overwritten" in capsys.readouterr().out


def test_bench_epoch_prints_every_part(shared_data, capsys):
    """tools/bench_epoch.py end to end on a tiny model: every variant, both augmentations, the
    evaluation cost and the epoch estimate are printed."""
    spec = importlib.util.spec_from_file_location("bench_epoch", REPO / "tools" / "bench_epoch.py")
    be = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(be)
    rc = be.main(["--data", str(shared_data / "cifar10-jpeg/cifar10_jpeg.npz"), "--model", "small_cnn",
                  "--steps", "1", "--rounds", "1", "--no-compile", "--n-train", "900", "--eval-every", "3"])
    out = capsys.readouterr().out
    assert rc == 0
    for part in ("| plain PyTorch loop |", "| + project loss and running metrics |", "| + channels_last |",
                 "| 2 threads |", "| fast path (uint8, in batch) |", "| torchvision PIL, DataLoader 0 workers |",
                 "eval forward + metrics:", "epoch estimate, 900 training images", "evaluating every 3 epochs"):
        assert part in out, part
    assert be.main(["--data", "/nonexistent.npz"]) == 2
