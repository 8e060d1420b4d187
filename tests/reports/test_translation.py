"""The Table 4 detail report: greedy BLEU from eval records, best epoch, early-stopping scale,
the baseline differences with the n = 2 rule (worked by hand below), and the alpha_T selections."""
import json

import pytest

from core.runlog import RunLogWriter
from reports.__main__ import main
from reports.logs import find_runs
from reports.translation import best_epoch, greedy, to_markdown

from .conftest import assert_golden

MODEL = "transformer N=3"


def _run(root, method, seed, bleu, greedy_bleu=None, patience=0, epochs=6, valid=(3.0, 2.0, 2.5),
         table="table4", alpha=0.0, best=None, lr=1e-3, run_id=None):
    run_id = run_id or f"m30k_{method}_s{seed}"
    w = RunLogWriter(root / run_id / "log.jsonl")
    w.meta(run_id=run_id, task="translation", method=method, model=MODEL, dataset="multi30k_de_en",
           seed=seed, config={"optim": {"patience": patience, "epochs": epochs, "lr": lr},
                                             "method": {"name": method}, "seed": seed}, git_commit="abc", git_dirty=False,
           torch="x", device="cpu", started=f"2026-11-26T00:00:0{seed}{method}", table=table,
           row="multi30k_de_en", epochs=epochs, alpha_T=alpha)
    for e, v in enumerate(valid, 1):
        w.epoch(epoch=e, alpha=0.0, lr=1e-3, train_loss=1.0, valid_nll=v)
    metrics = {"bleu": bleu + 0.1, "bleu_tok": bleu, "bp_tok": 0.95, "valid_nll_best": min(valid),
               "checkpoint": "checkpoint_best.pt"}
    if best is not None:
        metrics["best_epoch"] = best
    w.final(metrics=metrics, reliability=None, wall_s=1.0)
    if greedy_bleu is not None:
        w.extra("eval", checkpoint="checkpoint_last.pt", subset="test", src=None, beam=1, lenpen=1.0,
                metrics={"bleu_tok": 99.0})  # another checkpoint: not the evaluated one
        w.extra("eval", checkpoint="checkpoint_best.pt", subset="test", src=None, beam=1, lenpen=1.0,
                metrics={"bleu_tok": greedy_bleu})
        w.extra("eval", checkpoint="checkpoint_best.pt", subset="test", src=None, beam=5, lenpen=1.0,
                metrics={"bleu_tok": 98.0})  # beam 5: not greedy


@pytest.fixture
def root(tmp_path):
    _run(tmp_path, "baseline", 1, 30.0, 28.0, patience=3, epochs=30, best=2)
    _run(tmp_path, "baseline", 2, 31.0, 29.0, patience=3, epochs=30, best=2)
    _run(tmp_path, "selfkd", 1, 32.0, 28.5, alpha=0.5)
    _run(tmp_path, "selfkd", 2, 33.0, 29.5, alpha=0.5)
    _run(tmp_path, "ls", 1, 30.5)  # one seed
    _run(tmp_path, "selfkd", 9, 50.0, alpha=0.3, table="table4_select")  # a candidate: not here
    _run(tmp_path, "selfkd", 7, 20.0, alpha=0.5, lr=5e-4, epochs=7)  # another setting: no baseline
    sel = {"metric": "valid sacreBLEU", "epochs": 6, "seed": 1, "alpha_T": 0.5, "candidates": [
        {"alpha_T": 0.3, "run": "a", "valid_bleu": 30.0, "valid_bleu_tok": 30.1, "valid_bp_tok": 1.0},
        {"alpha_T": 0.5, "run": "b", "valid_bleu": 31.0, "valid_bleu_tok": 31.1, "valid_bp_tok": None}]}
    (tmp_path / "selection.json").write_text(json.dumps(sel))
    return tmp_path


def test_greedy_and_best_epoch(root):
    runs = {r.run_id: r for r in find_runs([root])[0]}
    assert greedy(runs["m30k_baseline_s1"]) == 28.0  # beam 1, the evaluated checkpoint only
    assert greedy(runs["m30k_ls_s1"]) is None
    assert best_epoch(runs["m30k_baseline_s1"]) == 2  # from the final record
    assert best_epoch(runs["m30k_ls_s1"]) == 2  # older logs: from the epochs valid NLL


def test_markdown(root):
    runs = find_runs([root])[0]
    from reports.translation import find_selections
    md = to_markdown(runs, find_selections([root])[0])
    lines = md.splitlines()
    base = next(ln for ln in lines if "| baseline |" in ln)
    assert "early stop (patience 3), cap 30 ep" in base and "30.50 ± 0.71" in base
    assert "28.50 ± 0.71" in base  # greedy
    skd = next(ln for ln in lines if "| selfkd | 0.5 |" in ln)
    assert ", 6 ep," in skd and "32.50 ± 0.71" in skd
    assert "50.00" not in md  # the table4_select candidate is not a Table 4 line
    # Self-KD minus baseline: 32.5 - 30.5 = +2.00, ranges [32, 33] and [30, 31] separate; greedy
    # 29.0 - 28.5 = +0.50 with ranges [28.5, 29.5] and [28, 29] overlapping. The baseline stopped
    # early (cap 30) and Self-KD ran 6 epochs: one setting all the same. Paired by seed (1, 2):
    # +2.0 and +2.0 (sd 0); greedy +0.5 and +0.5; two pairs: shown, not called. LS seed 1: 30.5
    # against a baseline mean of 30.5 (unpaired 0) but its own seed-1 baseline 30.0 (paired +0.5).
    bleu = next(ln for ln in lines if "| selfkd | BLEU (tok.) |" in ln)
    assert "| +2.00 (n = 2 / 2) | ranges separate: Self-KD better | +2.00 ± 0.00 (n = 2) | 2 pairs: not called |" in bleu
    greedy_line = next(ln for ln in lines if "| selfkd | greedy BLEU (tok.) |" in ln)
    assert "| +0.50 (n = 2 / 2) | ranges overlap: no difference detected | +0.50 ± 0.00 (n = 2) |" in greedy_line
    assert "| ls | BLEU (tok.) | +0.00 (n = 2 / 1) | one seed on a side: not called | +0.50 (n = 1) |" in md
    assert not any("| ls | greedy BLEU" in ln for ln in lines)  # measured on neither side: no line
    assert sum("| selfkd | BLEU (tok.) |" in ln for ln in lines) == 1  # lr 5e-4: no baseline
    assert "chosen **alpha_T = 0.5**" in md and "| 0.3 | 30.00 | 30.10 | 1.000 | a |" in md
    assert "| 0.5 | 31.00 | 31.10 | – | b |" in md


def test_cli_and_bad_selection_file(root, tmp_path_factory, capsys):
    (root / "sub").mkdir()
    (root / "sub" / "selection.json").write_text("{not json")
    out = tmp_path_factory.mktemp("out")
    assert main(["table4-runs", "--runs", str(root), "--out", str(out)]) == 0
    assert "selection.json: not readable JSON" in capsys.readouterr().err
    assert "chosen **alpha_T = 0.5**" in (out / "table4_runs.md").read_text()


def test_the_chosen_selection_run_counts_as_its_seed_unless_repeated(tmp_path):
    from reports.translation import find_selections
    _run(tmp_path, "baseline", 1, 30.0)
    _run(tmp_path, "selfkd", 2, 33.0, alpha=0.1)
    sub = tmp_path / "sel"
    _run(sub, "selfkd", 1, 31.0, alpha=0.1, table="table4_select", run_id="a0.1_s1")
    _run(sub, "selfkd", 1, 99.0, alpha=0.3, table="table4_select", run_id="a0.3_s1")  # not chosen
    (sub / "selection.json").write_text(json.dumps({"alpha_T": 0.1, "chosen_run": "a0.1_s1",
                                                   "candidates": []}))
    runs = find_runs([tmp_path])[0]
    md = to_markdown(runs, find_selections([tmp_path])[0])
    line = next(ln for ln in md.splitlines() if "| selfkd | 0.1 |" in ln)
    assert "| 2 | 32.00 ± 1.41 |" in line and "99.00" not in md
    # a Table 4 repeat of seed 1 supersedes the candidate
    _run(tmp_path / "rep", "selfkd", 1, 31.5, alpha=0.1)
    md = to_markdown(find_runs([tmp_path])[0], find_selections([tmp_path])[0])
    line = next(ln for ln in md.splitlines() if "| selfkd | 0.1 |" in ln)
    assert "| 2 | 32.25 ± 1.06 |" in line


def test_unpaired_rules_by_seed_count():
    """n = 2 a side: the ranges rule; n >= 3 a side: Δ ± standard error, called beyond 2 of them."""
    from reports.translation import unpaired_call
    assert unpaired_call([30.0, 31.0], [32.0, 33.0], who="Self-KD") == (
        "+2.00 (n = 2 / 2)", "ranges separate: Self-KD better")
    assert unpaired_call([30.0, 31.0], [32.0, 33.0], higher_is_better=False) == (
        "+2.00 (n = 2 / 2)", "ranges separate: method worse")
    assert unpaired_call([30.0, 31.0, 32.0], [32.0, 33.0]) == (
        "+1.50 (n = 3 / 2)", "ranges overlap: no difference detected")
    # b = 30, 31, 32 (var 1), o = 33, 34, 35 (var 1): d = 3, se = sqrt(2/3) = 0.82 -> beyond 2 se
    assert unpaired_call([30.0, 31.0, 32.0], [33.0, 34.0, 35.0], who="LS") == (
        "+3.00 ± 0.82 (n = 3 / 3)", "beyond 2 SE: LS better")
    # o = 30.5, 31.5, 32.5: d = 0.5 < 1.63
    assert unpaired_call([30.0, 31.0, 32.0], [30.5, 31.5, 32.5]) == (
        "+0.50 ± 0.82 (n = 3 / 3)", "within 2 SE: no difference detected")
    assert unpaired_call([30.0], [None]) == ("–", "–")


def test_table4_runs_markdown_golden(root):
    """The whole rendering, unpaired and paired differences included (the fixture's folder
    written as <root>)."""
    from reports.translation import find_selections
    md = to_markdown(find_runs([root])[0], find_selections([root])[0])
    assert_golden("table4_runs.md", md.replace(str(root), "<root>"))



def test_a_run_logged_with_the_current_keys_is_the_same_setting_as_one_with_the_earlier_ones():
    """Runs logged after epochs moved to the top level and resume became a key (both translation
    conventions shared with the other tasks) group with runs logged before."""
    from types import SimpleNamespace

    from reports.translation import setting_key

    def run(config):
        return SimpleNamespace(meta={"config": config}, row="multi30k_de_en", dataset="multi30k_de_en",
                               model=MODEL)

    old = {"optim": {"epochs": 6, "lr": 1e-3}, "method": {"name": "selfkd", "alpha_T": 0.7}}
    new = {"epochs": 11, "resume": True, "resume_changed": "refuse", "stop_after_epochs": 0,
           "optim": {"lr": 1e-3}, "method": {"name": "selfkd", "selfkd": {"alpha_T": 0.7}}}
    assert setting_key(run(old)) == setting_key(run(new))
    new["optim"]["lr"] = 2e-3  # another learning rate is another setting
    assert setting_key(run(old)) != setting_key(run(new))
