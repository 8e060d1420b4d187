"""Beam search on a binarised split and BLEU with sacrebleu (Sec. 3.4, Appendix A.2).

    python -m translation.evaluate CHECKPOINT PREP_DIR -s de -t en [--subset test] [--beam 5]

Two numbers, both from sacrebleu's corpus BLEU (4-gram, brevity penalty):
* ``bleu``: detokenised BLEU. BPE removed, Moses-detokenised hypotheses against the untouched
  references ``PREP_DIR/raw/<subset>.<tgt>`` with sacrebleu's own 13a tokenisation; the
  signature is printed and stored.
* ``bleu_tok``: tokenised BLEU, what fairseq-generate and multi-bleu.perl print and what IWSLT
  papers of the period (and, we assume, Table 4 via fairseq) report: BPE-removed Moses tokens
  against the Moses-tokenised references ``PREP_DIR/tok/<subset>.<tgt>``, ``tokenize="none"``.
If the corpus was lowercased at preparation (prep.json), both are computed case-insensitively.
Beam 5 and length penalty 1.0: the paper does not give decoding settings; fairseq's IWSLT
example uses beam 5.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from translation.data import detokenize


def translate(checkpoint: str | Path, bin_dir: str | Path, subset: str = "test", beam: int = 5,
              lenpen: float = 1.0, max_tokens: int = 8000, device: str = "auto",
              fp16: bool = False) -> list[str]:
    """Tokenised, BPE-removed hypotheses for every sentence of `subset`, in file order."""
    import translation  # noqa: F401  (registers the plugin and the checkpoint-loading fix)
    from fairseq import checkpoint_utils, utils
    from fairseq.dataclass.configs import GenerationConfig

    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides={"data": str(bin_dir)})
    use_cuda = torch.cuda.is_available() and device != "cpu"
    for m in models:
        m.eval()
        if fp16:
            m.half()
        if use_cuda:
            m.cuda()
    task.load_dataset(subset)
    dataset = task.dataset(subset)
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


def bleu_scores(hyps_tok: list[str], prep_dir: str | Path, subset: str, tgt: str) -> dict:
    """{"bleu", "bleu_tok", "sacrebleu_signature", "sacrebleu_signature_tok", "bp_tok",
    "len_ratio_tok"} (see module doc). The brevity penalty and hypothesis/reference length ratio
    of the tokenised score show whether a BLEU difference comes from n-gram precision or from
    output length (softer training targets can shorten beam-search output)."""
    from sacrebleu.metrics import BLEU

    prep_dir = Path(prep_dir)
    info = json.loads((prep_dir / "prep.json").read_text())
    lowercase = bool(info["config"].get("lowercase", False))
    refs_raw = (prep_dir / "raw" / f"{subset}.{tgt}").read_text("utf-8").splitlines()
    refs_tok = (prep_dir / "tok" / f"{subset}.{tgt}").read_text("utf-8").splitlines()
    if not len(refs_raw) == len(refs_tok) == len(hyps_tok):
        raise ValueError(f"{len(hyps_tok)} hypotheses but {len(refs_raw)} raw / {len(refs_tok)} "
                         f"tokenised references in {prep_dir}")
    detok = BLEU(lowercase=lowercase)
    tok = BLEU(lowercase=lowercase, tokenize="none")
    score_tok = tok.corpus_score(hyps_tok, [refs_tok])
    return {
        "bleu": detok.corpus_score(detokenize(hyps_tok, tgt), [refs_raw]).score,
        "bleu_tok": score_tok.score,
        "sacrebleu_signature": str(detok.get_signature()),
        "sacrebleu_signature_tok": str(tok.get_signature()),
        "bp_tok": score_tok.bp,
        "len_ratio_tok": score_tok.sys_len / max(score_tok.ref_len, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("prep_dir", help="translation.data's out_dir (holds bin/, raw/, tok/)")
    ap.add_argument("-s", "--source-lang", required=True)
    ap.add_argument("-t", "--target-lang", required=True)
    ap.add_argument("--subset", default="test")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--lenpen", type=float, default=1.0)
    ap.add_argument("--hyps-out", help="also write the detokenised hypotheses here")
    args = ap.parse_args(argv)
    if not Path(args.checkpoint).is_file():
        print(f"translation.evaluate: error: checkpoint not found: {args.checkpoint}", file=sys.stderr)
        return 2
    hyps = translate(args.checkpoint, Path(args.prep_dir) / "bin", args.subset, args.beam, args.lenpen)
    scores = bleu_scores(hyps, args.prep_dir, args.subset, args.target_lang)
    if args.hyps_out:
        Path(args.hyps_out).write_text("\n".join(detokenize(hyps, args.target_lang)) + "\n")
    print(json.dumps(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
