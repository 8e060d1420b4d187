"""check-repro: expectations with tolerances against logs; non-zero exit on drift."""
import subprocess
import sys

import pytest

from reports.repro import EXPECTED_FILE, check_repro, load_expected

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


def test_missing_runs_pass_unless_strict():
    rc, lines = check_repro(EXP / "expected_missing.yaml", [ROOT])
    assert rc == 0 and any(ln.startswith("MISSING") for ln in lines)
    assert "not verified" in lines[-1]
    assert check_repro(EXP / "expected_missing.yaml", [ROOT], strict=True)[0] == 1


def test_no_logs_says_nothing_to_check(tmp_path):
    rc, lines = check_repro(EXP / "expected_ok.yaml", [tmp_path / "runs"])
    assert rc == 0 and "nothing to check" in lines[-1] and "nothing was verified" in lines[-1]


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
             "dataset: cifar100, epochs: 5, expected: 27.25, tolerance: 0.3, n: %s}\n")
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
