"""translation.select_alpha: alpha_T chosen by validation BLEU from finished Self-KD runs."""
import json

import pytest

from tests.conftest import REPO
from tests.translation.conftest import TINY
from translation import select_alpha
from translation.train import main as train_main

CFG = str(REPO / "translation/configs/multi30k_de_en_selfkd.yaml")


@pytest.fixture(scope="module")
def candidates(tiny_multi30k, tmp_path_factory):
    out = tmp_path_factory.mktemp("cands")
    for a in (0.3, 0.7):
        assert train_main(["--config", CFG] + TINY + [
            "epochs=2", "optim.lr=0.003", f"data.prep_dir={tiny_multi30k}", f"out_dir={out}",
            f"method.selfkd.alpha_T={a}", f"run_id=a{a}"]) == 0
    return out / "table4"


def test_chooses_the_best_validation_bleu_and_caches(candidates, tiny_multi30k, tmp_path, monkeypatch, capsys):
    from translation.evaluate import bleu_scores, translate
    runs = [candidates / "a0.3", candidates / "a0.7"]
    out = tmp_path / "selection.json"
    assert select_alpha.main([str(r) for r in runs] + ["--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == result
    # independent recomputation of each candidate's validation BLEU
    expected = {}
    for r in runs:
        hyps = translate(r / "checkpoints" / "checkpoint_best.pt", tiny_multi30k / "bin", "valid", beam=2)
        expected[float(r.name[1:])] = bleu_scores(hyps, tiny_multi30k, "valid", "en")["bleu"]
    assert {c["alpha_T"]: c["valid_bleu"] for c in result["candidates"]} == expected
    best = max(expected, key=lambda a: (expected[a], -a))
    assert result["alpha_T"] == best and result["epochs"] == 2
    # a rerun reads the cache: no translation at all
    monkeypatch.setattr("translation.evaluate.translate", lambda *a, **k: pytest.fail("retranslated"))
    assert select_alpha.select(runs)["candidates"] == result["candidates"]


def test_refuses_candidates_that_differ_in_more_than_alpha(candidates, tiny_multi30k, tmp_path, capsys):
    assert train_main(["--config", CFG] + TINY + [
        "epochs=2", "optim.lr=0.003", f"data.prep_dir={tiny_multi30k}", f"out_dir={tmp_path}",
        "method.selfkd.alpha_T=0.5", "seed=7", "run_id=other"]) == 0
    assert select_alpha.main([str(candidates / "a0.3"), str(tmp_path / "table4" / "other")]) == 2
    err = capsys.readouterr().err
    assert "more than alpha_T" in err and "seed" in err
    # an incomplete run (no final record) is refused, with one line
    log = (tmp_path / "table4" / "other" / "log.jsonl").read_text().splitlines()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "log.jsonl").write_text("\n".join(log[:-1]) + "\n")
    assert select_alpha.main([str(tmp_path / "cut")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not complete" in err and "\n" not in err


def test_candidates_may_differ_in_how_they_were_run(candidates, tiny_multi30k, tmp_path):
    """Runtime keys (out_dir, stop_after_epochs, log_interval, ...) are not a difference: a
    candidate run in two time slices elsewhere still competes."""
    args = ["--config", CFG] + TINY + ["epochs=2", "optim.lr=0.003",
                                       f"data.prep_dir={tiny_multi30k}", f"out_dir={tmp_path}",
                                       "method.selfkd.alpha_T=0.5", "run_id=a0.5"]
    assert train_main(args + ["stop_after_epochs=1", "log_interval=7"]) == 0
    assert train_main(args + ["--resume"]) == 0
    result = select_alpha.select([candidates / "a0.3", tmp_path / "table4" / "a0.5"])
    assert sorted(c["alpha_T"] for c in result["candidates"]) == [0.3, 0.5]


def _rewrite_meta(src, dst, change):
    """A copy of run folder src at dst whose meta record's config is change(config)."""
    import shutil
    shutil.copytree(src, dst)
    lines = (dst / "log.jsonl").read_text().splitlines()
    meta = json.loads(lines[0])
    change(meta)
    (dst / "log.jsonl").write_text("\n".join([json.dumps(meta)] + lines[1:]) + "\n")
    return dst


def test_candidates_logged_with_the_earlier_key_spellings_compete(candidates, tmp_path):
    """A run logged before the keys were renamed (method.alpha_T, optim.epochs, ...) is the same
    setting as one logged with method.selfkd.alpha_T and top-level epochs."""
    def old_spelling(meta):
        c = meta["config"]
        m = c["method"]
        c["method"] = {"name": m["name"], "alpha_T": m["selfkd"]["alpha_T"],
                       "alpha_kind": m["selfkd"]["alpha_kind"], "teacher_mode": m["selfkd"]["teacher_mode"],
                       "ls_eps": m["ls"]["eps"],
                       "ls_convention": m["ls"]["convention"]}
        c["optim"]["epochs"] = c.pop("epochs")
        for key in ("resume", "resume_changed", "stop_after_epochs"):  # keys older versions lacked
            c.pop(key)

    old = _rewrite_meta(candidates / "a0.7", tmp_path / "old", old_spelling)
    result = select_alpha.select([candidates / "a0.3", old])
    assert sorted(c["alpha_T"] for c in result["candidates"]) == [0.3, 0.7] and result["epochs"] == 2
    # a method without an alpha_T is no candidate
    baseline = _rewrite_meta(candidates / "a0.3", tmp_path / "b", lambda meta: meta.update(method="baseline"))
    with pytest.raises(ValueError, match="a baseline run, which has no alpha_T to choose"):
        select_alpha.select([baseline])
