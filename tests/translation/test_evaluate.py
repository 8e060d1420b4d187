"""BLEU on a test set the user brings: `translation.evaluate CHECKPOINT PREP_DIR
--src FILE --ref FILE` prepares the source as translation.data prepared the run's splits
(Moses, BPE, dictionary), translates it and scores it as the prepared test split."""
import gzip
import json
import math

import pytest

from translation import evaluate

LANGS = ["-s", "de", "-t", "en"]


def _gz(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    return path


def _run(capsys, *argv):
    capsys.readouterr()
    rc = evaluate.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_source_is_prepared_exactly_as_the_training_data(tiny_multi30k):
    """Raw test sentences through bpe_source + the run's dictionary give the very subwords and
    token ids translation.data wrote and fairseq-preprocess binarised for the test split."""
    pytest.importorskip("fairseq")
    from fairseq.tasks.translation import TranslationConfig, TranslationTask
    raw = (tiny_multi30k / "raw" / "test.de").read_text("utf-8").splitlines()
    bpe = evaluate.bpe_source(raw, tiny_multi30k, "de")
    assert bpe == (tiny_multi30k / "bpe" / "test.de").read_text("utf-8").splitlines()
    assert any("@@" in line for line in bpe)  # the BPE really split words
    task = TranslationTask.setup_task(TranslationConfig(
        data=str(tiny_multi30k / "bin"), source_lang="de", target_lang="en", dataset_impl="mmap"))
    task.load_dataset("test")
    d = task.source_dictionary
    for i, line in enumerate(bpe):
        assert d.encode_line(line, add_if_not_exist=False).long().tolist() == \
            task.dataset("test").src[i].tolist()


def test_src_ref_gz_scores_as_the_prepared_test_split(tiny_checkpoint, tiny_multi30k, tmp_path,
                                                      capsys):
    """The prepared test split's raw text given as --src (gzipped) / --ref gives the same scores
    as scoring the binarised split: same keys, same numbers, same sacreBLEU signatures."""
    rc, out, _ = _run(capsys, tiny_checkpoint, tiny_multi30k, *LANGS, "--beam", 2,
                      "--hyps-out", tmp_path / "split.en")
    assert rc == 0
    split = json.loads(out.strip().splitlines()[-1])
    raw_de = (tiny_multi30k / "raw" / "test.de").read_text("utf-8").splitlines()
    src = _gz(tmp_path / "test.de.gz", raw_de)
    rc, out, _ = _run(capsys, tiny_checkpoint, tiny_multi30k, *LANGS, "--beam", 2,
                      "--src", src, "--ref", tiny_multi30k / "raw" / "test.en",
                      "--hyps-out", tmp_path / "own.en")
    assert rc == 0
    own = json.loads(out.strip().splitlines()[-1])
    hyps = (tmp_path / "own.en").read_text("utf-8")
    assert hyps == (tmp_path / "split.en").read_text("utf-8")
    assert len(set(hyps.splitlines())) > 30 and split["bleu_tok"] > 0  # a model, not a constant
    assert own.keys() == split.keys() | {"sentences", "src_unk"}
    assert {k: own[k] for k in split} == split
    # the tiny run's dictionary (300 training pairs) lacks a few test subwords: <unk> for both
    from fairseq.data import Dictionary
    d = Dictionary.load(str(tiny_multi30k / "bin" / "dict.de.txt"))
    unk = sum(d.index(w) == d.unk() for line in (tiny_multi30k / "bpe" / "test.de")
              .read_text("utf-8").splitlines() for w in line.split())
    assert own["sentences"] == 40 and own["src_unk"] == unk > 0
    sig = split["sacrebleu_signature"]
    assert sig.startswith("nrefs:1") and "tok:13a" in sig


def test_empty_lines_and_unknown_words_keep_hypotheses_aligned(tiny_checkpoint, tiny_multi30k,
                                                               tmp_path, capsys):
    """An empty source line and words the run never saw (characters outside its dictionary
    become <unk>) still give one hypothesis each, in place: the hypotheses of the other lines are
    those of the same sentences in the prepared split."""
    raw_de = (tiny_multi30k / "raw" / "test.de").read_text("utf-8").splitlines()
    raw_en = (tiny_multi30k / "raw" / "test.en").read_text("utf-8").splitlines()
    src = [raw_de[0], "", "Ωμέγα ŋŧ Quatschwörterbuch ☃", raw_de[1], ""]
    ref = [raw_en[0], "", "Omega and a snowman.", raw_en[1], "A lost line."]
    _gz(tmp_path / "s.de.gz", src)
    _gz(tmp_path / "r.en.gz", ref)
    scores, hyps = evaluate.evaluate_files(tiny_checkpoint, tiny_multi30k, tmp_path / "s.de.gz",
                                           tmp_path / "r.en.gz", "de", "en", beam=2)
    assert len(hyps) == 5 and scores["sentences"] == 5 and scores["src_unk"] >= 3
    assert all(math.isfinite(scores[k]) for k in ("bleu", "bleu_tok", "bp_tok", "len_ratio_tok"))
    split = evaluate.translate(tiny_checkpoint, tiny_multi30k / "bin", "test", beam=2)
    assert (hyps[0], hyps[3]) == (split[0], split[1]) and split[0] != split[1]
    # the CLI writes one detokenised line per source line
    rc, out, _ = _run(capsys, tiny_checkpoint, tiny_multi30k, *LANGS, "--beam", 2,
                      "--src", tmp_path / "s.de.gz", "--ref", tmp_path / "r.en.gz",
                      "--hyps-out", tmp_path / "hyps.en")
    assert rc == 0 and json.loads(out.strip().splitlines()[-1]) == scores
    assert (tmp_path / "hyps.en").read_text("utf-8").split("\n")[:-1] == \
        evaluate.detokenize(hyps, "en")
    # a checkpoint of another direction is refused by name
    rc, out, err = _run(capsys, tiny_checkpoint, tiny_multi30k, "-s", "en", "-t", "de",
                        "--src", tmp_path / "s.de.gz", "--ref", tmp_path / "r.en.gz")
    assert rc == 2 and "translates de->en, not en->de" in err and err.count("\n") == 1


def test_bad_test_sets_are_one_line_errors(tiny_multi30k, tmp_path, capsys):
    """Every unusable input ends with one line on stderr, exit 2, before any model is loaded
    (the checkpoint here is an empty file: nothing may get as far as reading it)."""
    ckpt = tmp_path / "ckpt.pt"
    ckpt.write_bytes(b"")
    (tmp_path / "three.de").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "two.en").write_text("a\nb\n", encoding="utf-8")
    (tmp_path / "empty.de").write_text("", encoding="utf-8")
    (tmp_path / "latin1.de").write_bytes("Straße\n".encode("latin-1"))
    (tmp_path / "broken.de.gz").write_bytes(gzip.compress(b"a\nb\n")[:-12])
    no_bpe = tmp_path / "prep_no_bpe"
    (no_bpe / "bin").mkdir(parents=True)
    (no_bpe / "prep.json").write_text((tiny_multi30k / "prep.json").read_text())
    ok_src, ok_ref = tmp_path / "two.en", tmp_path / "two.en"
    cases = [
        ((tmp_path / "three.de", tmp_path / "two.en"), "has 3 lines but --ref"),
        ((tmp_path / "missing.de", ok_ref), f"--src {tmp_path / 'missing.de'}: no such file"),
        ((ok_src, tmp_path / "missing.en.gz"), f"--ref {tmp_path / 'missing.en.gz'}: no such file"),
        ((tmp_path / "empty.de", ok_ref), "empty file"),
        ((tmp_path / "latin1.de", ok_ref), "unreadable (UnicodeDecodeError"),
        ((tmp_path / "broken.de.gz", ok_ref), "unreadable (EOFError"),
    ]
    for (src, ref), why in cases:
        rc, out, err = _run(capsys, ckpt, tiny_multi30k, *LANGS, "--src", src, "--ref", ref)
        assert rc == 2 and out == "" and err.count("\n") == 1, (why, err)
        assert err.startswith("error: ") and why in err, (why, err)
    for argv, why in (
            ((ckpt, tiny_multi30k, "--src", ok_src), "--src and --ref go together"),
            ((ckpt, tiny_multi30k, "--ref", ok_ref), "--src and --ref go together"),
            ((ckpt, tiny_multi30k, "--src", ok_src, "--ref", ok_ref, "--subset", "valid"),
             "give one of them"),
            ((ckpt, no_bpe, "--src", ok_src, "--ref", ok_ref), "lacks bpe/codes"),
            ((tmp_path / "nope.pt", tiny_multi30k, "--src", ok_src, "--ref", ok_ref),
             "checkpoint not found"),
    ):
        rc, out, err = _run(capsys, *argv, *LANGS)
        assert rc == 2 and out == "" and err.count("\n") == 1, (why, err)
        assert why in err, (why, err)


def test_record_appends_one_eval_record_to_the_runs_own_log(tiny_multi30k, tiny_checkpoint, tmp_path, capsys):
    import shutil

    from core.runlog import read_run_log
    run = tmp_path / "tiny"
    shutil.copytree(tiny_checkpoint.parent.parent, run)
    ckpt = run / "checkpoints" / "checkpoint_best.pt"
    args = [str(ckpt), str(tiny_multi30k), "-s", "de", "-t", "en", "--beam", "1", "--record", str(run)]
    assert evaluate.main(args) == 0
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    evals = [r for r in read_run_log(run / "log.jsonl", strict=True).extra if r["type"] == "eval"]
    assert len(evals) == 1 and evals[0]["metrics"] == scores
    assert (evals[0]["beam"], evals[0]["subset"], evals[0]["checkpoint"]) == (1, "test", "checkpoint_best.pt")
    # the same evaluation again: read back, not appended twice
    assert evaluate.main(args) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == scores
    assert sum(r["type"] == "eval" for r in read_run_log(run / "log.jsonl").extra) == 1
    # another run's checkpoint is refused: its scores must not land in this log
    other = tmp_path / "other"
    shutil.copytree(run, other)
    before = (run / "log.jsonl").read_bytes()
    assert evaluate.main([str(other / "checkpoints" / "checkpoint_best.pt"), str(tiny_multi30k), "-s", "de",
                 "-t", "en", "--beam", "2", "--record", str(run)]) == 2
    assert "is not a checkpoint of" in capsys.readouterr().err
    assert (run / "log.jsonl").read_bytes() == before
    # a run still training (its folder locked by translation.train), or one not finished, is refused
    from core.run import RunLock
    with RunLock(run):
        assert evaluate.main(args[:-4] + ["--beam", "3", "--record", str(run)]) == 2
        assert "is in use by process" in capsys.readouterr().err
    lines = (run / "log.jsonl").read_text().splitlines()
    (run / "log.jsonl").write_text("\n".join(ln for ln in lines if '"type": "final"' not in ln) + "\n")
    unfinished = (run / "log.jsonl").read_bytes()
    assert evaluate.main(args[:-4] + ["--beam", "3", "--record", str(run)]) == 2
    assert "has not finished" in capsys.readouterr().err
    assert (run / "log.jsonl").read_bytes() == unfinished
