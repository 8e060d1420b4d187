"""Choose Self-KD's alpha_T for translation on the validation set (Sec. 3.4: "determined through
validation"), from finished candidate runs that differ only in alpha_T.

    python -m translation.select_alpha RUN_DIR [RUN_DIR ...] [--out selection.json]

Each RUN_DIR is a complete ``translation.train`` Self-KD run. Its best checkpoint (the one its
test score came from) translates the prepared *validation* split with the run's own beam and
length penalty, and sacreBLEU (13a, detokenised: the number Table 4 reports) scores it. The
highest validation BLEU wins; ties go to the smaller alpha_T. Test scores in the logs are never
read. Each run's validation scores are cached in ``RUN_DIR/valid_bleu.json`` (keyed by the
checkpoint's size and mtime), so a rerun only reads them. Writes and prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.cli import UserError, entry_point
from core.run import RUNTIME_KEYS, config_changes, flatten_config
from core.runlog import now_iso, read_run_log
from translation.methods import RENAMED_KEYS, rule_of
from translation.train import RUNTIME_KEYS as TRANSLATION_RUNTIME_KEYS

# keys that may differ between candidates: the candidate itself, its name, and how it was run
# (out_dir, device, data.num_workers, stop_after_epochs, log_interval, ...)
VARYING = ("method.selfkd.alpha_T", "run_id") + RUNTIME_KEYS + TRANSLATION_RUNTIME_KEYS


def _value(cfg: dict, key: str):
    """A run's config value under the key's current name, also from a config written with an
    earlier spelling (translation.methods.RENAMED_KEYS)."""
    flat = {RENAMED_KEYS.get(k, k): v for k, v in flatten_config(cfg).items()}
    return flat[key]


def _candidate(run_dir: Path) -> tuple[dict, Path]:
    log = read_run_log(run_dir / "log.jsonl", strict=True)
    if log.meta is None or log.meta.get("task") != "translation":
        raise UserError(f"{run_dir}: not a translation run")
    if not rule_of(str(log.meta.get("method"))).alpha_T:
        raise UserError(f"{run_dir}: a {log.meta.get('method')} run, which has no alpha_T to choose")
    if log.final is None:
        raise UserError(f"{run_dir}: the run is not complete (no final record); finish it first")
    cfg = log.meta["config"]
    ckpt = run_dir / "checkpoints" / cfg["eval"]["checkpoint"]
    if not ckpt.is_file():
        raise UserError(f"{ckpt} not found")
    return cfg, ckpt


def valid_scores(run_dir: Path, cfg: dict, ckpt: Path) -> dict:
    """Validation BLEU of the run's evaluated checkpoint, cached beside the log."""
    stamp = {"checkpoint": ckpt.name, "size": ckpt.stat().st_size, "mtime_ns": ckpt.stat().st_mtime_ns,
             "beam": cfg["eval"]["beam"], "lenpen": cfg["eval"]["lenpen"]}
    cache = run_dir / "valid_bleu.json"
    if cache.is_file():
        try:
            cached = json.loads(cache.read_text())
            if cached.get("stamp") == stamp:
                return cached["scores"]
        except (json.JSONDecodeError, AttributeError):
            pass  # recomputed below
    from translation.evaluate import bleu_scores, translate
    prep = Path(cfg["data"]["prep_dir"])
    hyps = translate(ckpt, prep / "bin", "valid", cfg["eval"]["beam"], cfg["eval"]["lenpen"],
                     device="cpu" if cfg["device"] == "cpu" else "auto")
    scores = bleu_scores(hyps, prep, "valid", cfg["data"]["target_lang"])
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"stamp": stamp, "scores": scores}))
    tmp.replace(cache)
    return scores


def select(run_dirs: list[Path]) -> dict:
    if not run_dirs:
        raise UserError("give at least one candidate run folder")
    cands = [(d, *_candidate(d)) for d in run_dirs]
    ref = cands[0][1]
    for d, cfg, _ in cands[1:]:
        diff = [c for c in config_changes(ref, cfg, ignore=VARYING, renames=RENAMED_KEYS)]
        if diff:
            raise UserError(f"{d} differs from {cands[0][0]} in more than alpha_T: {'; '.join(diff)}")
    alphas = [_value(cfg, "method.selfkd.alpha_T") for _, cfg, _ in cands]
    if len(set(alphas)) != len(alphas):
        raise UserError(f"two candidates share an alpha_T: {alphas}")
    rows = []
    for d, cfg, ckpt in cands:
        s = valid_scores(d, cfg, ckpt)
        rows.append({"alpha_T": _value(cfg, "method.selfkd.alpha_T"), "run": d.name, "valid_bleu": s["bleu"],
                     "valid_bleu_tok": s["bleu_tok"], "valid_bp_tok": s.get("bp_tok")})
    best = max(rows, key=lambda r: (r["valid_bleu"], -r["alpha_T"]))  # ties: the smaller alpha_T
    return {"metric": "valid sacreBLEU (13a, detokenised), best checkpoint, beam as the run",
            "epochs": _value(ref, "epochs"), "seed": ref["seed"], "candidates": rows,
            "alpha_T": best["alpha_T"], "chosen_run": best["run"], "written": now_iso()}


@entry_point()
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m translation.select_alpha",
                                 description="Choose Self-KD's alpha_T on the validation set from "
                                             "finished candidate runs.")
    ap.add_argument("runs", nargs="+", type=Path, help="complete Self-KD run folders, one per alpha_T")
    ap.add_argument("--out", type=Path, default=None, help="also write the choice to this JSON file")
    args = ap.parse_args(argv)

    text = json.dumps(select(args.runs), indent=1)
    if args.out is not None:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
