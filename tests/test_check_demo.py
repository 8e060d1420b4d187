"""tools/check_demo.py (`make check-demo`) on the README's real demo table: what another machine
prints within the seed spread passes, a shift beyond it fails, and the row set must match."""
import importlib.util
import re

import pytest

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("check_demo", REPO / "tools" / "check_demo.py")
check_demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_demo)

README = (REPO / "README.md").read_text(encoding="utf-8")
N_TEST = 360  # scikit-learn's digits: 1,797 images, the demo's 20% test split


def _shift(text: str, method: str, metric: str, delta: float) -> str:
    """text with the README table's (method, metric) mean moved by delta (4 decimals, std kept)."""
    col = 3 + check_demo.METRICS.index(metric)
    out = []
    for line in text.splitlines():
        cells = line.strip().strip("|").split("|")
        if line.startswith(check_demo.ROW_PREFIX) and cells[1].strip() == method:
            mean, rest = re.match(r"\s*(\S+)(.*)", cells[col]).groups()
            cells[col] = f" {float(mean) + delta:.4f}{rest}"
            line = "|" + "|".join(cells) + "|"
        out.append(line)
    return "\n".join(out)


def test_readme_table_parses_and_agrees_with_itself():
    rows = check_demo.parse_table(README)
    assert [k[1] for k in rows] == ["Baseline", "+ Label Smoothing", "+ Self-KD"]
    assert all(k[2] == "3" for k in rows)
    assert check_demo.compare(README, README, N_TEST) == (True, [])


@pytest.mark.parametrize("metric", check_demo.METRICS)
@pytest.mark.parametrize("method", ["Baseline", "+ Label Smoothing", "+ Self-KD"])
def test_within_tolerance_passes_beyond_fails(method, metric):
    key = next(k for k in check_demo.parse_table(README) if k[1] == method)
    tol = check_demo.tolerances(check_demo.parse_table(README), N_TEST, 3.0)[key][metric]
    assert tol > 0
    for sign in (1, -1):
        ok, lines = check_demo.compare(README, _shift(README, method, metric, sign * 0.9 * tol), N_TEST)
        assert ok and len(lines) == 1 and lines[0].lstrip().startswith("within"), lines
        ok, lines = check_demo.compare(README, _shift(README, method, metric, sign * 1.1 * tol), N_TEST)
        assert not ok and "OUTSIDE" in lines[0] and method in lines[0] and metric in lines[0], lines


def test_the_floor_of_one_test_image_and_the_pooled_std():
    tol = check_demo.tolerances(check_demo.parse_table(README), N_TEST, 3.0)
    for key, per_metric in tol.items():
        # the README's top-1 std reads 0.00 for two methods; an error rate moves by >= 1/360
        assert per_metric["Top-1 error (%)"] >= 3 * 100 / N_TEST - 1e-12
        assert per_metric["Top-5 error (%)"] == pytest.approx(3 * 100 / N_TEST)


def test_what_a_second_machine_printed_passes():
    """The figures measured on another x86 machine, which the exact comparison had failed."""
    now = _shift(README, "Baseline", "Top-1 error (%)", 0.37 - 0.28)
    now = _shift(now, "+ Self-KD", "ECE (%)", 0.88 - 0.77)
    ok, lines = check_demo.compare(README, now, N_TEST)
    assert ok and len(lines) == 2


def test_a_real_change_fails():
    # a method that stopped working: Self-KD with label smoothing's ECE (about 10 points higher)
    ok, lines = check_demo.compare(README, _shift(README, "+ Self-KD", "ECE (%)", 10.0), N_TEST)
    assert not ok
    # a missing row, or another seed count
    ok, lines = check_demo.compare(README, "\n".join(l for l in README.splitlines() if "+ Self-KD" not in l), N_TEST)
    assert not ok and lines[0].startswith("rows differ")
    ok, _ = check_demo.compare(README, README.replace("| Baseline | 3 |", "| Baseline | 2 |"), N_TEST)
    assert not ok


def test_main_reports_and_exits(tmp_path, monkeypatch, capsys):
    import classification.demo
    readme = tmp_path / "README.md"
    readme.write_text(README, encoding="utf-8")
    monkeypatch.setattr(check_demo, "_test_set_size", lambda runs_dir: N_TEST)
    for delta, rc in ((0.1, 0), (2.0, 1)):
        printed = _shift(README, "+ Self-KD", "ECE (%)", delta)
        monkeypatch.setattr(classification.demo, "main", lambda argv, t=printed: print(t) or 0)
        assert check_demo.main(["--readme", str(readme)]) == rc
        out, err = capsys.readouterr()
        assert "bit-identical on one machine, not across machines" in out
        assert ("beyond the seed spread" in err) == (rc == 1)
    assert check_demo.main(["--readme", str(tmp_path / "missing.md")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
