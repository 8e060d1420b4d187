"""check-repro: expectations with tolerances against logs; non-zero exit on drift."""
import re
import subprocess
import sys

import pytest

from reports.repro import EXPECTED_FILE, ReproError, check_repro, load_expected

from .conftest import FIXTURES, REPO

ROOT = FIXTURES / "tables"
EXP = FIXTURES / "repro"


def test_within_tolerance_passes():
    rc, lines = check_repro(EXP / "expected_ok.yaml", [ROOT])
    assert rc == 0
    assert sum(ln.startswith("ok ") for ln in lines) == 5
    assert "5 ok, 0 outside tolerance" in lines[-1]


def test_drift_fails_and_names_the_cell():
    rc, lines = check_repro(EXP / "expected_drift.yaml", [ROOT])
    assert rc == 1
    fail = [ln for ln in lines if ln.startswith("FAIL")]
    assert len(fail) == 1 and "table1 resnet50 selfkd top1_err" in fail[0]
    assert "measured 27.2500" in fail[0] and "diff +2.2500" in fail[0]


def test_missing_runs_fail_unless_allowed(tmp_path):
    """An expectation with no complete run is a failure by default; --allow-missing lists it
    without failing when others were checked."""
    rc, lines = check_repro(EXP / "expected_missing.yaml", [ROOT])
    assert rc == 1 and any(ln.startswith("MISSING table1 resnet101 selfkd") for ln in lines)
    assert "-> FAILED" in lines[-1] and "nothing was verified" in lines[-1]
    assert check_repro(EXP / "expected_missing.yaml", [ROOT], strict=True)[0] == 1
    both = tmp_path / "e.yaml"
    both.write_text((EXP / "expected_ok.yaml").read_text()
                    + (EXP / "expected_missing.yaml").read_text().split("results:\n", 1)[1])
    rc, lines = check_repro(both, [ROOT], strict=False)
    assert rc == 0 and "5 ok, 0 outside tolerance, 1 without runs" in lines[-1]
    assert "not verified" in lines[-1] and "--allow-missing" in lines[-1]
    assert check_repro(both, [ROOT])[0] == 1


def test_no_logs_is_a_failure_not_nothing_to_check(tmp_path):
    """An existing but empty runs folder verifies nothing: it fails, even with --allow-missing."""
    (tmp_path / "runs").mkdir()
    for strict in (True, False):
        rc, lines = check_repro(EXP / "expected_ok.yaml", [tmp_path / "runs"], strict=strict)
        assert rc == 1 and f"check-repro: no run logs under {tmp_path / 'runs'}" in lines
        assert sum(ln.startswith("MISSING") for ln in lines) == 5
        assert "0 ok, 0 outside tolerance, 5 without runs" in lines[-1] and "FAILED" in lines[-1]


def _cli(capsys, *argv):
    from reports.__main__ import main
    rc = main(["check-repro", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_missing_runs_root_is_a_one_line_error(tmp_path, capsys):
    """A root that is not there (a mistyped --runs) is an error, exit 2, one line: it must not
    pass CI as "nothing was verified"."""
    with pytest.raises(ReproError, match="no such folder"):
        check_repro(EXP / "expected_ok.yaml", [ROOT, tmp_path / "nope"])
    for roots in ([tmp_path / "nope"], [ROOT, tmp_path / "nope"]):
        for extra in ((), ("--allow-missing",)):
            rc, out, err = _cli(capsys, "--runs", *roots, "--expected", EXP / "expected_ok.yaml",
                                *extra)
            assert rc == 2 and out == ""
            assert err == f"error: --runs {tmp_path / 'nope'}: no such folder\n"
    (tmp_path / "file").write_text("x")
    rc, out, err = _cli(capsys, "--runs", tmp_path / "file", "--expected", EXP / "expected_ok.yaml")
    assert rc == 2 and err.strip().endswith("not a folder") and err.count("\n") == 1


@pytest.mark.parametrize("text, why", [
    ("results: [\n  - {table: table1, row: r\n", "not valid YAML"),
    ("results:\n\t- x\n", "not valid YAML"),
    ("- {table: table1}\n", "expected a mapping with a 'results:' list"),
    ("just a string\n", "expected a mapping with a 'results:' list"),
    ("", "expected a mapping with a 'results:' list"),
    ("other: 1\n", "no results key"),
    ("results: {table: table1}\n", "'results' must be a list"),
    ("results:\n  - [table1, r]\n", "results[0] must be a mapping"),
    ("results:\n  - {table: [table1], row: r, method: m, metric: top1_err, expected: 1, "
     "tolerance: 1}\n", "results[0].table must be a non-empty string"),
    ("results:\n  - {table: table1, row: 50, method: m, metric: top1_err, expected: 1, "
     "tolerance: 1}\n", "results[0].row must be a non-empty string"),
    ("results:\n  - {table: table1, row: r, method: m, metric: top1_err, expected: 1, "
     "tolerance: 1, epochs: ten}\n", "results[0].epochs must be a positive integer"),
    ("results:\n  - {table: table1, row: r, method: m, metric: top1_err, expected: [1], "
     "tolerance: 1}\n", "results[0].expected must be a number"),
    (b"results: [] # caf\xe9\n", "not UTF-8 text"),
    (None, "cannot read the expectations file"),
], ids=["unclosed", "tab", "top-list", "top-scalar", "empty", "no-results", "results-map",
        "entry-list", "table-list", "row-int", "epochs-str", "expected-list", "latin1", "absent"])
def test_malformed_expectations_file_is_a_one_line_error(tmp_path, capsys, text, why):
    """A malformed expectations file (bad YAML, wrong types, bad values) is one line naming the
    file, exit 2, not a traceback."""
    p = tmp_path / "e.yaml"
    if isinstance(text, bytes):
        p.write_bytes(text)
    elif text is not None:
        p.write_text(text)
    with pytest.raises(ReproError, match=re.escape(why)):
        load_expected(p)
    rc, out, err = _cli(capsys, "--runs", ROOT, "--expected", p)
    assert rc == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith(f"error: {p}") and why in err


def test_shipped_expectations_file_is_valid():
    assert isinstance(load_expected(EXPECTED_FILE), list)


def test_bad_expectation_is_a_clear_error(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text("results:\n  - {table: table1, row: r, method: m, metric: top1_err, expected: 1}\n")
    with pytest.raises(ValueError, match="tolerance"):
        load_expected(p)
    p.write_text("results:\n  - {table: table1, row: r, method: m, metric: top1_err, "
                 "expected: one, tolerance: 1}\n")
    with pytest.raises(ValueError, match="expected must be a number"):
        load_expected(p)


def test_cli_exit_code_on_drift():
    cmd = [sys.executable, "-m", "reports", "check-repro", "--runs", str(ROOT),
           "--expected", str(EXP / "expected_drift.yaml")]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "FAILED" in res.stdout


def test_committed_logs_pass_check_repro():
    """The logs committed under reports/runs/ agree with reports/expected_results.yaml."""
    from pathlib import Path

    from reports.repro import EXPECTED_FILE, check_repro
    repo = Path(__file__).resolve().parents[2]
    code, lines = check_repro(EXPECTED_FILE, (str(repo / "reports" / "runs"),), strict=True)
    assert code == 0, "\n".join(lines)
    assert any(l.startswith("ok") for l in lines)


def test_expected_run_count_catches_a_lost_log(tmp_path):
    """`n` pins how many committed runs (seeds) a cell averages, so a log that stops being read
    fails the check instead of quietly shifting the mean within tolerance."""
    entry = ("results:\n  - {table: table1, row: resnet50, method: selfkd, metric: top1_err, "
             "dataset: cifar100, epochs: 300, expected: 27.25, tolerance: 0.3, n: %s}\n")
    p = tmp_path / "e.yaml"
    p.write_text(entry % 99)
    rc, lines = check_repro(p, [ROOT])
    fail = [ln for ln in lines if ln.startswith("FAIL")]
    assert rc == 1 and len(fail) == 1 and "expected n=99" in fail[0]
    rc_ok, lines_ok = check_repro(EXP / "expected_ok.yaml", [ROOT])
    n = int(next(ln for ln in lines_ok if "resnet50 selfkd top1_err" in ln).split("(n=")[1].split(":")[0])
    p.write_text(entry % n)
    assert check_repro(p, [ROOT])[0] == 0
    p.write_text(entry % 0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        load_expected(p)


def test_run_id_selects_one_run_of_a_group(tmp_path):
    """Runs that differ in a setting the (row, method) key does not name (Fig. 2's alpha
    schedules are all method "selfkd") are checked one by one through run_id."""
    p = tmp_path / "e.yaml"
    p.write_text("results:\n  - {table: table1, row: resnet50, method: selfkd, metric: top1_err, "
                 "run_id: table1_resnet50_selfkd_s0, expected: 0, tolerance: 1000, n: 1}\n")
    rc, lines = check_repro(p, [ROOT])
    ok = [ln for ln in lines if ln.startswith("ok")]
    assert rc == 0 and len(ok) == 1 and "(n=1: table1_resnet50_selfkd_s0)" in ok[0]


def test_paired_difference_entry(tmp_path):
    """`minus: baseline` checks the mean of the per-seed differences over the seeds both methods
    ran: fixture Self-KD seeds 0, 1 (27.0, 27.5) against baseline seeds 0, 1 (30.0, 31.0), so
    -3.0 and -3.5 -> -3.25 over n = 2 pairs (baseline seed 2 has no partner)."""
    p = tmp_path / "e.yaml"
    entry = ("results:\n  - {table: table1, row: resnet50, method: selfkd, minus: baseline, "
             "metric: top1_err, dataset: cifar100, epochs: 300, expected: %s, tolerance: 0.01, n: %s}\n")
    p.write_text(entry % (-3.25, 2))
    rc, lines = check_repro(p, [ROOT])
    ok = [ln for ln in lines if ln.startswith("ok")]
    assert rc == 0 and len(ok) == 1 and "selfkd - baseline (paired by seed) top1_err" in ok[0]
    assert "measured -3.2500 (n=2:" in ok[0]
    p.write_text(entry % (-3.25, 3))
    rc, lines = check_repro(p, [ROOT])
    assert rc == 1 and any("2 seed pair(s) of complete runs" in ln and "expected n=3" in ln for ln in lines)
    # minus_epochs selects the other side's epochs; with none of them there is nothing to pair
    p.write_text(entry.replace("n: %s}", "n: %s, minus_epochs: 5}") % (-3.25, 2))
    rc, lines = check_repro(p, [ROOT])
    assert rc == 1 and any(ln.startswith("MISSING table1 resnet50 selfkd - baseline") for ln in lines)
    p.write_text("results:\n  - {table: table1, row: r, method: m, metric: x, expected: 0, "
                 "tolerance: 1, minus_epochs: 5}\n")
    with pytest.raises(ReproError, match="minus_epochs is set without minus"):
        load_expected(p)


def test_split_entry_reads_the_eval_record_of_that_split(tmp_path):
    """A run trained evaluating its holdout keeps holdout numbers in its final record (99.0 in the
    study fixture); `split: test` reads its test eval record instead, raw and after temperature
    scaling (`ts.`), also as a paired difference."""
    from .test_study import _run
    root = tmp_path / "runs"
    for s, (t, T, tse) in enumerate(((20.0, 1.5, 2.0), (22.0, 1.6, 3.0), (21.0, 1.7, 4.0))):
        _run(root, "baseline", s, top1=t, T=T, ts=(0.5, tse, 90.0))
        _run(root, "selfkd", s, top1=t - 1.0 - 0.5 * s, T=1.2, ts=(0.5, tse + 1.0, 90.0))
    p = tmp_path / "e.yaml"
    cell = "{table: study, row: study_tiny, method: %s, metric: %s, expected: %s, tolerance: 1.0e-6, n: 3%s}"
    p.write_text("results:\n" + "".join(f"  - {cell % args}\n" for args in (
        ("baseline", "top1_err", 21.0, ", split: test"),
        ("baseline", "ts.temperature", 1.6, ", split: test"),
        ("baseline", "ts.ece", 3.0, ", split: test"),
        ("selfkd", "top1_err", -1.5, ", split: test, minus: baseline"),   # -1.0, -1.5, -2.0
        ("selfkd", "ts.ece", 1.0, ", split: test, minus: baseline"),
        ("baseline", "top1_err", 99.0, ""))))                            # the final (holdout) record
    rc, lines = check_repro(p, [root])
    assert rc == 0, lines
    ok = [ln for ln in lines if ln.startswith("ok")]
    assert len(ok) == 6 and "study study_tiny baseline top1_err [*, * ep] on the test eval record" in ok[0]
    p.write_text("results:\n  - " + cell % ("baseline", "nll", 0, ", split: holdout") + "\n")
    rc, lines = check_repro(p, [root])
    assert rc == 1 and any("metric absent from the logs (read from their holdout eval records)" in ln
                           for ln in lines)


def test_expect_writes_entries_that_check_repro_passes(tmp_path, capsys):
    """`reports expect` computes each entry from the logs: the mean over seeds, tolerance max(2 x
    the seed sd, the metric's floor) rounded up, n; its output pasted into an expectations file
    passes check-repro, and a drifted log then fails it."""
    from reports.__main__ import main
    from .test_study import _run
    root = tmp_path / "runs"
    for s, (t, T) in enumerate(((20.0, 1.5), (22.0, 1.6), (21.0, 1.7))):
        _run(root, "baseline", s, top1=t, T=T, ts=(0.5, 2.0, 90.0))
    assert main(["expect", "--runs", str(root), "--table", "study", "--row", "study_tiny", "--method",
                 "baseline", "--split", "test", "--metrics", "top1_err", "ts.temperature", "ts.nll"]) == 0
    out = capsys.readouterr().out
    import yaml
    entries = yaml.safe_load("results:\n" + out)["results"]
    assert [(e["metric"], e["expected"], e["tolerance"], e["n"]) for e in entries] == [
        ("top1_err", 21.0, 2.0, 3),        # sd 1.0 -> 2 x sd
        ("ts.temperature", 1.6, 0.2, 3),   # sd 0.1 -> 0.2
        ("ts.nll", 0.5, 0.01, 3)]          # sd 0 -> the floor
    assert all(e["split"] == "test" and e["epochs"] == 65 for e in entries)
    p = tmp_path / "e.yaml"
    p.write_text("results:\n" + out)
    rc, lines = check_repro(p, [root])
    assert rc == 0, lines
    _run(root, "baseline", 2, top1=30.0, T=1.7, ts=(0.5, 2.0, 90.0))  # seed 2's log rewritten
    rc, lines = check_repro(p, [root])
    assert rc == 1 and sum(ln.startswith("FAIL") for ln in lines) == 1


@pytest.mark.parametrize("argv, msg", [
    (["--method", "cskd"], "no complete run of table study, row study_tiny, method cskd"),
    (["--method", "baseline", "--metrics", "nll"], "(their holdout eval records)"),  # only a test one
])
def test_expect_refuses_what_the_logs_do_not_hold(tmp_path, capsys, argv, msg):
    from reports.__main__ import main
    from .test_study import _run
    root = tmp_path / "runs"
    _run(root, "baseline", 0)
    rc = main(["expect", "--runs", str(root), "--table", "study", "--row", "study_tiny", "--split", "holdout"] + argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and msg in err and err.count("\n") == 1


def test_expect_one_run_and_a_fit_metric(tmp_path, capsys):
    """--run-id pins one run of a cell (an alpha_T candidate among its row's others); a fit metric
    (train_top1_err) gets the top-1 floor, not zero."""
    from reports.__main__ import main
    from .test_study import _run
    root = tmp_path / "runs"
    for s in range(2):
        _run(root, "baseline", s, train_err=3.0 + s)
    assert main(["expect", "--runs", str(root), "--table", "study", "--row", "study_tiny", "--method", "baseline",
                 "--run-id", "study_tiny_baseline_s1", "--metrics", "train_top1_err"]) == 0
    import yaml
    (e,) = yaml.safe_load("results:\n" + capsys.readouterr().out)["results"]
    assert (e["run_id"], e["expected"], e["tolerance"], e["n"]) == ("study_tiny_baseline_s1", 4.0, 0.3, 1)


def test_expect_update_replaces_in_place_and_appends_new_cells(tmp_path, capsys):
    """`expect --update FILE` rewrites the entries of the same cell and metric where they stand
    (comments and other entries kept byte for byte), appends a cell the file lacks, and the file
    then passes check-repro; a malformed file is refused in one line and left as it was."""
    from reports.__main__ import main
    from .test_study import _run
    root = tmp_path / "runs"
    for s in range(2):
        _run(root, "baseline", s, top1=20.0 + s)
        _run(root, "selfkd", s, top1=19.0 + s, alpha_T=0.7)
    p = tmp_path / "e.yaml"
    head = ("# head comment\nresults:\n"
            "  - {table: table1, row: other, method: baseline, metric: top1_err, expected: 5.0, tolerance: 1}\n"
            "# the study's baseline\n"
            "  - {table: study, row: study_tiny, method: baseline, metric: top1_err, dataset: d, epochs: 65, split: test,\n"
            "     expected: 99.0, tolerance: 0.3, n: 1}  # stale\n"
            "# tail comment\n")
    p.write_text(head)
    argv = ["expect", "--runs", str(root), "--table", "study", "--row", "study_tiny", "--metrics", "top1_err",
            "--split", "test", "--update", str(p)]
    assert main(argv + ["--method", "baseline", "selfkd"]) == 0
    assert capsys.readouterr().out == f"{p}: 1 entries replaced, 1 added\n"
    text = p.read_text()
    lines = text.splitlines()
    assert lines[:4] == head.splitlines()[:4] and lines[6] == "# tail comment"
    assert "expected: 20.5," in lines[5] and "99.0" not in text and "method: selfkd" in lines[7]
    import yaml
    entries = yaml.safe_load(text)["results"]
    assert [(e["row"], e["method"], e["expected"]) for e in entries] == [
        ("other", "baseline", 5.0), ("study_tiny", "baseline", 20.5), ("study_tiny", "selfkd", 19.5)]
    assert main(argv + ["--method", "baseline", "selfkd"]) == 0  # a rerun: everything replaced, nothing added
    assert capsys.readouterr().out.endswith("2 entries replaced, 0 added\n") and p.read_text() == text
    bad = "results:\n  - {table: study, row: r, method: m, metric: x, expected: [1], tolerance: 1}\n"
    p.write_text(bad)
    assert main(argv + ["--method", "baseline"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and p.read_text() == bad
    assert not list(tmp_path.glob("*.tmp"))
