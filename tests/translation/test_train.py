"""translation.train end to end on 300 Multi30k pairs with a 2-layer 64-dim Transformer:
3 epochs, teacher refreshed at epochs 2 and 3, the run log's schema, resume from
checkpoint_last.pt reproducing the uninterrupted run, beam search + BLEU giving a number."""
import math

import pytest
import torch

from core.config import load_config
from core.runlog import read_run_log
from tests.conftest import REPO
from tests.translation.conftest import TINY
from translation.train import METHODS, TrainConfig, fairseq_argv, main

CONFIGS = REPO / "translation" / "configs"
ROWS = ("multi30k_de_en", "iwslt15_en_de", "iwslt15_de_en")


def _args(prep_dir, out_dir, *extra):
    return (["--config", str(CONFIGS / "multi30k_de_en_selfkd.yaml")] + TINY +
            [f"data.prep_dir={prep_dir}", f"out_dir={out_dir}"] + list(extra))


def _params(run_dir):
    from translation.checkpoints import read_checkpoint
    return read_checkpoint(run_dir / "checkpoints" / "checkpoint_last.pt")["model"]


def test_selfkd_end_to_end_and_resume(tiny_multi30k, tmp_path, capsys):
    pytest.importorskip("fairseq")
    assert main(_args(tiny_multi30k, tmp_path, "run_id=full")) == 0
    log = read_run_log(tmp_path / "table4" / "full" / "log.jsonl", strict=True)
    meta = log.meta
    assert (meta["task"], meta["table"], meta["row"], meta["method"]) == (
        "translation", "table4", "multi30k_de_en", "selfkd")
    assert (meta["epochs"], meta["alpha_T"], meta["alpha_kind"]) == (3, 0.7, "linear")
    assert meta["command"].startswith("python -m translation.train --config")
    assert [e["epoch"] for e in log.epochs] == [1, 2, 3]
    # teacher: none at epoch 1, the end-of-epoch-1 model at epoch 2, of epoch 2 at epoch 3
    assert [e["teacher_epoch"] for e in log.epochs] == [None, 1, 2]
    assert [e["alpha"] for e in log.epochs] == pytest.approx([0.0, 0.7 * 2 / 3, 0.7], abs=1e-6)
    nll = [e["train_nll"] for e in log.epochs]
    assert all(math.isfinite(x) for x in nll) and nll[0] > nll[1] > nll[2]
    assert log.epochs[0]["train_loss"] == pytest.approx(log.epochs[0]["train_nll"])  # epoch 1: NLL
    m = log.final["metrics"]
    assert math.isfinite(m["bleu"]) and math.isfinite(m["bleu_tok"]) and m["bleu"] >= 0
    assert m["sacrebleu_signature"].startswith("nrefs:1") and "tok:13a" in m["sacrebleu_signature"]
    assert m["test_sentences"] == 40 and log.final["reliability"] is None

    # Stop after epoch 2 (stop_after_epochs: a runtime key, not part of the run's config), then
    # run the same command with --resume: it resumes from checkpoint_last.pt.
    assert main(_args(tiny_multi30k, tmp_path, "run_id=resumed", "stop_after_epochs=2")) == 0
    cut = read_run_log(tmp_path / "table4" / "resumed" / "log.jsonl", strict=True)
    assert [e["epoch"] for e in cut.epochs] == [1, 2] and cut.final is None
    # the first process's training time travels in the checkpoint (fairseq's
    # previous_training_time); make it unmistakable, then check that wall_s counts it
    last = tmp_path / "table4" / "resumed" / "checkpoints" / "checkpoint_last.pt"
    from translation.checkpoints import read_checkpoint
    state = read_checkpoint(last)
    assert 0 < state["extra_state"]["previous_training_time"] < 1e5
    state["extra_state"]["previous_training_time"] = 1e6
    torch.save(state, last)
    assert main(_args(tiny_multi30k, tmp_path, "run_id=resumed", "--resume")) == 0
    res = read_run_log(tmp_path / "table4" / "resumed" / "log.jsonl", strict=True)
    assert [r["type"] for r in res.extra] == ["resume"] and res.extra[0]["from_epoch"] == 2
    assert 1e6 < res.final["wall_s"] < 1e6 + 1e5
    assert 0 < log.final["wall_s"] < 1e5

    def strip(e):
        return {k: v for k, v in e.items() if k != "epoch_wall_s"}

    assert [strip(e) for e in res.epochs] == [strip(e) for e in log.epochs]
    assert res.final["metrics"]["bleu"] == m["bleu"]
    a, b = _params(tmp_path / "table4" / "full"), _params(tmp_path / "table4" / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # the evaluation command alone reproduces the logged BLEU
    import json

    from translation import evaluate
    ckpt = tmp_path / "table4" / "full" / "checkpoints" / "checkpoint_best.pt"
    capsys.readouterr()
    assert evaluate.main([str(ckpt), str(tiny_multi30k), "-s", "de", "-t", "en", "--beam", "2"]) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["bleu"] == m["bleu"] and scores["bleu_tok"] == m["bleu_tok"]

    # a finished run is not trained again, and without --resume its folder is not touched at all
    before = (tmp_path / "table4" / "full" / "log.jsonl").read_bytes()
    capsys.readouterr()
    assert main(_args(tiny_multi30k, tmp_path, "run_id=full")) == 2
    err = capsys.readouterr().err.strip()
    assert "exists; pass resume=true to continue it" in err and "\n" not in err
    assert main(_args(tiny_multi30k, tmp_path, "run_id=full", "resume=true")) == 0
    assert "is complete; nothing to do" in capsys.readouterr().out
    assert (tmp_path / "table4" / "full" / "log.jsonl").read_bytes() == before


def test_bad_input_is_one_line_error(tmp_path, capsys):
    cfg = str(CONFIGS / "multi30k_de_en_selfkd.yaml")
    for argv in (["--config", cfg, "epochs=three"], ["--config", cfg, "no_such_key=1"],
                 ["--config", cfg, "method.name=kd"], ["--config", str(tmp_path / "nope.yaml")],
                 ["--config", cfg, f"data.prep_dir={tmp_path}"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, err


@pytest.mark.parametrize("row", ROWS)
@pytest.mark.parametrize("method", METHODS)
def test_table4_configs(row, method, tmp_path):
    """One YAML per Table 4 cell, with Sec. 3.4's settings."""
    cfg = load_config(TrainConfig, CONFIGS / f"{row}_{method}.yaml")
    assert (cfg.table, cfg.row, cfg.method.name) == ("table4", row, method)
    assert (cfg.model.layers, cfg.model.embed_dim, cfg.model.heads, cfg.model.ffn_dim) == (6, 512, 4, 1024)
    assert cfg.epochs == 150 and cfg.optim.max_tokens == 4096
    assert list(cfg.optim.adam_betas) == [0.9, 0.98]
    src, tgt = row.split("_")[1:]
    assert (cfg.data.source_lang, cfg.data.target_lang) == (src, tgt)
    argv = fairseq_argv(cfg, tmp_path, use_cuda=True)
    opt = dict(zip(argv[1::1], argv[2::1]))
    assert opt["--criterion"] == "self_kd_cross_entropy" and opt["--max-epoch"] == "150"
    assert float(opt["--selfkd-alpha-T"]) == (0.7 if method == "selfkd" else 0.0)
    assert float(opt["--ls-eps"]) == (0.1 if method == "ls" else 0.0)


def test_checkpoint_without_log_is_refused(tiny_multi30k, tmp_path, capsys):
    ckpt = tmp_path / "table4" / "orphan" / "checkpoints" / "checkpoint_last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    assert main(_args(tiny_multi30k, tmp_path, "run_id=orphan", "--resume")) == 2
    assert "cannot resume the run log" in capsys.readouterr().err


def test_bleu_scores_report_brevity(tmp_path):
    """bp_tok / len_ratio_tok say whether a BLEU gap is length or precision: a perfect output
    has both at 1; dropping the last word of every hypothesis lowers both (and BLEU)."""
    import json

    from translation.evaluate import bleu_scores
    refs = ["a man is riding a red bike down the street .",
            "two dogs play in the green grass near a lake .",
            "a woman in a blue coat reads a big book ."]
    for sub, text in (("raw", refs), ("tok", refs)):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "test.en").write_text("\n".join(text) + "\n")
    (tmp_path / "prep.json").write_text(json.dumps({"config": {"lowercase": False}}))
    full = bleu_scores(refs, tmp_path, "test", "en")
    assert full["bleu_tok"] == pytest.approx(100.0)
    assert full["bp_tok"] == pytest.approx(1.0) and full["len_ratio_tok"] == pytest.approx(1.0)
    short = bleu_scores([r.rsplit(" ", 2)[0] + " ." for r in refs], tmp_path, "test", "en")
    n_ref = sum(len(r.split()) for r in refs)
    assert short["len_ratio_tok"] == pytest.approx((n_ref - 3) / n_ref)
    assert short["bp_tok"] == pytest.approx(math.exp(1 - n_ref / (n_ref - 3)))
    assert short["bleu_tok"] < full["bleu_tok"]


def test_early_stopping_and_its_resume(tiny_multi30k, tmp_path):
    """optim.patience: training stops once valid NLL has not improved for `patience` epochs, the
    run is complete (final record, best epoch logged), and a run cut off before that point resumes
    with fairseq's early-stopping counter restored from the log, stopping at the same epoch."""
    pytest.importorskip("fairseq")
    from translation.train import epochs_since_best
    assert epochs_since_best([3.0, 2.0, 2.5, 2.0]) == 2  # fairseq's strict "<": the first 2.0
    assert epochs_since_best([3.0]) == 0

    base = ["--config", str(CONFIGS / "multi30k_de_en_baseline.yaml")] + TINY + [
        "optim.lr=0.01", "epochs=40", "optim.patience=2", f"data.prep_dir={tiny_multi30k}",
        f"out_dir={tmp_path}"]
    assert main(base + ["run_id=full"]) == 0
    log = read_run_log(tmp_path / "table4" / "full" / "log.jsonl", strict=True)
    valid = [e["valid_loss"] for e in log.epochs]
    m = log.final["metrics"]
    assert m["stopped_early"] and len(valid) == m["epochs_trained"] < 40
    best = valid.index(min(valid))
    assert m["best_epoch"] == best + 1 and len(valid) == best + 1 + 2
    assert all(v >= valid[best] for v in valid[best + 1:])  # no improvement after the best

    # cut off one epoch before the stop, then resumed: the counter carries over
    assert main(base + ["run_id=cut", f"stop_after_epochs={len(valid) - 1}"]) == 0
    assert read_run_log(tmp_path / "table4" / "cut" / "log.jsonl").final is None
    assert main(base + ["run_id=cut", "--resume"]) == 0
    res = read_run_log(tmp_path / "table4" / "cut" / "log.jsonl", strict=True)
    assert len(res.epochs) == len(log.epochs) and res.final["metrics"]["best_epoch"] == best + 1
    assert res.final["metrics"]["bleu"] == m["bleu"]
    # a converged run is complete: running it again trains nothing
    assert main(base + ["run_id=full", "--resume"]) == 0
    assert len(read_run_log(tmp_path / "table4" / "full" / "log.jsonl").epochs) == len(valid)


def test_patience_is_refused_for_selfkd(tmp_path, capsys):
    assert main(["--config", str(CONFIGS / "multi30k_de_en_selfkd.yaml"), "optim.patience=3"]) == 2
    assert "needs T fixed in advance" in capsys.readouterr().err


def test_quiet_progress_lines_and_bad_fairseq_args(tiny_multi30k, tmp_path, capfd):
    """Default output: the run's own progress lines (within an epoch every log_interval updates,
    and at its end) and the result, not fairseq's log or library warnings; a typo in fairseq_args
    is a one-line error before the run folder exists."""
    pytest.importorskip("fairseq")
    base = ["--config", str(CONFIGS / "multi30k_de_en_baseline.yaml")] + TINY + [
        f"data.prep_dir={tiny_multi30k}", f"out_dir={tmp_path}", "epochs=2"]
    assert main(base + ["fairseq_args=[--max-updatez,3]", "run_id=typo"]) == 2
    err = capfd.readouterr().err.strip()
    assert err.startswith("error: fairseq rejected") and "--max-updatez" in err
    assert "\n" not in err and not (tmp_path / "table4" / "typo").exists()

    assert main(base + ["run_id=quiet", "log_interval=5"]) == 0
    out = capfd.readouterr()
    lines = [ln for ln in (out.out + out.err).splitlines() if ln.strip()]
    assert sum(ln.startswith("epoch 1 | update ") for ln in lines) == 2  # 10 updates, every 5
    assert any(ln.startswith("epoch 2 done | train loss ") and "valid NLL" in ln for ln in lines)
    assert len(lines) <= 10, lines
    # it ends by naming the run folder and what to run next
    assert lines[-2:] == [f"run folder: {tmp_path / 'table4' / 'quiet'}",
                          f"next: python -m reports tables --runs {tmp_path}, python -m reports figures --runs {tmp_path}"]
    assert not any("Warning" in ln or "DEBUG" in ln or "INFO" in ln for ln in lines), lines


def test_a_cpu_run_says_once_what_its_epochs_will_cost(tiny_multi30k, tmp_path, capfd, monkeypatch):
    """After its first epoch a CPU run prints what the epochs left will cost (measured on that
    epoch; silent for a short run: here the threshold is lowered to 0), once."""
    pytest.importorskip("fairseq")
    import core.notices as N
    base = ["--config", str(CONFIGS / "multi30k_de_en_baseline.yaml")] + TINY + [
        f"data.prep_dir={tiny_multi30k}", f"out_dir={tmp_path}", "epochs=3"]
    assert main(base + ["run_id=quiet_cost"]) == 0
    assert "running on CPU" not in capfd.readouterr().out  # 3 tiny epochs: under the threshold
    monkeypatch.setattr(N, "QUIET_BELOW_S", 0.0)
    assert main(base + ["run_id=cost"]) == 0
    lines = [ln for ln in capfd.readouterr().out.splitlines() if ln.startswith("running on CPU")]
    assert len(lines) == 1 and lines[0].startswith("running on CPU: epoch 1 took ")
    assert "the 2 epoch(s) left about" in lines[0]
