"""The study's pilots (baseline runs only), side by side, and the setting the pre-registered rule
chooses from them (docs/evidence/study_preregistration.md):

  fits            running training error (train_top1_err of the last epoch line: train mode,
                  augmented images, the training forward passes) <= 5%
  over-confident  on the test set: mean confidence - accuracy >= 2 points and ECE >= 2%
  cost            met by construction: every pilot trains on the same number of training-image
                  passes (about 585,000, ~24 CPU minutes at the per-image cost of the earlier
                  cells on a core of their own); the measured CPU time is reported beside, and
                  one above 30 minutes is flagged, not excluded (on this shared machine CPU time
                  grows with the other processes' load)

Chosen: among the pilots that fit and are over-confident, the one with the most training images
(closer to the paper's full data); ties go to the cheaper one. When none does, the closest is
named -- the lowest running training error among the over-confident ones -- and labelled as not
meeting the criterion.

    python tools/study_pilots.py [reports/runs/study_pilots] [--json choice.json] [--write-config study.yaml]

--write-config writes the study's config from the chosen pilot's (study_config_text): the same
recipe on train_images / 0.9 images with a 10% holdout, i.e. as many training images as the
pilot had; an existing file is kept, not overwritten.

A pilot is a run folder with log.jsonl and, beside it, cpu_time.txt: a line "user system elapsed"
(seconds, as /usr/bin/time -f "%U %S %e" -a writes them; tools/cpu_study.sh PHASE=pilots) per
invocation of the run, so a resumed run's lines add up.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.cli import UserError, entry_point  # noqa: E402
from core.runlog import read_run_log  # noqa: E402

FIT_MAX_ERR = 5.0
OVERCONF_MIN = 2.0
ECE_MIN = 2.0
CPU_FLAG_S = 30 * 60  # above it the cost is flagged in the table


def summary(run_dir: Path) -> dict:
    """The pilot's numbers: the last epoch line's running training error and fit-subset error, the
    final test metrics, its cost. A run without its final record is 'incomplete'."""
    log = read_run_log(run_dir / "log.jsonl", strict=True)
    cfg = log.meta.get("config") or {}
    s = {"run_id": log.meta["run_id"], "row": log.meta.get("row"), "complete": log.complete,
         "train_images": (cfg.get("data") or {}).get("train_subset"), "epochs": log.meta.get("epochs"),
         "epochs_done": log.epochs[-1]["epoch"] if log.epochs else 0}
    if log.epochs:
        last = log.epochs[-1]
        s.update(train_top1_err=last.get("train_top1_err"), fit_top1_err=last.get("fit_top1_err"))
    if log.complete:
        m = log.final["metrics"]
        s.update(top1_err=m["top1_err"], ece=m["ece"], conf=m["conf"], nll=m["nll"],
                 overconfidence=m["conf"] - (100.0 - m["top1_err"]), wall_s=log.final.get("wall_s"))
    cost = run_dir / "cpu_time.txt"
    if cost.is_file():  # a line per invocation (a resumed run adds one): user, system, elapsed
        s["cpu_s"] = sum(float(v) for line in cost.read_text().splitlines() if line.strip()
                         for v in line.split()[:2])
    return s


def verdicts(s: dict) -> dict:
    """The two criteria and the cost flag, each True / False, or None where the number is missing."""
    def check(key, ok):
        return None if s.get(key) is None else ok(s[key])
    over = None if not s.get("complete") else (s["overconfidence"] >= OVERCONF_MIN and s["ece"] >= ECE_MIN)
    return {"fits": check("train_top1_err", lambda v: v <= FIT_MAX_ERR) if s.get("complete") else None,
            "over_confident": over, "cpu_under_30_min": check("cpu_s", lambda v: v <= CPU_FLAG_S)}


def choose(summaries: list[dict]) -> dict | None:
    """{"run_id", "meets": bool, "why"} by the rule above; None when no pilot is complete."""
    done = [s for s in summaries if s.get("complete")]
    if not done:
        return None
    good = [s for s in done if verdicts(s)["fits"] and verdicts(s)["over_confident"]]
    if good:
        best = max(good, key=lambda s: (s["train_images"] or 0, -s.get("cpu_s", 0.0)))
        return {"run_id": best["run_id"], "meets": True,
                "why": "fits and is over-confident; the most training images among those that do"}
    near = [s for s in done if verdicts(s)["over_confident"]] or done
    best = min(near, key=lambda s: (s["train_top1_err"], -(s["train_images"] or 0)))
    return {"run_id": best["run_id"], "meets": False,
            "why": "no pilot both fits and is over-confident; the closest (lowest running training "
                   "error among the over-confident ones), NOT meeting the criterion"}


def study_config_text(pilot: dict, choice: dict, config: str) -> str:
    """The study config for the chosen pilot (config: the pilot's config path, from its command)."""
    n = round(pilot["train_images"] / 0.9)
    label = "" if choice["meets"] else "  NOT MEETING THE FIT CRITERION (the closest pilot)"
    return (f"# The study's setting (docs/evidence/study_preregistration.md), chosen by tools/study_pilots.py\n"
            f"# from the baseline pilots: {pilot['run_id']}.{label}\n"
            f"# The pilot's recipe on {n:,} images with a 10% holdout (seed 0): {n - round(0.1 * n):,} training\n"
            f"# images as in the pilot; the holdout chooses Self-KD's alpha_T and fits temperature scaling.\n"
            f"_base_: {Path(config).name}\n"
            f"table: study\n"
            f"row: study_{pilot['row']}\n"
            f"data:\n  train_subset: {n}\n  holdout_fraction: 0.1\n")


def _config_of(run_dir: Path) -> str | None:
    """The --config path of the run's command (its meta record)."""
    import shlex
    words = shlex.split(read_run_log(run_dir / "log.jsonl").meta.get("command", ""))
    return words[words.index("--config") + 1] if "--config" in words[:-1] else None


def _f(v, fmt="{:.2f}"):
    return "–" if v is None else fmt.format(v)


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("root", nargs="?", default="reports/runs/study_pilots")
    p.add_argument("--json", help="also write the summaries and the choice here")
    p.add_argument("--write-config", help="write the chosen setting's study config here (kept if it exists)")
    args = p.parse_args(argv)
    root = Path(args.root)
    dirs = sorted(d for d in root.glob("*") if (d / "log.jsonl").is_file()) if root.is_dir() else []
    if not dirs:
        raise UserError(f"no pilot run folders (with log.jsonl) under {root}")
    sums = [summary(d) for d in dirs]  # a malformed log: RunLogError, a UserError (one line)
    print("| pilot | train images | epochs | running train err % | fit err % | test top-1 err % | ECE % "
          "| conf - acc | CPU min | wall min | fits | over-conf. | CPU <= 30 min |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|")
    for s in sums:
        v = verdicts(s)
        ep = f"{s['epochs_done']}/{s['epochs']}" if not s["complete"] else str(s["epochs"])
        print(f"| {s['run_id']} | {s['train_images']} | {ep} | {_f(s.get('train_top1_err'))} | "
              f"{_f(s.get('fit_top1_err'))} | {_f(s.get('top1_err'))} | {_f(s.get('ece'))} | "
              f"{_f(s.get('overconfidence'), '{:+.2f}')} | {_f(s.get('cpu_s') and s['cpu_s'] / 60, '{:.1f}')} | "
              f"{_f(s.get('wall_s') and s['wall_s'] / 60, '{:.1f}')} | "
              + " | ".join({True: "yes", False: "no", None: "–"}[v[k]] for k in ("fits", "over_confident", "cpu_under_30_min"))
              + " |")
    choice = choose(sums)
    print("\nchoice: " + ("none (no complete pilot)" if choice is None else f"{choice['run_id']} ({choice['why']})"))
    if args.json:
        Path(args.json).write_text(json.dumps({"pilots": sums, "choice": choice}, indent=1) + "\n")
    if args.write_config and choice is not None:
        out = Path(args.write_config)
        if out.exists():
            print(f"{out} exists: kept, not overwritten")
            return 0
        d = dirs[[s["run_id"] for s in sums].index(choice["run_id"])]
        config = _config_of(d)
        if config is None:
            raise UserError(f"{d}/log.jsonl's command names no --config")
        pilot = next(s for s in sums if s["run_id"] == choice["run_id"])
        out.write_text(study_config_text(pilot, choice, config))
        print(f"study config written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
