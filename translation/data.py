"""Data preparation: raw parallel text -> Moses tokens -> joint BPE -> fairseq binaries.

    python -m translation.data --config translation/configs/prep/multi30k_de_en.yaml [key=value ...]

Corpora (standard on-disk formats, given a path):
* ``multi30k``: the WMT16 multimodal task-1 raw text, one sentence a line, gzip or plain:
  ``train.{de,en}`` (29,000), ``val.{de,en}`` (1,014), ``test_2016_flickr.{de,en}`` (1,000).
* ``iwslt15``: the IWSLT 2015-01 release (wit3.fbk.eu, ``texts/en/de/en-de.tgz``) as the .tgz or
  its extracted folder: ``train.tags.en-de.{en,de}`` (TED transcripts with XML-ish metadata lines)
  and ``IWSLT15.TED*.<set>.en-de.{en,de}.xml`` dev/test files with ``<seg id="N">`` lines.
  Prepared as fairseq's examples/translation/prepare-iwslt14.sh prepares IWSLT14 (the shape of
  Sec. 3.4's counts): Moses tokens, clean-corpus-n 1..175 tokens at ratio 1.5, lowercased, and
  every 23rd cleaned training pair (lines 23, 46, ...: its ``awk 'NR%23 == 0'``) held out for
  validation (191K / 23 = 8,304, the paper's "8,300"); the test set is dev2010 + dev2012 +
  tst2010 + tst2011 + tst2012 + tst2013 concatenated in that order (Sec. 3.4's six sets; the
  IWSLT14 script has five, without tst2013).
  One binarisation serves both directions (fairseq's translation task finds
  ``train.en-de.{en,de}`` for ``-s de -t en`` too).

Output under ``out_dir``: ``raw/{train,valid,test}.{l}`` (untokenised; ``raw/test.<tgt>`` is the
reference of the detokenised BLEU), ``tok/`` (Moses-tokenised, the reference of tokenised BLEU),
``bpe/codes`` + ``bpe/*``, ``bin/`` (fairseq-preprocess) and ``prep.json`` (the settings that
apply to the corpus, ``recorded_settings``, and the counts).
Runs train from ``bin/`` and score against ``raw/`` and ``tok/``, so a prepared folder is never
changed under them: rerunning with the same settings does nothing, other settings are refused
(``overwrite=true`` replaces the folder), a folder that is not a preparation is never written
to, and a new preparation is written to ``.<name>.tmp`` beside ``out_dir`` (marked as ours) and
moved into place only when complete.
Cleaning and tag stripping follow fairseq's examples/translation/prepare-iwslt14.sh.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from core.cli import UserError, description, entry_point
from core.config import ConfigError, load_config, to_dict
from core.run import check_name, config_changes

CORPORA = ("multi30k", "iwslt15")
SPLITS = ("train", "valid", "test")
MULTI30K_FILES = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
IWSLT_TEST_SETS = ["dev2010", "dev2012", "tst2010", "tst2011", "tst2012", "tst2013"]
# Metadata lines of train.tags.* dropped whole / tags stripped (fairseq prepare-iwslt14.sh).
_IWSLT_DROP = ("<url", "<talkid", "<keywords", "<speaker", "<reviewer", "<translator", "<doc",
               "</doc")
_IWSLT_STRIP = re.compile(r"</?(title|description)>")
_SEG = re.compile(r'<seg id="?\d+"?>\s*(.*?)\s*</seg>')


@dataclass
class PrepConfig:
    corpus: str = "multi30k"
    raw_path: str = "../shared/data/multi30k"
    out_dir: str = "data/multi30k_de_en"
    lang1: str = "de"  # binarised as source (either direction trains from the same binaries)
    lang2: str = "en"
    lowercase: bool = False
    bpe_merges: int = 10000  # joint BPE on train lang1 + lang2 (subword-nmt)
    joined_dictionary: bool = False  # separate dictionaries, as Wu et al.'s IWSLT setup
    max_train_pairs: int = 0  # 0 = all; the first N pairs (smoke runs, tests)
    max_eval_pairs: int = 0  # 0 = all; the first N pairs of valid and test
    # IWSLT15 only (IWSLT_ONLY: prep.json of another corpus leaves them out)
    valid_every: int = 23  # hold out cleaned training pairs N, 2N, ... (prepare-iwslt14.sh: 23)
    test_sets: list[str] = field(default_factory=lambda: list(IWSLT_TEST_SETS))
    clean_max_len: int = 175  # Moses clean-corpus-n.perl 1..175 tokens, length ratio <= 1.5
    clean_ratio: float = 1.5
    workers: int = 1
    overwrite: bool = False  # replace an out_dir prepared (by this code) with other settings


IWSLT_ONLY = ("valid_every", "test_sets", "clean_max_len", "clean_ratio")
# IWSLT15 keys of an earlier hold-out (a seeded random valid_size pairs), which prep.json of
# Multi30k recorded too: left out when comparing a Multi30k preparation's settings
OLD_IWSLT_ONLY = ("valid_size", "seed")
NOT_RECORDED = ("overwrite",)  # how to prepare, not what
# settings that do not change the prepared files
SAME_DATA_KEYS = ("workers", "out_dir")
TMP_MARK = ".translation_data_tmp"  # in a .<name>.tmp folder: made by prepare, safe to remove


def recorded_settings(cfg: PrepConfig) -> dict:
    """The settings prep.json records: the config, less the keys that do not apply to the corpus
    being prepared (IWSLT15's validation hold-out, test sets and cleaning mean nothing for
    Multi30k, which ships its own splits and is not cleaned)."""
    settings = to_dict(cfg)
    for key in NOT_RECORDED:
        settings.pop(key)
    if cfg.corpus != "iwslt15":
        for key in IWSLT_ONLY:
            settings.pop(key, None)
    return settings


def read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n").strip() for line in f]


def _read_corpus_file(path: Path) -> list[str]:
    """read_lines, with a file that is not UTF-8 named in a one-line UserError."""
    try:
        return read_lines(path)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason}: byte 0x{e.object[e.start]:02x})") from None


def _find(folder: Path, stem: str) -> Path:
    for cand in (folder / stem, folder / f"{stem}.gz"):
        if cand.is_file():
            return cand
    raise FileNotFoundError(f"{stem}[.gz] not found in {folder}")


def read_multi30k(raw: Path, l1: str, l2: str) -> dict:
    """{split: (lines_l1, lines_l2)} from the Multi30k raw folder."""
    out = {}
    for split, stem in MULTI30K_FILES.items():
        a = _read_corpus_file(_find(raw, f"{stem}.{l1}"))
        b = _read_corpus_file(_find(raw, f"{stem}.{l2}"))
        if len(a) != len(b):
            raise UserError(f"Multi30k {stem}: {len(a)} {l1} lines but {len(b)} {l2} lines")
        out[split] = (a, b)
    return out


def _iwslt_train_lines(path: Path) -> list[str]:
    lines = []
    for line in _read_corpus_file(path):
        if line.startswith(_IWSLT_DROP):
            continue
        lines.append(_IWSLT_STRIP.sub("", line).strip())
    return lines


def _iwslt_segs(path: Path) -> list[str]:
    text = "\n".join(_read_corpus_file(path))  # a <seg> is one line
    return [m.group(1).replace("\u2019", "'") for m in _SEG.finditer(text)]


def _iwslt_folder(raw: Path, l1: str, l2: str, tmp: str) -> Path:
    if raw.is_file() and raw.name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(raw) as tar:
            tar.extractall(tmp, filter="data")
        raw = Path(tmp)
    for cand in (raw, raw / f"{l1}-{l2}", raw / f"{l2}-{l1}"):
        if any(cand.glob("train.tags.*")):
            return cand
    raise FileNotFoundError(f"no train.tags.* file in {raw} (expected the IWSLT15 2015-01 "
                            f"{l1}-{l2} release, extracted or .tgz)")


def read_iwslt15(raw: Path, l1: str, l2: str, test_sets: list[str]) -> dict:
    """{"train": pairs, "test": pairs} of the release (valid is held out later from train)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = _iwslt_folder(raw, l1, l2, tmp)
        pair = next(folder.glob("train.tags.*")).name.split(".")[2]  # "en-de"
        a = _iwslt_train_lines(folder / f"train.tags.{pair}.{l1}")
        b = _iwslt_train_lines(folder / f"train.tags.{pair}.{l2}")
        if len(a) != len(b):
            raise UserError(f"IWSLT15 train: {len(a)} {l1} lines but {len(b)} {l2} lines after "
                            "removing metadata")
        ta, tb = [], []
        for name in test_sets:
            found = {}
            for lang in (l1, l2):
                hits = sorted(folder.glob(f"IWSLT*.{name}.{pair}.{lang}.xml"))
                if len(hits) != 1:
                    raise FileNotFoundError(f"expected one IWSLT*.{name}.{pair}.{lang}.xml in "
                                            f"{folder}, found {len(hits)}")
                found[lang] = _iwslt_segs(hits[0])
            if len(found[l1]) != len(found[l2]):
                raise UserError(f"IWSLT15 {name}: {len(found[l1])} {l1} segments but "
                                f"{len(found[l2])} {l2}")
            ta += found[l1]
            tb += found[l2]
    return {"train": (a, b), "test": (ta, tb)}


def clean_pairs(a: list[str], b: list[str], max_len: int, ratio: float):
    """Moses clean-corpus-n.perl on tokenised text: both sides 1..max_len tokens and neither
    longer than ratio times the other."""
    keep_a, keep_b = [], []
    for x, y in zip(a, b):
        n, m = len(x.split()), len(y.split())
        if 1 <= n <= max_len and 1 <= m <= max_len and n <= ratio * m and m <= ratio * n:
            keep_a.append(x)
            keep_b.append(y)
    return keep_a, keep_b


def hold_out_every(a: list[str], b: list[str], every: int):
    """((train_a, train_b), (valid_a, valid_b)): pairs number every, 2 every, ... (1-based, in
    corpus order) go to validation, the rest to training (prepare-iwslt14.sh's awk NR%23)."""
    held = {i for i in range(every - 1, len(a), every)}
    train = ([x for i, x in enumerate(a) if i not in held], [y for i, y in enumerate(b) if i not in held])
    valid = ([a[i] for i in sorted(held)], [b[i] for i in sorted(held)])
    return train, valid


def tokenize(lines: list[str], lang: str, lowercase: bool) -> list[str]:
    from sacremoses import MosesTokenizer
    tok = MosesTokenizer(lang=lang)
    out = [tok.tokenize(line, escape=False, return_str=True) for line in lines]
    return [s.lower() for s in out] if lowercase else out


def detokenize(lines: list[str], lang: str) -> list[str]:
    from sacremoses import MosesDetokenizer
    detok = MosesDetokenizer(lang=lang)
    return [detok.detokenize(line.split()) for line in lines]


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def load_bpe(codes: Path):
    """subword-nmt's BPE from a codes file; ``.process_line(tokenised_line)`` segments a line.
    One constructor for the prepared splits and for any other test set (translation.evaluate)."""
    from subword_nmt.apply_bpe import BPE
    with open(codes, encoding="utf-8") as f:
        return BPE(f)


def learn_and_apply_bpe(tok_dir: Path, bpe_dir: Path, langs: tuple[str, str], merges: int,
                        workers: int = 1) -> None:
    from subword_nmt.learn_bpe import learn_bpe
    bpe_dir.mkdir(parents=True, exist_ok=True)
    joint = [line for lang in langs for line in (tok_dir / f"train.{lang}").read_text("utf-8").splitlines()]
    codes = bpe_dir / "codes"
    with open(codes, "w", encoding="utf-8") as out:
        learn_bpe(joint, out, merges, num_workers=workers)
    bpe = load_bpe(codes)
    for split in SPLITS:
        for lang in langs:
            lines = (tok_dir / f"{split}.{lang}").read_text("utf-8").splitlines()
            _write(bpe_dir / f"{split}.{lang}", [bpe.process_line(line) for line in lines])


def binarize(bpe_dir: Path, bin_dir: Path, l1: str, l2: str, joined: bool, workers: int) -> None:
    from fairseq import options
    from fairseq_cli import preprocess
    argv = ["--source-lang", l1, "--target-lang", l2, "--trainpref", str(bpe_dir / "train"),
            "--validpref", str(bpe_dir / "valid"), "--testpref", str(bpe_dir / "test"),
            "--destdir", str(bin_dir), "--workers", str(workers)]
    if joined:
        argv.append("--joined-dictionary")
    args = options.get_preprocessing_parser().parse_args(argv)
    preprocess.main(args)


def check(cfg: PrepConfig) -> None:
    """Value checks the dataclass types cannot express; ConfigError names the key."""
    if cfg.corpus not in CORPORA:
        raise ConfigError(f"corpus must be one of {', '.join(CORPORA)}, got {cfg.corpus!r}")
    for key, low in (("bpe_merges", 1), ("workers", 1), ("clean_max_len", 1), ("valid_every", 2),
                     ("max_train_pairs", 0), ("max_eval_pairs", 0)):
        if getattr(cfg, key) < low:
            raise ConfigError(f"{key} must be >= {low}, got {getattr(cfg, key)}")
    if not cfg.clean_ratio >= 1:
        raise ConfigError(f"clean_ratio must be >= 1, got {cfg.clean_ratio}")
    for key in ("lang1", "lang2"):  # file name suffixes
        check_name(getattr(cfg, key), key)
    if cfg.lang1 == cfg.lang2:
        raise ConfigError(f"lang1 and lang2 must differ, got {cfg.lang1!r} twice")


def prepare(cfg: PrepConfig) -> dict:
    """Run the whole pipeline; returns the counts written to prep.json. Nothing is left behind
    when it fails: the ``.<name>.tmp`` folder it was writing is removed."""
    check(cfg)
    raw, final = Path(cfg.raw_path), Path(cfg.out_dir)
    done = check_prepared(final, recorded_settings(cfg), cfg.overwrite)
    if done is not None:
        print(f"translation.data: {final} is already prepared with these settings; nothing to do")
        return done
    if not raw.exists():
        raise FileNotFoundError(f"raw_path not found: {raw}")
    out = _fresh_tmp(final)
    try:
        counts = _prepare_into(cfg, raw, out)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    (out / TMP_MARK).unlink()
    if (final / "prep.json").is_file():  # overwrite=true, checked by check_prepared
        shutil.rmtree(final)
    elif final.exists():
        final.rmdir()  # empty (check_prepared); fails rather than delete anything put there since
    os.replace(out, final)
    return counts


def _prepare_into(cfg: PrepConfig, raw: Path, out: Path) -> dict:
    """The pipeline, written into ``out`` (prep.json last); returns the counts."""
    l1, l2 = cfg.lang1, cfg.lang2
    if cfg.corpus == "multi30k":
        splits = read_multi30k(raw, l1, l2)
        tok = {s: (tokenize(a, l1, cfg.lowercase), tokenize(b, l2, cfg.lowercase))
               for s, (a, b) in splits.items()}
    else:
        rel = read_iwslt15(raw, l1, l2, list(cfg.test_sets))
        a, b = rel["train"]
        ta, tb = clean_pairs(tokenize(a, l1, cfg.lowercase), tokenize(b, l2, cfg.lowercase),
                             cfg.clean_max_len, cfg.clean_ratio)
        train, valid = hold_out_every(ta, tb, cfg.valid_every)
        if not valid[0]:
            raise UserError(f"valid_every={cfg.valid_every} holds out nothing: only {len(ta)} "
                            "pairs after cleaning")
        tok = {"train": train, "valid": valid,
               "test": tuple(tokenize(x, lang, cfg.lowercase) for x, lang in zip(rel["test"], (l1, l2)))}
        splits = {"train": None, "valid": None, "test": rel["test"]}
    counts = {}
    for split in SPLITS:
        n = cfg.max_train_pairs if split == "train" else cfg.max_eval_pairs
        a, b = tok[split]
        if n:
            a, b = a[:n], b[:n]
        _write(out / "tok" / f"{split}.{l1}", a)
        _write(out / "tok" / f"{split}.{l2}", b)
        if splits[split] is not None:  # untokenised text exists (Multi30k; IWSLT test)
            ra, rb = splits[split]
            ra, rb = (ra[:n], rb[:n]) if n else (ra, rb)
        else:  # IWSLT train/valid after cleaning: Moses-detokenise back (references only)
            ra, rb = detokenize(a, l1), detokenize(b, l2)
        _write(out / "raw" / f"{split}.{l1}", ra)
        _write(out / "raw" / f"{split}.{l2}", rb)
        counts[split] = len(a)
    learn_and_apply_bpe(out / "tok", out / "bpe", (l1, l2), cfg.bpe_merges, cfg.workers)
    binarize(out / "bpe", out / "bin", l1, l2, cfg.joined_dictionary, cfg.workers)
    info = {"config": recorded_settings(cfg), "counts": counts}
    (out / "prep.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
    return counts


def _fresh_tmp(final: Path) -> Path:
    """An empty ``.<name>.tmp`` beside ``final``, marked with TMP_MARK. One left by a preparation
    that was cut off is removed; a folder of that name without the mark is not ours: an error."""
    resolved = final.resolve()
    if not resolved.name:
        raise UserError(f"out_dir {final} is a filesystem root; give a folder of its own")
    tmp = resolved.parent / f".{resolved.name}.tmp"
    if tmp.exists():
        if not (tmp / TMP_MARK).is_file():
            raise UserError(f"{tmp} exists and was not made by translation.data: move it away")
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    (tmp / TMP_MARK).touch()
    return tmp


def check_prepared(out: Path, settings: dict, overwrite: bool) -> dict | None:
    """The counts of a finished preparation of ``out`` with these settings (nothing to do), or
    None when ``out`` may be (re)written: absent, empty, or a preparation with other settings and
    ``overwrite``. Anything else is a UserError: runs trained on a prepared folder depend on its
    dictionaries and references, and a folder that is not a preparation is never replaced."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if not out.is_dir():
        raise UserError(f"out_dir {out} is a file, not a folder")
    info_path = out / "prep.json"
    try:
        info = json.loads(info_path.read_text()) if info_path.is_file() else None
        old = info["config"] if info else None
    except (ValueError, KeyError, TypeError):
        old = None
    if not isinstance(old, dict):
        raise UserError(f"out_dir {out} exists and is not a preparation of this code (no readable "
                        "prep.json): choose another out_dir (overwrite=true replaces only a preparation)")
    if old.get("corpus") != "iwslt15":  # prep.json of older code recorded every key
        old = {k: v for k, v in old.items() if k not in IWSLT_ONLY + OLD_IWSLT_ONLY}
    changes = config_changes(old, settings, ignore=SAME_DATA_KEYS)
    if not changes:
        return info.get("counts", {})
    if overwrite:
        return None
    raise UserError(f"out_dir {out} was prepared with other settings ({'; '.join(changes)}); runs "
                    "trained on it use its dictionaries: choose another out_dir, or pass "
                    "overwrite=true to replace it")


@entry_point()
def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m translation.data", description=description(__doc__))
    ap.add_argument("--config", required=True, help="translation/configs/prep/<corpus>.yaml")
    ap.add_argument("overrides", nargs="*", help="key=value")
    ap.add_argument("--verbose", action="store_true",
                    help="also print fairseq-preprocess's log, the BPE progress bar and library warnings")
    args = ap.parse_args(argv)
    from translation import quiet_fairseq
    if not args.verbose:
        quiet_fairseq()
    cfg = load_config(PrepConfig, args.config, args.overrides)
    counts = prepare(cfg)
    print(f"translation.data: {cfg.out_dir}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
