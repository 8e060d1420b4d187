"""classification.select_alpha's choice: the lowest holdout top-1 error; a tie goes to the
smaller alpha_T, and the run says so and records it."""
import json
from types import SimpleNamespace

import classification.select_alpha as S


def test_choose_alpha_lowest_error_and_ties_to_the_smaller_alpha():
    assert S.choose_alpha({0.1: 30.0, 0.5: 28.0, 0.9: 29.0}) == (0.5, [0.5])
    assert S.choose_alpha({0.9: 28.0, 0.3: 28.0, 0.5: 30.0, 0.7: 28.0}) == (0.3, [0.3, 0.7, 0.9])
    assert S.choose_alpha({0.7: 12.5}) == (0.7, [0.7])


def _fake_runs(monkeypatch, errors):
    """select() without training: each candidate's run 'ends' with the given holdout error."""
    def train(cfg):
        return S.Path(cfg.out_dir) / cfg.table / cfg.run_id

    def read_run_log(path, strict=False):
        alpha = float(S.Path(path).parent.name.split("_a")[1].split("_s")[0])
        return SimpleNamespace(final={"metrics": {"top1_err": errors[alpha]}})

    monkeypatch.setattr(S, "train", train)
    monkeypatch.setattr(S, "read_run_log", read_run_log)


def _select(tmp_path, monkeypatch, capsys, errors: dict, alphas: list[str]):
    """select_alpha's CLI over faked candidate runs: (printed output, the selection JSON)."""
    _fake_runs(monkeypatch, errors)
    (tmp_path / "alpha_select").mkdir()
    assert S.main(["--alphas", *alphas, "model=small_cnn", "data.name=digits", f"out_dir={tmp_path}"]) == 0
    sel = json.loads((tmp_path / "alpha_select/small_cnn_s0.selection.json").read_text())
    return capsys.readouterr().out, sel


def test_select_notes_and_records_a_tie(tmp_path, monkeypatch, capsys):
    out, sel = _select(tmp_path, monkeypatch, capsys, {0.3: 25.0, 0.5: 20.0, 0.8: 20.0}, ["0.8", "0.3", "0.5"])
    assert "note: alpha_T 0.5, 0.8 tie at the lowest holdout top-1 error (20.00%); 0.5 wins: " \
           "ties go to the smaller alpha_T" in out, out
    assert "alpha_T = 0.5 (holdout top-1 error 20.00%, tied with 0.8)" in out
    assert sel["alpha_T"] == 0.5
    assert sel["tie"] == {"alphas": [0.5, 0.8], "holdout_top1_err": 20.0, "rule": "ties go to the smaller alpha_T"}


def test_select_without_a_tie_says_nothing_about_ties(tmp_path, monkeypatch, capsys):
    out, sel = _select(tmp_path, monkeypatch, capsys, {0.3: 25.0, 0.5: 20.0, 0.8: 21.0}, ["0.3", "0.5", "0.8"])
    assert "note:" not in out and "tied" not in out and "alpha_T = 0.5 (holdout top-1 error 20.00%)" in out
    assert sel["alpha_T"] == 0.5 and sel["tie"] is None
