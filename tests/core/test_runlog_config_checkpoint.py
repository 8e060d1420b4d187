import json
from dataclasses import dataclass, field

import pytest
import torch

from core.checkpoint import load_checkpoint, save_checkpoint
from core.config import ConfigError, load_config
from core.runlog import RunLogError, RunLogWriter, best_epoch_on_test, read_run_log

META = dict(run_id="r", task="t", method="selfkd", model="m", dataset="d", seed=0, config={},
            git_commit="abc", git_dirty=False, torch="x", device="cpu", started="now")


def test_runlog_round_trip_and_truncated_line(tmp_path):
    path = tmp_path / "log.jsonl"
    w = RunLogWriter(path)
    w.meta(**META)
    w.epoch(epoch=1, alpha=0.1, lr=0.1, train_loss=float("nan"), top1_err=50.0)
    w.final(metrics={"top1_err": 40.0}, reliability={"edges": [0, 1], "count": [1], "conf": [0.5], "acc": [1.0]}, wall_s=1.0)
    log = read_run_log(path, strict=True)
    assert log.meta["schema"] == 1 and log.complete and log.epochs[0]["train_loss"] is None  # NaN -> null
    with open(path, "a") as f:
        f.write('{"type": "epoch", "epo')  # killed mid-write
    log = read_run_log(path)
    assert log.complete and len(log.warnings) == 1 and f"{path}:4:" in log.warnings[0]
    with pytest.raises(RunLogError):
        read_run_log(path, strict=True)


def test_runlog_rejects_bad_records(tmp_path):
    w = RunLogWriter(tmp_path / "log.jsonl")
    with pytest.raises(RunLogError, match="lacks"):
        w.epoch(epoch=1)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"type": "meta", "schema": 99, **META}) + "\n")
    log = read_run_log(bad)
    assert log.meta is None and "schema version 99" in log.warnings[0]


def _good_log(path):
    w = RunLogWriter(path)
    w.meta(**META)
    for e in (1, 2):
        w.epoch(epoch=e, alpha=0.0, lr=0.1, train_loss=1.0)
    w.final(metrics={"top1_err": 40.0}, reliability=None, wall_s=1.0)
    return path.read_bytes().splitlines(keepends=True)  # meta, epoch 1, epoch 2, final


def test_runlog_skips_json_that_is_not_an_object(tmp_path):
    """Valid JSON that is not an object must not take down every table: it is a bad line like
    any other: skipped with "file:line: why"."""
    path = tmp_path / "log.jsonl"
    meta, e1, e2, final = _good_log(path)
    path.write_bytes(meta + e1 + b"[1, 2, 3]\n3\n\"x\"\nnull\n" + e2 + final)
    log = read_run_log(path)
    assert log.complete and [e["epoch"] for e in log.epochs] == [1, 2] and log.extra == []
    assert log.warnings == [f"{path}:{n}: not a JSON object (a JSON {kind})"
                            for n, kind in ((3, "array"), (4, "number"), (5, "string"),
                                            (6, "null"))]
    with pytest.raises(RunLogError, match=f"^{path}:3: not a JSON object"):
        read_run_log(path, strict=True)


def test_runlog_skips_lines_that_are_not_utf8(tmp_path):
    """Bytes that are not UTF-8 cost only the line holding them, with a warning naming it, not
    the whole file."""
    path = tmp_path / "log.jsonl"
    meta, e1, e2, final = _good_log(path)
    broken_e2 = e2.replace(b'"epoch"', b'"ep\xffoch"')
    path.write_bytes(meta + e1 + broken_e2 + b"\x80\x81 junk\n" + final)
    log = read_run_log(path)
    assert log.complete and [e["epoch"] for e in log.epochs] == [1]
    assert len(log.warnings) == 2
    assert log.warnings[0].startswith(f"{path}:3: not UTF-8 text (byte 0xff")
    assert log.warnings[1].startswith(f"{path}:4: not UTF-8 text (byte 0x80 at column 1")
    with pytest.raises(RunLogError, match=f"^{path}:3: not UTF-8"):
        read_run_log(path, strict=True)
    # UTF-8 beyond ASCII is text like any other
    path.write_bytes(meta + e1 + b'{"type": "note", "text": "caf\xc3\xa9 \xe2\x9c\x93"}\n' + final)
    log = read_run_log(path, strict=True)
    assert log.extra == [{"type": "note", "text": "café ✓"}] and log.warnings == []


def test_runlog_final_record_with_foreign_metrics_is_a_bad_line(tmp_path):
    path = tmp_path / "log.jsonl"
    meta, e1, e2, final = _good_log(path)
    path.write_bytes(meta + e1 + e2 + final.replace(b'"reliability": null', b'"reliability": 5'))
    log = read_run_log(path)
    assert not log.complete and "final reliability must be an object or null" in log.warnings[0]
    path.write_bytes(meta + e1 + e2 + final.replace(b'{"top1_err": 40.0}', b"[40.0]"))
    log = read_run_log(path)
    assert not log.complete
    assert log.warnings == [f"{path}:4: final metrics must be an object, got [40.0]"]


def test_truncate_to_epoch(tmp_path):
    w = RunLogWriter(tmp_path / "log.jsonl")
    w.meta(**META)
    for e in (1, 2, 3):
        w.epoch(epoch=e, alpha=0.0, lr=0.1, train_loss=1.0)
    w.extra("resume", from_epoch=2)
    w.truncate_to_epoch(2)
    log = read_run_log(w.path, strict=True)
    assert [e["epoch"] for e in log.epochs] == [1, 2] and log.extra == [{"type": "resume", "from_epoch": 2}]
    with pytest.raises(RunLogError):
        w.extra("final", metrics={})


@dataclass
class Sub:
    lr: float = 0.1
    milestones: list[int] = field(default_factory=lambda: [1, 2])


@dataclass
class Cfg:
    name: str = "a"
    sub: Sub = field(default_factory=Sub)


def test_config_layers(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("name: b\nsub:\n  lr: 0.5\n")
    cfg = load_config(Cfg, y, ["sub.lr=0.25", "sub.milestones=[3,4]"])
    assert (cfg.name, cfg.sub.lr, list(cfg.sub.milestones)) == ("b", 0.25, [3, 4])


@pytest.mark.parametrize("yaml_text,overrides,match", [
    ("nme: b\n", [], "nme"),                     # unknown key in the file
    ("", ["sub.rate=1"], "rate"),                 # unknown key on the command line
    ("sub:\n  lr: fast\n", [], "fast"),           # wrong type
    ("name: [unclosed\n", [], "malformed"),       # not YAML
    ("- a\n- b\n", [], "mapping"),                # not a mapping
    ("", ["sub.lr"], "key=value"),                # not an override
])
def test_config_errors_one_line(tmp_path, yaml_text, overrides, match):
    y = tmp_path / "c.yaml"
    y.write_text(yaml_text)
    with pytest.raises(ConfigError, match=match) as e:
        load_config(Cfg, y, overrides)
    assert "\n" not in str(e.value)


def test_config_base_files(tmp_path):
    (tmp_path / "base.yaml").write_text("name: base\nsub:\n  lr: 0.5\n  milestones: [7]\n")
    (tmp_path / "row.yaml").write_text("_base_: base.yaml\nsub:\n  lr: 0.2\n")
    cfg = load_config(Cfg, tmp_path / "row.yaml")
    assert (cfg.name, cfg.sub.lr, list(cfg.sub.milestones)) == ("base", 0.2, [7])
    (tmp_path / "loop.yaml").write_text("_base_: loop.yaml\n")
    with pytest.raises(ConfigError, match="itself"):
        load_config(Cfg, tmp_path / "loop.yaml")


def test_config_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Cfg, tmp_path / "nope.yaml")


def test_checkpoint_atomic(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"a": torch.arange(3)})
    assert torch.equal(load_checkpoint(path)["a"], torch.arange(3))
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind

    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"x": Boom()})
    assert torch.equal(load_checkpoint(path)["a"], torch.arange(3))  # old checkpoint intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_best_epoch_on_test_is_the_lowest_top1_first_on_ties():
    epochs = [{"epoch": 1, "top1_err": 30.0, "nll": 1.0, "train_loss": 2.0},
              {"epoch": 2, "top1_err": 20.0, "nll": 0.9, "ece": 3.0},
              {"epoch": 3, "top1_err": float("nan")},
              {"epoch": 4, "top1_err": 20.0, "nll": 0.8}]
    # the official code keeps a checkpoint only when accuracy is strictly higher: the first of a tie
    assert best_epoch_on_test(epochs) == {"epoch": 2, "top1_err": 20.0, "nll": 0.9, "ece": 3.0}
    assert best_epoch_on_test([{"epoch": 1, "bleu": 3.0}]) is None and best_epoch_on_test([]) is None
