"""Data preparation: Multi30k from ../shared/data and IWSLT15 from a fixture in the 2015-01
release's on-disk format (.tgz holding en-de/train.tags.en-de.{en,de} and IWSLT15.TED*.xml)."""
import random
import tarfile
from dataclasses import fields
from pathlib import Path

import pytest

from core.config import load_config
from tests.conftest import REPO
from translation.data import (IWSLT_ONLY, PrepConfig, clean_pairs, hold_out_every, prepare, read_iwslt15,
                              recorded_settings, tokenize)

WORDS = "the a house dog runs small big red blue man woman child sees eats under over".split()
TEST_SETS = ["dev2010", "dev2012", "tst2010", "tst2011", "tst2012", "tst2013"]


def _sentence(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def make_iwslt15_fixture(root, n_talks=4, lines_per_talk=30, seed=0):
    """A small en-de release: train.tags with metadata lines, one dev/test XML per set."""
    rng = random.Random(seed)
    d = root / "en-de"
    d.mkdir(parents=True)
    en, de = [], []
    for t in range(n_talks):
        for side, lang in ((en, "en"), (de, "de")):
            side += [f"<url>http://www.ted.com/talks/talk{t}.html</url>",
                     f"<keywords>talks, {lang}</keywords>", f"<speaker>Speaker {t}</speaker>",
                     f"<talkid>{t}</talkid>", f"<title>Title {t} {lang}</title>",
                     f"<description>TED Talk Subtitles and Transcript: talk {t}</description>"]
        for i in range(lines_per_talk):
            n = rng.randint(3, 12)
            en.append(_sentence(rng, n))
            de.append("Der " + _sentence(rng, n).lower())
        for side in (en, de):
            side += ['<reviewer href="http://www.ted.com/profiles/1">R</reviewer>',
                     '<translator href="http://www.ted.com/profiles/2">T</translator>']
    en.append(" ".join(["word"] * 200))  # too long: removed by cleaning
    de.append("Wort .")
    (d / "train.tags.en-de.en").write_text("\n".join(en) + "\n", encoding="utf-8")
    (d / "train.tags.en-de.de").write_text("\n".join(de) + "\n", encoding="utf-8")
    for k, name in enumerate(TEST_SETS):
        prefix = "IWSLT15.TEDX" if name == "dev2012" else "IWSLT15.TED"
        for lang, tag in (("en", "srcset"), ("de", "refset")):
            segs = "\n".join(f'<seg id="{i + 1}"> {name} {lang} segment {i + 1} </seg>'
                             for i in range(k + 2))
            (d / f"{prefix}.{name}.en-de.{lang}.xml").write_text(
                f'<?xml version="1.0" encoding="UTF-8"?>\n<mteval>\n<{tag} setid="iwslt2015-{name}">\n'
                f'<doc docid="{k}" genre="lectures">\n<url>http://x</url>\n<talkid>{k}</talkid>\n'
                f"<title>T</title>\n{segs}\n</doc>\n</{tag}>\n</mteval>\n", encoding="utf-8")
    tgz = root / "en-de.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(d, arcname="en-de")
    return tgz


def test_read_iwslt15_release_format(tmp_path):
    tgz = make_iwslt15_fixture(tmp_path)
    rel = read_iwslt15(tgz, "en", "de", TEST_SETS)
    en, de = rel["train"]
    assert len(en) == len(de) == 4 * (30 + 2) + 1  # sentences + title and description lines
    assert not any(line.startswith("<") for line in en + de)
    assert "Title 0 en" in en and "Title 0 de" in de
    ten, tde = rel["test"]
    assert len(ten) == len(tde) == sum(k + 2 for k in range(6))  # concatenated, in Sec. 3.4 order
    assert ten[0] == "dev2010 en segment 1" and ten[2] == "dev2012 en segment 1"
    assert ten[-1] == "tst2013 en segment 7" and tde[-1] == "tst2013 de segment 7"
    # the extracted folder reads the same as the .tgz
    assert read_iwslt15(tmp_path / "en-de", "en", "de", TEST_SETS) == rel


def test_clean_pairs():
    a = ["a b", "a " * 200, "a b c d", "x"]
    b = ["c d", "e", "f", "y"]
    assert clean_pairs(a, b, 175, 1.5) == (["a b", "x"], ["c d", "y"])


def test_hold_out_every_23rd_line():
    """prepare-iwslt14.sh's awk 'NR%23 == 0' / 'NR%23 != 0': 1-based lines 23, 46, ... are valid,
    the rest train, both in corpus order; 191K pairs give the paper's ~8,300."""
    a = [f"a{i}" for i in range(1, 101)]
    b = [f"b{i}" for i in range(1, 101)]
    (ta, tb), (va, vb) = hold_out_every(a, b, 23)
    assert va == ["a23", "a46", "a69", "a92"] and vb == ["b23", "b46", "b69", "b92"]
    assert len(ta) == 96 and ta[21:23] == ["a22", "a24"] and tb[-1] == "b100"
    assert sorted(ta + va, key=lambda x: int(x[1:])) == a
    assert len(hold_out_every(["x"] * 191_000, ["y"] * 191_000, 23)[1][0]) == 8304


def test_prepare_iwslt15(tmp_path):
    """The IWSLT15 config prepares as prepare-iwslt14.sh: lowercased Moses tokens, the 200-token
    pair cleaned away, every 23rd cleaned pair held out, the six dev/test sets concatenated."""
    pytest.importorskip("fairseq")
    tgz = make_iwslt15_fixture(tmp_path)
    cfg = load_config(PrepConfig, REPO / "translation/configs/prep/iwslt15_en_de.yaml",
                      [f"raw_path={tgz}", f"out_dir={tmp_path / 'out'}", "bpe_merges=50"])
    assert cfg.lowercase and cfg.valid_every == 23 and cfg.test_sets == TEST_SETS
    counts = prepare(cfg)
    n_pairs = 4 * 32  # the 200-token line is cleaned away
    assert counts == {"train": n_pairs - n_pairs // 23, "valid": n_pairs // 23, "test": 27}
    out = tmp_path / "out"
    # the held-out pairs are the cleaned corpus's lines 23, 46, ... (lowercased Moses tokens)
    en, de = read_iwslt15(tgz, "en", "de", TEST_SETS)["train"]
    cen, cde = clean_pairs(tokenize(en, "en", True), tokenize(de, "de", True), 175, 1.5)
    assert len(cen) == n_pairs
    assert (out / "tok" / "valid.en").read_text().splitlines() == cen[22::23]
    assert (out / "tok" / "valid.de").read_text().splitlines() == cde[22::23]
    train_en = (out / "tok" / "train.en").read_text().splitlines()
    assert train_en == [x for i, x in enumerate(cen) if (i + 1) % 23]
    for split in ("train", "valid", "test"):
        for lang in ("en", "de"):
            text = (out / "tok" / f"{split}.{lang}").read_text()
            assert text == text.lower() and text != text.upper()
    assert (out / "tok" / "test.en").read_text().splitlines()[0] == "dev2010 en segment 1"
    import json
    settings = json.loads((out / "prep.json").read_text())["config"]
    assert settings["valid_every"] == 23 and settings["test_sets"] == TEST_SETS
    assert set(IWSLT_ONLY) <= set(settings)
    for split in ("train", "valid", "test"):
        for lang in ("en", "de"):
            assert len((out / "raw" / f"{split}.{lang}").read_text().splitlines()) == counts[split]
            assert (out / "bin" / f"{split}.en-de.{lang}.bin").is_file()
    # one binarisation serves both Table 4 directions
    from fairseq.tasks.translation import TranslationConfig, TranslationTask
    for src, tgt in (("en", "de"), ("de", "en")):
        task = TranslationTask.setup_task(TranslationConfig(data=str(out / "bin"), source_lang=src,
                                                            target_lang=tgt,
                                                            dataset_impl="mmap"))
        task.load_dataset("valid")
        assert len(task.dataset("valid")) == n_pairs // 23


def test_prepare_multi30k_counts_and_references(tiny_multi30k):
    import json
    info = json.loads((tiny_multi30k / "prep.json").read_text())
    assert info["counts"] == {"train": 300, "valid": 40, "test": 40}
    # only the settings that apply to Multi30k: no IWSLT hold-out, test sets, cleaning
    assert not set(IWSLT_ONLY) & set(info["config"]), info["config"]
    assert info["config"]["corpus"] == "multi30k" and info["config"]["bpe_merges"] == 500
    raw = (tiny_multi30k / "raw" / "test.en").read_text().splitlines()
    tok = (tiny_multi30k / "tok" / "test.en").read_text().splitlines()
    assert len(raw) == len(tok) == 40 and raw != tok  # detok and tokenised references differ


def test_recorded_settings_leave_out_what_the_corpus_does_not_use():
    """prep.json records the settings of the corpus being prepared: Multi30k's has no
    IWSLT-only key (validation hold-out, test sets, cleaning); IWSLT15's has them."""
    multi30k = recorded_settings(load_config(PrepConfig, REPO / "translation/configs/prep/multi30k_de_en.yaml"))
    iwslt = recorded_settings(load_config(PrepConfig, REPO / "translation/configs/prep/iwslt15_en_de.yaml"))
    assert not set(IWSLT_ONLY) & set(multi30k)
    assert set(IWSLT_ONLY) <= set(iwslt)
    assert set(iwslt) - set(multi30k) == set(IWSLT_ONLY)
    assert multi30k["corpus"] == "multi30k" and multi30k["bpe_merges"] == 10000
    assert set(IWSLT_ONLY) <= {f.name for f in fields(PrepConfig)}  # no stale name


def test_prepare_rejects_bad_input(tmp_path):
    from translation.data import main
    assert main(["--config", str(REPO / "translation/configs/prep/multi30k_de_en.yaml"),
                 f"raw_path={tmp_path / 'missing'}"]) == 2
    assert main(["--config", str(REPO / "translation/configs/prep/multi30k_de_en.yaml"),
                 "corpus=wmt"]) == 2
    assert main(["--config", str(REPO / "translation/configs/prep/multi30k_de_en.yaml"),
                 "no_such_key=1"]) == 2


def test_prepared_folder_is_never_changed_under_its_runs(tmp_path, capsys):
    """Runs depend on a prepared folder's dictionaries and references: the same settings again do
    nothing (files untouched), other settings or a folder this code did not prepare are refused
    with a one-line error (nothing touched), overwrite=true replaces a preparation but never a
    folder it did not make, and a preparation cut off midway (its marked .<name>.tmp folder)
    neither shows up as out_dir nor blocks the next one; an unmarked .<name>.tmp is not touched."""
    pytest.importorskip("fairseq")
    import json

    from translation.data import TMP_MARK, main
    tgz = make_iwslt15_fixture(tmp_path)
    out = tmp_path / "out"
    base = ["--config", str(REPO / "translation/configs/prep/iwslt15_en_de.yaml"), f"raw_path={tgz}",
            f"out_dir={out}", "valid_every=10"]

    def snapshot():
        return {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    (tmp_path / ".out.tmp").mkdir()  # someone's folder of that name: not ours, refused
    (tmp_path / ".out.tmp" / "junk").write_text("partial")
    assert main(base + ["bpe_merges=50"]) == 2
    assert "was not made by translation.data" in capsys.readouterr().err
    assert (tmp_path / ".out.tmp" / "junk").read_text() == "partial" and not out.exists()
    (tmp_path / ".out.tmp" / TMP_MARK).touch()  # as left by a preparation killed midway
    assert main(base + ["bpe_merges=50"]) == 0
    assert not (tmp_path / ".out.tmp").exists() and (out / "prep.json").is_file()
    first = snapshot()
    capsys.readouterr()
    assert main(base + ["bpe_merges=50", "workers=2"]) == 0  # workers: not a data setting
    assert "already prepared with these settings; nothing to do" in capsys.readouterr().out
    assert snapshot() == first
    assert main(base + ["bpe_merges=60"]) == 2
    err = capsys.readouterr().err.strip()
    assert "bpe_merges: 50 -> 60" in err and "overwrite=true" in err and "\n" not in err
    assert snapshot() == first
    assert main(base + ["bpe_merges=60", "overwrite=true"]) == 0
    assert json.loads((out / "prep.json").read_text())["config"]["bpe_merges"] == 60
    assert "overwrite" not in json.loads((out / "prep.json").read_text())["config"]
    assert (out / "bpe" / "codes").read_bytes() != first[Path("bpe/codes")]  # 60 merges, not 50

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    for extra in ([], ["overwrite=true"]):
        assert main(base[:-2] + [f"out_dir={mine}", "valid_every=10", "bpe_merges=50"] + extra) == 2
        assert "is not a preparation of this code" in capsys.readouterr().err
        assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_prep_json_of_older_code_still_matches(tmp_path):
    """A prep.json that records the IWSLT-only keys for Multi30k too (as earlier code wrote it): the same
    Multi30k settings still count as already prepared; a real difference still does not."""
    import json

    from translation.data import check_prepared
    cfg = load_config(PrepConfig, REPO / "translation/configs/prep/multi30k_de_en.yaml")
    old = {**recorded_settings(cfg), "valid_size": 8300, "seed": 1, "test_sets": TEST_SETS}
    (tmp_path / "prep.json").write_text(json.dumps({"config": old, "counts": {"train": 3}}))
    assert check_prepared(tmp_path, recorded_settings(cfg), overwrite=False) == {"train": 3}
    (tmp_path / "prep.json").write_text(json.dumps({"config": {**old, "lowercase": True}}))
    with pytest.raises(ValueError, match="lowercase: True -> False"):
        check_prepared(tmp_path, recorded_settings(cfg), overwrite=False)
    assert check_prepared(tmp_path, recorded_settings(cfg), overwrite=True) is None
