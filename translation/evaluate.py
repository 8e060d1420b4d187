"""Beam search on a binarised split and BLEU with sacrebleu (Sec. 3.4, Appendix A.2).

    python -m translation.evaluate CHECKPOINT PREP_DIR -s de -t en [--subset test] [--beam 5]
    python -m translation.evaluate CHECKPOINT PREP_DIR -s de -t en --src FILE --ref FILE
    python -m translation.evaluate CHECKPOINT_DIR PREP_DIR -s de -t en --average-last N

``--average-last N``: the mean weights of the N latest epoch checkpoints (``checkpoint<epoch>.pt``)
in CHECKPOINT_DIR, as fairseq's scripts/average_checkpoints.py averages them (translation.train
keeps them with eval.average_last=N); the default is the one checkpoint given (translation.train
evaluates ``checkpoint_best.pt``, the lowest validation NLL).

``--src/--ref``: any other test set (e.g. Multi30k's test_2017_flickr, test_2017_mscoco,
test_2018_flickr), raw text one sentence a line, plain or .gz. The source goes through the run's
own preparation (translation.data): Moses tokens (lowercased if the corpus was), the run's BPE
codes (``PREP_DIR/bpe/codes``), the run's source dictionary as fairseq-preprocess binarises (a
subword the dictionary lacks becomes <unk>, </s> appended); an empty line stays one sentence (the
model sees only </s>, as the binarised split would give it) so hypotheses stay aligned with the
references. The reference is scored as ``raw/`` and ``tok/`` are for the prepared split: as is
for ``bleu``, Moses-tokenised for ``bleu_tok``.

Two numbers, both from sacrebleu's corpus BLEU (4-gram, brevity penalty):
* ``bleu``: detokenised BLEU. BPE removed, Moses-detokenised hypotheses against the untouched
  references ``PREP_DIR/raw/<subset>.<tgt>`` with sacrebleu's own 13a tokenisation; the
  signature is printed and stored.
* ``bleu_tok``: tokenised BLEU, what fairseq-generate and multi-bleu.perl print and what IWSLT
  papers of the period (and, we assume, Table 4 via fairseq) report: BPE-removed Moses tokens
  against the Moses-tokenised references ``PREP_DIR/tok/<subset>.<tgt>``, ``tokenize="none"``.
If the corpus was lowercased at preparation (prep.json), both are computed case-insensitively.
Beam 5 (``--beam``) and length penalty 1.0 (``--lenpen``): the paper does not give decoding
settings; fairseq's IWSLT example uses beam 5.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from core.checkpoint import CheckpointError
from core.cli import UserError, description, entry_point
from core.run import lock_finished_run
from translation import quiet_fairseq
from translation.checkpoints import read_checkpoint, task_settings
from translation.data import read_lines, detokenize, load_bpe, tokenize


def check_checkpoint(checkpoint, langs: tuple[str, str] | None) -> None:
    """A one-line error (before fairseq is imported, let alone prints anything) unless checkpoint
    is a readable translation checkpoint for langs: read with weights_only=True (nothing in the
    file can run), then its task's languages."""
    task = task_settings(read_checkpoint(checkpoint))
    if "source_lang" not in task or "target_lang" not in task:
        raise CheckpointError(f"checkpoint {checkpoint} is not a translation checkpoint (its "
                              f"task is {task.get('_name', task.get('task'))!r})")
    if langs is not None and (task["source_lang"], task["target_lang"]) != tuple(langs):
        raise UserError(f"{checkpoint} translates {task['source_lang']}->{task['target_lang']}, "
                        f"not {langs[0]}->{langs[1]} (-s/-t)")


def _load(checkpoint, bin_dir, device: str, fp16: bool, langs: tuple[str, str] | None):
    """(models, task, use_cuda) with the checkpoint's task reading dictionaries from bin_dir."""
    check_checkpoint(checkpoint, langs)  # fairseq's own load then reads a file known to be safe
    from fairseq import checkpoint_utils

    import translation
    translation.register()  # the plugin and the checkpoint-loading fix

    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides={"data": str(bin_dir)})
    use_cuda = torch.cuda.is_available() and device != "cpu"
    for m in models:
        m.eval()
        if fp16:
            m.half()
        if use_cuda:
            m.cuda()
    return models, task, use_cuda


def _generate(models, task, dataset, beam: int, lenpen: float, max_tokens: int,
              use_cuda: bool) -> list[str]:
    from fairseq import utils
    from fairseq.dataclass.configs import GenerationConfig

    generator = task.build_generator(models, GenerationConfig(beam=beam, lenpen=lenpen))
    itr = task.get_batch_iterator(
        dataset=dataset, max_tokens=max_tokens,
        max_positions=utils.resolve_max_positions(task.max_positions(),
                                                  *[m.max_positions() for m in models]),
        ignore_invalid_inputs=True, seed=1, num_workers=0,
    ).next_epoch_itr(shuffle=False)
    tgt_dict = task.target_dictionary
    hyps = [""] * len(dataset)  # a sentence skipped as too long scores as an empty hypothesis
    for sample in itr:
        if use_cuda:
            sample = utils.move_to_cuda(sample)
        out = task.inference_step(generator, models, sample)
        for i, sid in enumerate(sample["id"].tolist()):
            hyps[sid] = tgt_dict.string(out[i][0]["tokens"].int().cpu(), "subword_nmt",
                                        extra_symbols_to_ignore={tgt_dict.eos()})
    return hyps


def translate(checkpoint: str | Path, bin_dir: str | Path, subset: str = "test", beam: int = 5,
              lenpen: float = 1.0, max_tokens: int = 8000, device: str = "auto",
              fp16: bool = False, langs: tuple[str, str] | None = None) -> list[str]:
    """Tokenised, BPE-removed hypotheses for every sentence of `subset`, in file order."""
    models, task, use_cuda = _load(checkpoint, bin_dir, device, fp16, langs)
    task.load_dataset(subset)
    return _generate(models, task, task.dataset(subset), beam, lenpen, max_tokens, use_cuda)


def bpe_source(lines: list[str], prep_dir: str | Path, lang: str) -> list[str]:
    """Raw source sentences -> the BPE'd text translation.data made of the prepared splits:
    Moses tokens (lowercased when prep.json says so), then the run's codes (PREP_DIR/bpe/codes)."""
    prep_dir = Path(prep_dir)
    lowercase = _prep_lowercase(prep_dir)
    bpe = load_bpe(prep_dir / "bpe" / "codes")
    return [bpe.process_line(line) for line in tokenize(lines, lang, lowercase)]


def translate_lines(checkpoint: str | Path, bin_dir: str | Path, bpe_lines: list[str],
                    beam: int = 5, lenpen: float = 1.0, max_tokens: int = 8000,
                    device: str = "auto", fp16: bool = False,
                    langs: tuple[str, str] | None = None) -> tuple[list[str], int]:
    """Hypotheses (as translate()) for BPE'd source lines, one per line, and the number of source
    subwords the run's dictionary does not hold. Each line is encoded as fairseq-preprocess
    binarised the prepared splits (Dictionary.encode_line: unknown -> <unk>, </s> appended)."""
    models, task, use_cuda = _load(checkpoint, bin_dir, device, fp16, langs)
    src_dict = task.source_dictionary
    tokens = [src_dict.encode_line(line, add_if_not_exist=False, append_eos=True).long()
              for line in bpe_lines]
    n_unk = sum(int((t == src_dict.unk()).sum()) for t in tokens)
    dataset = task.build_dataset_for_inference(tokens, [t.numel() for t in tokens])
    return _generate(models, task, dataset, beam, lenpen, max_tokens, use_cuda), n_unk


def _prep_lowercase(prep_dir: Path) -> bool:
    info = json.loads((prep_dir / "prep.json").read_text())
    return bool(info["config"].get("lowercase", False))


def bleu_scores(hyps_tok: list[str], prep_dir: str | Path, subset: str, tgt: str) -> dict:
    """corpus_bleu against the prepared split's references PREP_DIR/{raw,tok}/<subset>.<tgt>."""
    prep_dir = Path(prep_dir)
    refs_raw = (prep_dir / "raw" / f"{subset}.{tgt}").read_text("utf-8").splitlines()
    refs_tok = (prep_dir / "tok" / f"{subset}.{tgt}").read_text("utf-8").splitlines()
    if not len(refs_raw) == len(refs_tok) == len(hyps_tok):
        raise UserError(f"{len(hyps_tok)} hypotheses but {len(refs_raw)} raw / {len(refs_tok)} "
                        f"tokenised references in {prep_dir}")
    return corpus_bleu(hyps_tok, refs_raw, refs_tok, tgt, _prep_lowercase(prep_dir))


def corpus_bleu(hyps_tok: list[str], refs_raw: list[str], refs_tok: list[str], tgt: str,
                lowercase: bool) -> dict:
    """{"bleu", "bleu_tok", "sacrebleu_signature", "sacrebleu_signature_tok", "bp_tok",
    "len_ratio_tok"} (see module doc). The brevity penalty and hypothesis/reference length ratio
    of the tokenised score show whether a BLEU difference comes from n-gram precision or from
    output length (softer training targets can shorten beam-search output)."""
    from sacrebleu.metrics import BLEU

    detok = BLEU(lowercase=lowercase)
    tok = BLEU(lowercase=lowercase, tokenize="none", force=True)  # tokenised on purpose: no warning
    score_tok = tok.corpus_score(hyps_tok, [refs_tok])
    return {
        "bleu": detok.corpus_score(detokenize(hyps_tok, tgt), [refs_raw]).score,
        "bleu_tok": score_tok.score,
        "sacrebleu_signature": str(detok.get_signature()),
        "sacrebleu_signature_tok": str(tok.get_signature()),
        "bp_tok": score_tok.bp,
        "len_ratio_tok": score_tok.sys_len / max(score_tok.ref_len, 1),
    }


def read_test_pair(src: str | Path, ref: str | Path) -> tuple[list[str], list[str]]:
    """Source and reference sentences of a user's test set (plain or .gz, UTF-8), one a line;
    UserError / FileNotFoundError with a one-line message when they cannot be used."""
    out = []
    for flag, path in (("--src", Path(src)), ("--ref", Path(ref))):
        if not path.is_file():
            raise FileNotFoundError(f"{flag} {path}: no such file")
        try:
            out.append(read_lines(path))
        except (UnicodeDecodeError, OSError, EOFError) as e:  # not UTF-8, a broken .gz
            raise UserError(f"{flag} {path}: unreadable ({type(e).__name__}: "
                            f"{str(e).splitlines()[0] if str(e) else ''})") from None
        if not out[-1]:
            raise UserError(f"{flag} {path}: empty file")
    if len(out[0]) != len(out[1]):
        raise UserError(f"--src {src} has {len(out[0])} lines but --ref {ref} has {len(out[1])}; "
                        "a test set needs one reference line per source line")
    return out[0], out[1]


def evaluate_files(checkpoint: str | Path, prep_dir: str | Path, src: str | Path, ref: str | Path,
                   source_lang: str, target_lang: str, beam: int = 5, lenpen: float = 1.0,
                   device: str = "auto") -> tuple[dict, list[str]]:
    """BLEU of the checkpoint on a user's test set (module doc): the keys of bleu_scores plus
    "sentences" and "src_unk" (source subwords mapped to <unk>), and the tokenised hypotheses."""
    prep_dir = Path(prep_dir)
    src_lines, ref_lines = read_test_pair(src, ref)
    lowercase = _prep_lowercase(prep_dir)
    hyps, n_unk = translate_lines(checkpoint, prep_dir / "bin",
                                  bpe_source(src_lines, prep_dir, source_lang), beam, lenpen,
                                  device=device, langs=(source_lang, target_lang))
    scores = corpus_bleu(hyps, ref_lines, tokenize(ref_lines, target_lang, lowercase),
                         target_lang, lowercase)
    return {**scores, "sentences": len(hyps), "src_unk": n_unk}, hyps


def _check_prep_dir(prep_dir: Path, needs_bpe: bool) -> None:
    need = ["prep.json", "bin"] + (["bpe/codes"] if needs_bpe else [])
    lacking = [n for n in need if not (prep_dir / n).exists()]
    if lacking:
        raise FileNotFoundError(f"{prep_dir} lacks {', '.join(lacking)} (not a translation.data "
                                "out_dir?)")


@entry_point()
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m translation.evaluate", description=description(__doc__))
    ap.add_argument("checkpoint")
    ap.add_argument("prep_dir", help="translation.data's out_dir (holds bin/, bpe/, raw/, tok/)")
    ap.add_argument("-s", "--source-lang", required=True)
    ap.add_argument("-t", "--target-lang", required=True)
    ap.add_argument("--subset", default=None, help="a prepared split (default: test)")
    ap.add_argument("--src", help="another test set's source: raw text, one sentence a line, "
                                  "optionally .gz (needs --ref)")
    ap.add_argument("--ref", help="its reference translations, as --src")
    ap.add_argument("--beam", type=int, default=5, help="beam size (default 5, fairseq's IWSLT "
                                                         "example; 1 = greedy)")
    ap.add_argument("--lenpen", type=float, default=1.0)
    ap.add_argument("--average-last", type=int, default=0, metavar="N",
                    help="evaluate the mean weights of the N latest checkpoint<epoch>.pt in the "
                         "folder CHECKPOINT (fairseq's average_checkpoints.py); default: the "
                         "checkpoint file CHECKPOINT itself")
    ap.add_argument("--hyps-out", help="also write the detokenised hypotheses here")
    ap.add_argument("--record", metavar="RUN_DIR",
                    help="also append the scores as an 'eval' record to RUN_DIR/log.jsonl (the "
                         "run must have finished and not be in use, the checkpoint must be one "
                         "of its own); an identical evaluation already recorded is not run again")
    ap.add_argument("--verbose", action="store_true",
                    help="also print fairseq's log lines and library warnings")
    args = ap.parse_args(argv)
    if not args.verbose:
        quiet_fairseq()
    print(json.dumps(_scores(args)))
    return 0


def _scores(args) -> dict:
    """main()'s work: the checks, then the scores (an identical recorded evaluation's, if any)."""
    if (args.src is None) != (args.ref is None):
        raise UserError("--src and --ref go together (a test set and its references)")
    if args.src is not None and args.subset is not None:
        raise UserError("--subset scores a prepared split, --src/--ref another test set: "
                        "give one of them")
    if args.beam < 1:
        raise UserError(f"--beam must be >= 1, got {args.beam}")
    if args.average_last < 0:
        raise UserError(f"--average-last must be >= 0, got {args.average_last}")
    if args.average_last:
        if not Path(args.checkpoint).is_dir():
            raise FileNotFoundError(f"--average-last: {args.checkpoint} is not a folder (give the "
                                    "folder of the epoch checkpoints, e.g. RUN/checkpoints)")
        from translation.checkpoints import last_epoch_checkpoints
        averaged = last_epoch_checkpoints(args.checkpoint, args.average_last)
    elif not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")
    prep_dir = Path(args.prep_dir)
    _check_prep_dir(prep_dir, needs_bpe=args.src is not None)
    langs = (args.source_lang, args.target_lang)
    if args.hyps_out:
        _check_writable(Path(args.hyps_out))  # now, not after the beam search
    lock, tmp = None, None
    try:
        if args.record is not None:
            key = _record_key(args)
            lock, log = lock_finished_run(Path(args.record))  # until the record is written
            done = _recorded(log, Path(args.record), Path(args.checkpoint), key)
            if done is not None:
                return done["metrics"]
        checkpoint = args.checkpoint
        if args.average_last:
            import tempfile

            from translation.checkpoints import write_averaged
            tmp = tempfile.TemporaryDirectory(prefix="translation_avg_")
            checkpoint = write_averaged(averaged, Path(tmp.name) / f"checkpoint_avg_last{args.average_last}.pt")
        if args.src is not None:
            scores, hyps = evaluate_files(checkpoint, prep_dir, args.src, args.ref, *langs,
                                          beam=args.beam, lenpen=args.lenpen)
        else:
            subset = args.subset or "test"
            hyps = translate(checkpoint, prep_dir / "bin", subset, args.beam, args.lenpen,
                             langs=langs)
            scores = bleu_scores(hyps, prep_dir, subset, args.target_lang)
        if args.hyps_out:
            Path(args.hyps_out).write_text("\n".join(detokenize(hyps, args.target_lang)) + "\n")
        if args.record is not None:
            from core.runlog import RunLogWriter, now_iso
            RunLogWriter(Path(args.record) / "log.jsonl").extra("eval", **key, metrics=scores, at=now_iso())
        return scores
    finally:
        if tmp is not None:
            tmp.cleanup()
        if lock is not None:
            lock.release()


def _check_writable(path: Path) -> None:
    """--hyps-out: a file that can be written in an existing folder."""
    folder = path.parent
    if path.is_dir():
        raise UserError(f"--hyps-out {path} is a folder; give a file name")
    if not folder.is_dir():
        raise FileNotFoundError(f"--hyps-out {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"--hyps-out {path}: not writable")


def _record_key(args) -> dict:
    """What identifies an evaluation in a run log's 'eval' records."""
    key = {"checkpoint": Path(args.checkpoint).name,
           "subset": args.subset or ("test" if args.src is None else None),
           "src": None if args.src is None else str(args.src), "beam": args.beam,
           "lenpen": args.lenpen}
    if args.average_last:  # (a key of its own only then: earlier records stay matched)
        key.update(checkpoint=f"checkpoint_avg_last{args.average_last}.pt", average_last=args.average_last)
    return key


def _recorded(log, run_dir: Path, checkpoint: Path, key: dict) -> dict | None:
    """The eval record of run_dir (its read log) already holding `key`, or None. Refuses a
    checkpoint that is not the run's own, so one run's scores can never land in another run's log."""
    folder = checkpoint.resolve() if checkpoint.is_dir() else checkpoint.resolve().parent
    if folder != (run_dir / "checkpoints").resolve():
        raise UserError(f"--record: {checkpoint} is not a checkpoint of {run_dir} "
                        f"(expected it in {run_dir / 'checkpoints'})")
    for rec in log.extra:
        if rec.get("type") == "eval" and all(rec.get(k) == v for k, v in key.items()):
            return rec
    return None


if __name__ == "__main__":
    sys.exit(main())
