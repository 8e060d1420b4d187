"""detection.train end to end on CPU: a backbone checkpoint written by classification/ in the test,
fine-tuned on the real VOC sample and rendered by reports into Tables 3 and 5; kill and resume
equal to the uninterrupted run; the shortened learnability check (bad inputs: test_errors.py)."""
import json

import pytest
import torch

from core.config import load_config
from core.runlog import read_run_log
from detection.synthetic import write_synthetic_voc
from detection.config import TrainConfig
from detection.engine import build_data, build_model, epoch_data, evaluate, param_groups
from detection.train import main, train

SYNTH = ["data.name=synthetic_voc4", "data.train=2007:trainval", "data.test=2007:test",
         "data.classes=[aeroplane,bicycle,bird,boat]", "data.num_workers=0", "model.backbone=resnet20",
         "model.min_size=64", "model.max_size=64", "model.anchor_sizes=[8,16,32]", "model.frozen_bn=false",
         "optim.lr=0.02", "optim.batch_size=4", "progress=false", "device=cpu", "table=detection_check"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_voc(root, 48, image_size=64, object_size=(12, 28), objects_per_image=(1, 2))
    return root


@pytest.fixture
def backbone_ckpt(tmp_path_factory, shared_data):
    """A tiny ResNet-20 trained 1 epoch by classification/ on 64 CIFAR-10 JPEG images."""
    from classification.train import TrainConfig as CTrain, train as ctrain
    out = tmp_path_factory.mktemp("clf")
    cfg = load_config(CTrain, None, ["model=resnet20", "data.name=cifar10_npz",
                                     f"data.root={shared_data / 'cifar10-jpeg/cifar10_jpeg.npz'}",
                                     "data.train_subset=64", "data.test_subset=32", "data.num_workers=0",
                                     "data.fit_subset=0", "epochs=1", "optim.batch_size=32", "progress=false",
                                     f"out_dir={out}", "table=table2", "method.name=selfkd"])
    return ctrain(cfg) / "checkpoint.pt"


def test_tiny_run_on_real_voc_renders_tables_3_and_5(tmp_path, voc_sample, backbone_ckpt):
    rc = main([f"data.root={voc_sample}", "data.train=2007:trainval+2012:trainval", "data.test=2007:test",
               "data.num_workers=0", f"model.backbone_checkpoint={backbone_ckpt}", "model.min_size=96",
               "model.max_size=128", "model.anchor_sizes=[16,32,64]", "epochs=2", "optim.milestones=[1]",
               "method.name=selfkd", "row=resnet20", f"out_dir={tmp_path}", "progress=false", "device=cpu",
               "data.flip=copy"])
    assert rc == 0
    log = read_run_log(tmp_path / "table3/resnet20_selfkd_s0/log.jsonl", strict=True)
    meta = log.meta
    assert meta["task"] == "detection" and meta["model"] == "resnet20" and meta["train_images"] == 10
    assert meta["epoch_samples"] == 20  # data.flip=copy: each image as is and mirrored
    assert meta["backbone_epoch"] == meta["backbone_epochs"] == 1  # the classification run's last epoch
    ignored = set(meta["backbone_ignored"])
    assert meta["backbone_loaded"] > 0 and {"linear.bias", "linear.weight"} <= ignored
    assert all(k.startswith("linear.") or k.endswith("num_batches_tracked") for k in ignored)
    assert [e["lr"] for e in log.epochs] == pytest.approx([1e-3, 1e-4])
    m = log.final["metrics"]
    assert 0.0 <= m["map"] <= 100.0 and set(m["ap"]) == set(json.loads(json.dumps(m["ap"])))
    from reports.__main__ import main as reports_main
    out = tmp_path / "out"
    assert reports_main(["table3", "--runs", str(tmp_path), "--out", str(out)]) == 0
    assert reports_main(["table5", "--runs", str(tmp_path), "--out", str(out)]) == 0
    t3 = (out / "table3.md").read_text()
    assert "| resnet20 | + Self-KD |" in t3 and f"{m['map']:.2f}" in t3
    assert "voc07+12" in t3


def test_kill_and_resume_equals_uninterrupted(tmp_path, synth):
    base = [*SYNTH, f"data.root={synth}", "data.train_subset=16", "data.test_subset=8", "epochs=2"]
    full = train(load_config(TrainConfig, None, [*base, f"out_dir={tmp_path / 'a'}"]))
    part = train(load_config(TrainConfig, None, [*base, f"out_dir={tmp_path / 'b'}", "stop_after_epochs=1"]))
    assert not read_run_log(part / "log.jsonl").complete
    train(load_config(TrainConfig, None, [*base, f"out_dir={tmp_path / 'b'}", "resume=true"]))
    a, b = read_run_log(full / "log.jsonl", strict=True), read_run_log(part / "log.jsonl", strict=True)
    assert [e["train_loss"] for e in a.epochs] == [e["train_loss"] for e in b.epochs]
    assert a.final["metrics"] == b.final["metrics"]


def test_earlier_method_spelling_loads_and_resumes(tmp_path, synth, capsys):
    """`method: <name>` (detection's spelling before method.name) still loads, from a file, a
    command line or a run folder's config.yaml, and a run started under it resumes."""
    cfg = load_config(TrainConfig, None, ["method=selfkd"])
    assert cfg.method.name == "selfkd" and "method -> method.name" in capsys.readouterr().err
    base = [*SYNTH, f"data.root={synth}", "data.train_subset=8", "data.test_subset=4", "epochs=2",
            f"out_dir={tmp_path}"]
    run = train(load_config(TrainConfig, None, [*base, "stop_after_epochs=1"]))
    saved = (run / "config.yaml").read_text()
    assert "method:\n  name: baseline\n" in saved
    (run / "config.yaml").write_text(saved.replace("method:\n  name: baseline\n", "method: baseline\n"))
    train(load_config(TrainConfig, run / "config.yaml", ["resume=true", "stop_after_epochs=0"]))
    log = read_run_log(run / "log.jsonl", strict=True)
    assert log.complete and log.meta["method"] == "baseline"


def test_every_committed_detection_log_config_loads_unchanged(tmp_path):
    """The config in each committed detection log (written with `method: <name>`) loads under
    today's keys with no change: such a run folder resumes and re-evaluates."""
    import yaml
    from core.config import to_dict
    from core.run import config_changes
    from detection.config import RENAMED_KEYS
    from tests.conftest import REPO
    logs = [p for p in sorted((REPO / "reports" / "runs").rglob("log.jsonl"))
            if json.loads(p.read_text().splitlines()[0]).get("task") == "detection"]
    assert logs
    for path in logs:
        old = json.loads(path.read_text().splitlines()[0])["config"]
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
        cfg = load_config(TrainConfig, tmp_path / "config.yaml")
        assert config_changes(old, to_dict(cfg), renames=RENAMED_KEYS) == [], path
        assert cfg.method.name == old["method"]


def test_learnability_short(tmp_path, synth):
    """The CI version of the committed learnability run: mAP rises far above the untrained
    model's on the synthetic shapes."""
    cfg = load_config(TrainConfig, None, [*SYNTH, f"data.root={synth}", "epochs=4", "optim.milestones=[4]",
                                          "eval_every=2", f"out_dir={tmp_path}"])
    torch.manual_seed(cfg.seed)
    train_set, test_set = build_data(cfg)
    untrained = evaluate(build_model(cfg, train_set.num_classes)[0], test_set, torch.device("cpu")).to_log()["map"]
    run = train(cfg)
    trained = read_run_log(run / "log.jsonl", strict=True).final["metrics"]["map"]
    print(f"untrained mAP {untrained:.2f}, trained {trained:.2f}")
    assert untrained < 5.0 and trained > untrained + 25.0, (untrained, trained)
    # the learning curve: mAP of epoch 2 in its epoch line, drawn by make figures
    log = read_run_log(run / "log.jsonl", strict=True)
    assert ["map" in e for e in log.epochs] == [False, True, False, False]
    from PIL import Image
    from reports.__main__ import main as reports_main
    assert reports_main(["figures", "--runs", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    with Image.open(tmp_path / "out/figures/map_curve_detection_check_resnet20_baseline_s0.png") as im:
        assert im.text["Panels"] == "2"


def test_evaluate_cli_reproduces_the_final_map(tmp_path, synth, capsys):
    from detection.evaluate import main as eval_main
    run = train(load_config(TrainConfig, None, [*SYNTH, f"data.root={synth}", "data.train_subset=8",
                                                "data.test_subset=6", "epochs=1", f"out_dir={tmp_path}"]))
    final = read_run_log(run / "log.jsonl", strict=True).final["metrics"]
    assert eval_main([str(run), "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text()) == final
    assert eval_main([str(tmp_path)]) == 2
    assert "not a detection run folder" in capsys.readouterr().err


@pytest.mark.parametrize("row", ["baseline", "ls", "selfkd"])
def test_table3_row_configs(row):
    cfg = load_config(TrainConfig, f"detection/configs/resnet152_{row}.yaml")
    assert (cfg.table, cfg.row, cfg.method.name, cfg.epochs, cfg.optim.lr, cfg.optim.batch_size) == \
        ("table3", "resnet152", row, 10, 1e-3, 1)
    assert cfg.model.backbone_checkpoint == f"runs/table2/resnet152_{row}_s0/checkpoint.pt"
    # faster-rcnn.pytorch's ResNet settings, whose batch-1 schedule the paper's is
    assert (cfg.data.flip, cfg.model.roi_output_size, cfg.model.roi_sampling_ratio) == ("copy", 7, 0)
    assert (cfg.optim.weight_decay, cfg.optim.bias_decay, cfg.optim.bias_lr_mult) == (1e-4, False, 1.0)
    from core.schedules import step_lr
    assert [step_lr(e, 1e-3, cfg.optim.milestones, 0.1) for e in (5, 6)] == pytest.approx([1e-3, 1e-4])


def test_tensorboard_mirror(tmp_path, synth):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run = train(load_config(TrainConfig, None, [*SYNTH, f"data.root={synth}", "data.train_subset=8",
                                                "data.test_subset=4", "epochs=1", "tensorboard=true",
                                                f"out_dir={tmp_path}"]))
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    loss = read_run_log(run / "log.jsonl", strict=True).epochs[0]["train_loss"]
    assert [(e.step, e.value) for e in acc.Scalars("train_loss")] == [(1, pytest.approx(loss, rel=1e-6))]


def test_bias_groups_skip_weight_decay_and_scale_lr():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    net[0].weight.requires_grad_(False)
    one = param_groups(net, 0.5)
    assert len(one) == 1 and len(one[0]["params"]) == 3 and one[0]["weight_decay"] == 0.5
    w, b = param_groups(net, 0.5, bias_decay=False, bias_lr_mult=2.0)
    assert [p is net[1].weight for p in w["params"]] == [True]
    assert {id(p) for p in b["params"]} == {id(net[0].bias), id(net[1].bias)}
    assert (w["weight_decay"], w["lr_mult"], b["weight_decay"], b["lr_mult"]) == (0.5, 1.0, 0.0, 2.0)
    # a step on zero gradients: weight decay shrinks the weight, leaves the biases alone
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt = torch.optim.SGD([w, b], lr=0.1)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    torch.testing.assert_close(net[1].weight, before["1.weight"] * (1 - 0.1 * 0.5))
    torch.testing.assert_close(net[1].bias, before["1.bias"])
    torch.testing.assert_close(net[0].bias, before["0.bias"])


def test_flipped_copy_epoch_bias_groups_and_roi_size_in_a_run(tmp_path, synth):
    cfg = load_config(TrainConfig, None, [*SYNTH, f"data.root={synth}", "data.train_subset=4", "data.test_subset=2",
                                          "epochs=2", "optim.milestones=[1]", "data.flip=copy",
                                          "optim.bias_decay=false", "optim.bias_lr_mult=2",
                                          "model.roi_output_size=7", "model.roi_sampling_ratio=0",
                                          f"out_dir={tmp_path}"])
    train_set, _ = build_data(cfg)
    assert train_set.flip_prob == 0.0 and len(epoch_data(cfg, train_set)) == 8
    model = build_model(cfg, train_set.num_classes)[0]
    pool = model.roi_heads.box_roi_pool
    assert tuple(pool.output_size) == (7, 7) and pool.sampling_ratio == 0
    run = train(cfg)
    meta = read_run_log(run / "log.jsonl", strict=True).meta
    assert (meta["train_images"], meta["epoch_samples"]) == (4, 8)
    groups = torch.load(run / "checkpoint.pt", weights_only=True)["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == pytest.approx([0.002, 0.004])  # epoch 2: lr 0.02 x 0.1, biases x2
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0]


def _epochs_and_final(run):
    log = read_run_log(run / "log.jsonl", strict=True)
    return [{k: v for k, v in e.items() if k != "epoch_s"} for e in log.epochs], log.final["metrics"]


def test_crafted_backbone_checkpoint_does_not_run_its_code(tmp_path, synth, capsys):
    from detection.backbone import BackboneCheckpointError, read_classification_checkpoint
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('pwned')",))
    evil = tmp_path / "evil.pt"
    torch.save({"model": {"conv1.weight": torch.zeros(1)}, "config": Payload()}, evil)
    with pytest.raises(BackboneCheckpointError):
        read_classification_checkpoint(evil)
    out = tmp_path / "runs"
    assert main([*SYNTH, f"data.root={synth}", f"out_dir={out}", "epochs=1", f"model.backbone_checkpoint={evil}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "evil.pt" in err[0], err
    assert not marker.exists() and not [p for p in out.rglob("*") if p.is_file()]


def test_full_disk_is_one_line_and_the_run_resumes(tmp_path, synth, capsys, monkeypatch):
    import errno
    base = [*SYNTH, f"data.root={synth}", "data.train_subset=4", "data.test_subset=2", "epochs=1",
            f"out_dir={tmp_path}"]
    real_save = torch.save

    def no_space(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", no_space)
    assert main(base) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the disk is full") and "checkpoint.pt" in err[0], err
    monkeypatch.setattr(torch, "save", real_save)
    assert main([*base, "--resume"]) == 0


def test_sigkill_of_a_running_training_resumes_to_the_uninterrupted_run(tmp_path, synth):
    """A real detection.train process killed (SIGKILL) after its first checkpoint, wherever it
    is; resumed, its epoch lines and final mAP equal an uninterrupted run's."""
    from tests.kills import sigkill_after_first_checkpoint
    base = [*SYNTH, f"data.root={synth}", "data.train_subset=8", "data.test_subset=4", "epochs=2",
            "optim.milestones=[1]", "run_id=k"]
    full = train(load_config(TrainConfig, None, [*base, f"out_dir={tmp_path / 'a'}"]))
    run = tmp_path / "b" / "detection_check" / "k"
    sigkill_after_first_checkpoint("detection.train", [*base, f"out_dir={tmp_path / 'b'}"], run / "checkpoint.pt")
    assert not read_run_log(run / "log.jsonl").complete
    assert main([*base, f"out_dir={tmp_path / 'b'}", "--resume"]) == 0
    assert _epochs_and_final(run) == _epochs_and_final(full)


def test_a_finished_run_names_its_folder_and_the_next_command(tmp_path, synth, capsys):
    rc = main([*SYNTH, f"data.root={synth}", f"out_dir={tmp_path}", "epochs=1", "optim.milestones=[1]"])
    assert rc == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "detection_check" / "resnet20_baseline_s0"
    assert f"run folder: {run_dir}\nnext: python -m reports figures --runs {tmp_path}" in out
