"""The "which method" table of the pre-registered study: numbers from the test eval record (raw and
after temperature scaling), the paired and unpaired differences worked by hand, the verdict words
at the 2-SE boundary, missing seeds and methods, the alpha_T selection, and the CLI's outputs."""
import json
import math

import pytest

from core.runlog import RunLogWriter
from reports.__main__ import main
from reports.differences import Difference
from reports.logs import find_runs
from reports.study import find_selections, study_settings, to_csv, to_markdown, verdict

ROW = "study_tiny"
RELIABILITY = {"edges": [0.0, 0.5, 1.0], "conf": [0.3, 0.9], "acc": [0.2, 0.8]}


def _run(root, method, seed, top1=20.0, nll=1.0, ece=10.0, aurc=100.0, ts=(0.5, 2.0, 90.0), T=1.5,
         scored=True, complete=True, alpha_T=None, train_err=3.0, at_bound=False):
    """A study run: its final record holds holdout numbers (99s, 500 holdout images) that must never
    show; the test numbers are in the eval record (10,000 test images), ts = (NLL, ECE, AURC)
    after temperature scaling."""
    d = root / "study" / f"{ROW}_{method}_s{seed}"
    w = RunLogWriter(d / "log.jsonl")
    extra = {} if alpha_T is None else {"alpha_T": alpha_T}
    w.meta(run_id=d.name, task="classification", method=method, model="resnet20", dataset="cifar10_npz",
           seed=seed, config={}, git_commit="abc", git_dirty=False, torch="x", device="cpu",
           started=f"2026-12-03T00:00:0{seed}", table="study", row=ROW, epochs=65,
           eval_split="holdout", **extra)
    w.epoch(epoch=65, alpha=0.0, lr=0.001, train_loss=0.1, train_top1_err=train_err,
            fit_top1_err=train_err / 2, top1_err=99.0, nll=9.0, ece=99.0, aurc=999.0)
    if not complete:
        return
    w.final(metrics={"top1_err": 99.0, "nll": 9.0, "ece": 99.0, "aurc": 999.0},
            reliability={**RELIABILITY, "count": [400, 100]}, wall_s=1.0)
    if scored:
        w.extra("eval", task="classification", split="test", checkpoint="checkpoint.pt", epoch=65,
                metrics={"top1_err": top1, "nll": nll, "ece": ece, "aurc": aurc, "conf": 90.0},
                reliability={**RELIABILITY, "count": [9000, 1000]},
                temperature_scaled={"temperature": T, "ts_fit": "holdout", "split": "test", "at_bound": at_bound,
                                    "metrics": {"top1_err": top1, "nll": ts[0], "ece": ts[1], "aurc": ts[2],
                                                "conf": 80.0 + seed}})


def _selection(root, errors, alpha_T, name=f"{ROW}_s0.selection.json"):
    p = root / "alpha_select" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"row": ROW, "seed": 0, "holdout_fraction": 0.1, "metric": "top1_err",
                             "holdout_top1_err": errors, "alpha_T": alpha_T, "tie": None,
                             "decided": "2026-12-03T12:00:00+00:00"}))
    return p


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "runs"
    # baseline, seeds 0-2
    for s, (t, n, tsn, tse, T) in enumerate(((20.0, 1.0, 0.80, 2.0, 1.5), (22.0, 1.1, 0.90, 3.0, 1.6),
                                             (21.0, 1.2, 0.85, 4.0, 1.7))):
        _run(r, "baseline", s, top1=t, nll=n, ece=10.0, aurc=100.0, ts=(tsn, tse, 95.0 + s), T=T)
    # Self-KD, seeds 0-2: top-1 an improvement paired (not unpaired); ECE exactly 2 SE; AURC just inside
    for s, (t, n, e, a, tsn) in enumerate(((19.0, 0.9, 11.0, 101.0, 0.85), (21.5, 1.0, 11.0, 101.0, 0.95),
                                          (19.5, 1.1, 14.0, 103.9, 0.90))):
        _run(r, "selfkd", s, top1=t, nll=n, ece=e, aurc=a, ts=(tsn, 3.0, 96.0), T=1.2, alpha_T=0.7)
    # CS-KD: seed 1 missing
    _run(r, "cskd", 0, top1=18.0)
    _run(r, "cskd", 2, top1=20.0)
    # label smoothing: one run finished but not scored on test, one in progress
    _run(r, "ls", 0, scored=False)
    _run(r, "ls", 1, complete=False)
    return r


def _grid(md: str) -> list[str]:
    """The lines of the report from its first full method grid on (the glance table above it
    repeats the method rows)."""
    lines = md.splitlines()
    return lines[lines.index("### Each method, raw and after temperature scaling"):]


def _setting(root):
    settings = study_settings(find_runs([root])[0])
    assert len(settings) == 1
    return settings[0]


def test_paired_and_unpaired_by_hand(root):
    s = _setting(root)
    # top-1, (i): per-seed differences -1.0, -0.5, -1.5 -> mean -1.0, sd 0.5, SE 0.5/sqrt(3)
    p, u = s.compare("selfkd", "top1_err", False, False)
    assert p.paired and p.n == 3
    assert p.value == pytest.approx(-1.0) and p.se == pytest.approx(0.5 / math.sqrt(3))
    assert verdict(p) == "improvement"
    # unpaired: means 20.0 - 21.0; variances 1.75 and 1.0 -> SE sqrt(1.75/3 + 1/3) = 0.957 > 0.5
    assert u.value == pytest.approx(-1.0) and u.se == pytest.approx(math.sqrt(2.75 / 3))
    assert (u.n_base, u.n_other) == (3, 3)
    assert verdict(u) == "no difference detected at n = 3 / 3"
    # NLL (iii): Self-KD raw 0.9, 1.0, 1.1 minus baseline after TS 0.80, 0.90, 0.85
    # -> 0.10, 0.10, 0.25: mean 0.15, sd sqrt(0.0075), SE 0.05
    p, _ = s.compare("selfkd", "nll", False, True)
    assert p.value == pytest.approx(0.15) and p.se == pytest.approx(0.05)
    assert verdict(p) == "degradation"
    # NLL (ii): after TS both: 0.05 every seed
    p, u = s.compare("selfkd", "nll", True, True)
    assert p.value == pytest.approx(0.05) and u.value == pytest.approx(0.05)


def test_verdict_words_at_the_two_se_boundary(root):
    s = _setting(root)
    # ECE differences 1, 1, 4: mean 2, sd sqrt(3), SE exactly 1 -> |mean| = 2 SE is not beyond
    p, _ = s.compare("selfkd", "ece", False, False)
    assert (p.value, p.se) == (2.0, 1.0)
    assert verdict(p) == "no difference detected at n = 3"
    # AURC differences 1, 1, 3.9: (1, 1, x) is called for x < 4 (mean (2+x)/3 > 2 SE = 2(x-1)/3)
    p, _ = s.compare("selfkd", "aurc", False, False)
    assert abs(p.value) > 2 * p.se
    assert verdict(p) == "degradation"
    assert verdict(Difference(-2.0, 1.0, 3, 3, paired=True)) == "no difference detected at n = 3"
    assert verdict(Difference(-2.001, 1.0, 3, 3, paired=True)) == "improvement"
    assert verdict(Difference(2.001, 1.0, 5, 3)) == "degradation"
    assert verdict(Difference(0.5, 1.0, 5, 3)) == "no difference detected at n = 5 / 3"
    assert verdict(Difference(0.5, None, 1, 1, paired=True)).startswith("not called")


def test_missing_seed_pairs_only_the_common_seeds(root):
    s = _setting(root)
    p, u = s.compare("cskd", "top1_err", False, False)
    # seeds 0 and 2: 18 - 20 = -2, 20 - 21 = -1 -> mean -1.5, sd sqrt(0.5), SE 0.5
    assert p.n == 2 and p.value == pytest.approx(-1.5) and p.se == pytest.approx(0.5)
    assert verdict(p) == "improvement"
    # unpaired over all seeds: 19 - 21 = -2, SE sqrt(2/2 + 1/3)
    assert (u.n_base, u.n_other) == (3, 2)
    assert u.value == pytest.approx(-2.0) and u.se == pytest.approx(math.sqrt(4 / 3))
    md = to_markdown([s])
    line = next(ln for ln in md.splitlines() if ln.startswith("| CS-KD (peer) | top-1 error (%) | (i)"))
    assert ("-1.50 ± 0.50 (n = 2) | improvement | -2.00 ± 1.15 (n = 3 / 2) "
            "| no difference detected at n = 3 / 2") in line
    row = next(ln for ln in _grid(md) if ln.startswith("| CS-KD (peer) | "))
    assert "| 2 of 3 |" in row and "seeds 0, 2" in row


def test_rows_take_the_eval_record_raw_and_after_temperature_scaling(root):
    md = to_markdown([_setting(root)])
    lines = _grid(md)
    raw = next(ln for ln in lines if ln.startswith("| Baseline | "))
    ts = next(ln for ln in lines if ln.startswith("| Baseline + temperature scaling | "))
    # raw: top-1 21.00 ± 1.00, NLL 1.100 ± 0.100, ECE 10.00 ± 0.00, AURC 100.0 ± 0.0; the fit
    assert ("| 3 of 5 | 21.00 ± 1.00 | 1.100 ± 0.100 | 10.00 ± 0.00 | 100.0 ± 0.0 | 90.0 ± 0.0 | – "
            "| 3.00 ± 0.00 | 1.50 ± 0.00 |") in raw
    # after TS (eval record's temperature_scaled): NLL 0.85 ± 0.05, ECE 3 ± 1, AURC 96 ± 1,
    # confidence 81 ± 1, T 1.6 ± 0.1
    assert ("| 3 of 5 | 21.00 ± 1.00 | 0.850 ± 0.050 | 3.00 ± 1.00 | 96.0 ± 1.0 | 81.0 ± 1.0 "
            "| 1.600 ± 0.100 (holdout) |") in ts
    assert "99" not in raw + ts  # the final record's holdout numbers never show
    assert "10,000 test images" in md


def test_missing_methods_listed_and_pending_runs_not_counted(root):
    md = to_markdown([_setting(root)])
    lines = _grid(md)
    for label in ("TF-KD-reg (peer)", "LWR (peer)", "DLB (peer)", "Zipf's LS (peer)"):
        row = next(ln for ln in lines if ln.startswith(f"| {label} | "))
        assert "| 0 of 3 | not run yet |" in row
    ls = next(ln for ln in lines if ln.startswith("| Label Smoothing | "))
    assert "| 0 of 5 | not scored yet |" in ls
    assert "seed 0: trained, not scored on test yet" in ls and "seed 1: in progress (epoch 65/65)" in ls
    assert "Number of comparisons: 7 methods x 4 metrics x 3 = 84 pre-registered, 24 with a value" in md


def test_csv_long_format(root):
    rows = to_csv([_setting(root)]).splitlines()
    assert rows[0] == "setting,method,variant,metric,value,sd_or_se,n,n_base,verdict,run_ids"
    assert f"{ROW},baseline,ts,temperature,1.600000,0.100000,3,,," in "\n".join(rows)
    assert any(r.startswith(f"{ROW},cskd,(i) paired,top1_err,-1.500000,0.500000,2,2,improvement")
               for r in rows)


def test_alpha_selection_close_call(root):
    # 500 holdout images (the study runs' final records): 36.0% = 180 wrong, 36.2% = 181
    _selection(root, {"0.1": 36.2, "0.3": 41.0, "0.5": 37.0, "0.7": 36.0, "0.9": 38.2}, 0.7)
    runs, _ = find_runs([root])
    settings = study_settings(runs)
    sels, warnings = find_selections([root, root], settings, runs)  # a root twice: read once
    assert len(sels) == 1 and not warnings
    assert sels[0].holdout_images == 500 and sels[0].margin() == 1
    md = to_markdown(settings, sels)
    assert "| 0.7 | 36.00 | 180 | **chosen** |" in md and "| 0.1 | 36.20 | 181 |  |" in md
    assert ("Chosen alpha_T = 0.7; the runner-up is 1 image behind: decided by fewer than 3 "
            "holdout images.") in md
    assert "Self-KD's study runs use alpha_T = 0.7." in md


def test_alpha_selection_clear_and_mismatched_runs(root):
    _selection(root, {"0.1": 40.0, "0.3": 36.0}, 0.3)
    runs, _ = find_runs([root])
    settings = study_settings(runs)
    md = to_markdown(settings, find_selections([root], settings, runs)[0])
    assert "the runner-up is 20 images behind: not a close call" in md
    assert "Self-KD's study runs use alpha_T = 0.7: **not the selected 0.3**." in md


def test_cli_writes_inside_out_only(root, tmp_path, capsys):
    from pathlib import Path
    _selection(root, {"0.1": 36.2, "0.7": 36.0}, 0.7)
    before = {p for p in tmp_path.rglob("*")}
    shared = [Path("reports/out") / f"study.{x}" for x in ("md", "tex", "csv")]
    stamps = [p.stat().st_mtime_ns if p.exists() else None for p in shared]
    out = tmp_path / "out"
    assert main(["study", "--runs", str(root), "--out", str(out)]) == 0
    new = {p for p in tmp_path.rglob("*")} - before
    assert new == {out, out / "study.md", out / "study.tex", out / "study.csv"}
    assert [p.stat().st_mtime_ns if p.exists() else None for p in shared] == stamps
    assert "| Self-KD + temperature scaling | 3 of 5 |" in (out / "study.md").read_text()
    assert capsys.readouterr().out.strip() == f"study -> {out / 'study.md'}"


def test_no_runs_lists_every_method(tmp_path):
    md = to_markdown(study_settings([]))
    assert md.count("not run yet |") >= 8 and "| Baseline | 0 of 5 | not run yet |" in md


def test_malformed_log_is_one_line_and_the_rest_renders(root, tmp_path, capsys):
    with open(root / "study" / f"{ROW}_cskd_s2" / "log.jsonl", "a") as f:
        f.write('{"type": "eval", "trunc')
    out = tmp_path / "out"
    assert main(["study", "--runs", str(root), "--out", str(out)]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if f"{ROW}_cskd_s2" in ln]
    assert len(err) == 1 and err[0].startswith("warning: ") and f"{ROW}_cskd_s2/log.jsonl:5: " in err[0]
    md = (out / "study.md").read_text()
    assert "| CS-KD (peer) | 2 of 3 |" in md and f"{ROW}_cskd_s2/log.jsonl:5: " in md


def test_unreadable_selection_is_a_warning(root, tmp_path, capsys):
    p = root / "alpha_select" / f"{ROW}_s0.selection.json"
    p.parent.mkdir(parents=True)
    p.write_text("{not json")
    assert main(["study", "--runs", str(root), "--out", str(tmp_path / "out")]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if "alpha_select" in ln]
    assert err == [f"warning: {p}: not readable JSON (JSONDecodeError); skipped"]
    assert f"- {p}: not readable JSON" in (tmp_path / "out" / "study.md").read_text()


def test_missing_runs_root_is_one_error_line(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["study", "--runs", str(tmp_path / "nope"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --runs ")
    assert not out.exists()


def test_folder_holding_only_a_selection_is_not_an_empty_run_folder(tmp_path):
    root = tmp_path / "runs"
    _selection(root, {"0.1": 36.2, "0.7": 36.0}, 0.7)
    (root / "study" / "empty_run").mkdir(parents=True)
    _, warnings = find_runs([root])
    assert warnings == [f"{root / 'study' / 'empty_run' / 'log.jsonl'}: missing (empty run folder); skipped"]


def test_temperature_at_its_search_bound_is_said(tmp_path):
    root = tmp_path / "runs"
    _run(root, "baseline", 0, T=20.0, at_bound=True)
    _run(root, "baseline", 1, T=1.5)
    md = to_markdown(study_settings(find_runs([root])[0]))
    ts = next(ln for ln in _grid(md) if ln.startswith("| Baseline + temperature scaling | "))
    assert "(holdout); 1 at the search bound |" in ts


@pytest.mark.parametrize("errors, alpha_T, why", [
    ({"0.1": 36.2, "x": 36.0}, 0.1, "a candidate that is not a number"),
    ({"0.1": 36.2, "0.7": 36.0}, None, "its alpha_T is not one of its candidates"),
    ({"0.1": 36.2, "0.7": 36.0}, 0.5, "its alpha_T is not one of its candidates"),
])
def test_malformed_selection_is_a_warning_not_a_traceback(root, errors, alpha_T, why):
    p = _selection(root, errors, alpha_T)
    runs, _ = find_runs([root])
    sels, warnings = find_selections([root], study_settings(runs), runs)
    assert sels == [] and warnings == [f"{p}: not an alpha_T selection ({why}); skipped"]


def test_resumed_runs_and_commits_are_noted(tmp_path):
    root = tmp_path / "runs"
    _run(root, "baseline", 0)
    _run(root, "baseline", 1)
    with open(root / "study" / f"{ROW}_baseline_s1" / "log.jsonl", "a") as f:
        f.write(json.dumps({"type": "resume", "from_epoch": 14, "at": "x", "command": "c"}) + "\n")
    md = to_markdown(study_settings(find_runs([root])[0]))
    row = next(ln for ln in _grid(md) if ln.startswith("| Baseline | "))
    assert row.endswith("| seeds 0, 1; seed 1 resumed from epoch 14 |")
    assert "Trained at commit abc." in md


def test_a_row_with_a_plan_of_its_own_lists_only_its_methods(tmp_path, monkeypatch):
    """The regime block's fitting cell plans baseline, LS and Self-KD at 5 seeds: its setting lists
    those three (n of 5), not the study's peers as 'not run yet'; the study's row keeps its plan."""
    import reports.study as study
    monkeypatch.setattr(study, "ROW_PLANS", {ROW: {"baseline": 5, "selfkd": 5}})
    r = tmp_path / "runs"
    _run(r, "baseline", 0)
    _run(r, "selfkd", 0, alpha_T=0.7)
    s = _setting(r)
    assert list(s.methods) == ["baseline", "selfkd"]
    assert [mr.planned for mr in s.methods.values()] == [5, 5]
    md = to_markdown([s])
    assert "CS-KD" not in md and "not run yet" not in md
    monkeypatch.setattr(study, "ROW_PLANS", {})
    s = _setting(r)
    assert list(s.methods)[:3] == ["baseline", "ls", "selfkd"] and s.methods["cskd"].planned == 3


def test_queue_orders_the_plan_so_pairs_grow_together():
    """The launcher's order (reports.study.queue): the baseline's seeds first, then the 5-seed
    methods seed by seed, then the 3-seed peers seed by seed; the fitting cell's own plan seed by
    seed; a method the plan does not list gets OTHER_SEEDS."""
    from reports.study import OTHER_SEEDS, queue
    q = queue("study_resnet20_9k_aug_e65")
    assert q[:7] == [("baseline", s) for s in range(5)] + [("ls", 0), ("selfkd", 0)]
    assert q[13:17] == [("ls", 4), ("selfkd", 4), ("cskd", 0), ("tfkd", 0)]
    assert len(q) == 3 * 5 + 5 * 3 and q[-1] == ("zipf", 2)
    assert queue("resnet20_5k_noaug", reference_first=False)[:4] == [
        ("baseline", 0), ("ls", 0), ("selfkd", 0), ("baseline", 1)]
    assert len(queue("resnet20_5k_noaug")) == 15
    assert queue("study_resnet20_9k_aug_e65", ["selfkd", "newpeer"]) == (
        [("selfkd", s) for s in range(5)] + [("newpeer", s) for s in range(OTHER_SEEDS)])


def test_glance_differences_are_to_the_scaled_baseline(root):
    """The glance table: each scored method raw and scaled, its bracket the paired difference to
    the baseline after temperature scaling (comparisons (iii) and (ii)); the scaled baseline has
    none, the baseline raw none for top-1 (the same by construction); methods without scored runs
    are left out."""
    from reports.study import glance_grid
    rows = {r[0]: r for r in glance_grid(_setting(root))}
    assert list(rows) == ["Baseline", "Baseline + temperature scaling", "Self-KD", "Self-KD + temperature scaling",
                          "CS-KD (peer)", "CS-KD (peer) + temperature scaling"]  # ls: not scored
    assert rows["Baseline + temperature scaling"][2:] == ["21.00 ± 1.00", "0.850 ± 0.050", "3.00 ± 1.00", "96.0 ± 1.0"]
    assert rows["Baseline"][2] == "21.00 ± 1.00"
    # baseline raw NLL 1.0, 1.1, 1.2 minus scaled 0.80, 0.90, 0.85 -> 0.20, 0.20, 0.35: +0.250 ± 0.050
    assert rows["Baseline"][3] == "1.100 ± 0.100 (+0.250 ± 0.050)"
    # Self-KD raw NLL 0.9, 1.0, 1.1 minus baseline scaled -> (iii) +0.150 ± 0.050
    assert rows["Self-KD"][3] == "1.000 ± 0.100 (+0.150 ± 0.050)"
    # Self-KD scaled NLL 0.85, 0.95, 0.90 minus baseline scaled 0.80, 0.90, 0.85 -> (ii) +0.050 ± 0.000
    assert rows["Self-KD + temperature scaling"][3] == "0.900 ± 0.050 (+0.050 ± 0.000)"
    # top-1 (unchanged by scaling): Self-KD 19.0, 21.5, 19.5 minus 20, 22, 21 -> -1.00 ± 0.29
    assert rows["Self-KD"][2] == rows["Self-KD + temperature scaling"][2] == "20.00 ± 1.32 (-1.00 ± 0.29)"
    md = to_markdown([_setting(root)])
    assert md.index("### At a glance") < md.index("### Each method, raw and after temperature scaling")
