"""Share a trained classifier as a model hub expects it: a finished run folder becomes a folder with
`model.safetensors` (the weights), `config.json` (how to rebuild the network from the model zoo)
and `README.md` (a model card: the run's final metrics, method, command and commit), the files
huggingface_hub's `ModelHubMixin` writes and `huggingface-cli upload` takes as they are.
Nothing here touches the network.

    python -m classification.export RUN_DIR --out DIR
    model = classification.export.load_exported(DIR)     # the zoo's model, the run's weights
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import torch
import yaml

from core.checkpoint import load_checkpoint
from core.cli import entry_point
from core.config import ConfigError
from core.methods import has_alpha_schedule
from core.metrics import METRIC_NAMES
from core.runlog import read_run_log

from .models import build_model, run_model_kwargs

WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
FORMAT = "selfkd-classifier/1"  # config.json's "format": what load_exported reads


def model_spec(config: dict, num_classes: int) -> dict:
    """What config.json holds to rebuild the network: the zoo name and every build_model keyword
    the training run passed (its model_kwargs, the data's input channels, ShakeDrop for the
    methods that use it: eval-mode ShakeDrop scales its branch, so it changes the outputs)."""
    kwargs = run_model_kwargs(config.get("model_kwargs"), config["data"]["name"], config["method"]["name"])
    return {"model": config["model"], "num_classes": num_classes, "model_kwargs": kwargs}


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def model_card(meta: dict, final: dict, spec: dict, epoch: int) -> str:
    """README.md: YAML metadata (tags, a model-index with the final metrics), then the card."""
    metrics = {k: v for k, v in final["metrics"].items() if isinstance(v, (int, float))}
    run_id, dataset, method = meta["run_id"], meta["dataset"], meta["method"]
    header = {
        "library_name": "pytorch",
        "tags": ["image-classification", "self-knowledge-distillation", "ps-kd", f"method-{method}",
                 "model_hub_mixin", "pytorch_model_hub_mixin"],
        "model-index": [{"name": run_id, "results": [{
            "task": {"type": "image-classification", "name": "Image Classification"},
            "dataset": {"name": dataset, "type": dataset, "split": meta.get("eval_split", "test")},
            "metrics": [{"type": k, "name": METRIC_NAMES.get(k, k), "value": v} for k, v in metrics.items()],
        }]}],
    }
    rows = "\n".join(f"| {METRIC_NAMES.get(k, k)} | `{k}` | {_fmt(v)} |" for k, v in metrics.items())
    cfg = meta.get("config") or {}
    alpha = (f", alpha_T {meta.get('alpha_T')} ({meta.get('alpha_kind')})"
             if has_alpha_schedule(method) else "")  # alpha_T only means something where it is read
    return "\n".join([
        "---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(), "---", "",
        f"# {run_id}", "",
        f"`{spec['model']}` ({spec['num_classes']} classes) trained on `{dataset}` with method "
        f"`{method}`{alpha}, {meta.get('epochs')} epochs, seed {meta.get('seed')}, by this "
        "repository's `classification.train` (Self-Knowledge Distillation, PS-KD).", "",
        f"## Metrics ({meta.get('eval_split', 'test')} split, the final epoch, {epoch}: the exported weights)",
        "", "From the run log's final record.", "",
        "| metric | key | value |", "|---|---|---|", rows, "",
        "## How it was trained", "",
        "```", str(meta.get("command", "")), "```", "",
        f"git commit `{meta.get('git_commit')}`" + (" (with uncommitted changes)" if meta.get("git_dirty") else "")
        + f", torch {meta.get('torch')}, device `{meta.get('device')}`, {meta.get('world_size', 1)} "
        f"process(es). Data: `{cfg.get('data', {}).get('name', dataset)}` preprocessed as "
        "`classification/data.py` does for it (the same normalisation at inference).", "",
        "## Use", "",
        "```python",
        "from classification.export import load_exported",
        "model = load_exported(\"path/to/this/folder\")   # eval mode, the zoo's network",
        "```", "",
        f"Files: `{WEIGHTS}` (weights, safetensors), `{CONFIG}` (`build_model` name and keywords), "
        "this card.", ""])


def export_run(run_dir, out) -> Path:
    """Write run_dir's final weights, config and card to the folder `out` (new or empty); return
    it. ConfigError (one line) for a folder that is not a finished classification run."""
    from safetensors.torch import save_model
    run_dir, out = Path(run_dir), Path(out)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} not found")
    log_path, ckpt_path = run_dir / "log.jsonl", run_dir / "checkpoint.pt"
    if not log_path.is_file():
        raise ConfigError(f"{run_dir} has no log.jsonl: not a run folder")
    log = read_run_log(log_path)
    if log.meta is None:
        raise ConfigError(f"{log_path} has no meta header: not a run log")
    if log.meta.get("task") != "classification":
        raise ConfigError(f"{run_dir} is a {log.meta.get('task')} run; only classification runs export")
    if not log.complete:
        raise ConfigError(f"run {run_dir} is not finished (its log has no final record); finish it "
                          f"first: {log.meta.get('command', 'python -m classification.train ...')} resume=true")
    if not ckpt_path.is_file():
        raise ConfigError(f"{run_dir} has no checkpoint.pt (the weights); nothing to export")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder; choose a new one")
    state = load_checkpoint(ckpt_path)
    spec = model_spec(state.get("config") or log.meta["config"], state["num_classes"])
    model = build_model(spec["model"], spec["num_classes"], **spec["model_kwargs"])
    model.load_state_dict(state["model"])
    # written next to `out` and renamed into place: a failure leaves no half-written folder
    tmp = out.parent / f".{out.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        # save_model drops tensors that share memory (tied weights) and load_model restores them
        save_model(model, str(tmp / WEIGHTS), metadata={"format": "pt"})
        config = {"format": FORMAT, **spec, "run_id": log.meta["run_id"], "method": log.meta["method"],
                  "dataset": log.meta["dataset"], "epoch": state["epoch"], "git_commit": log.meta.get("git_commit")}
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        (tmp / CARD).write_text(model_card(log.meta, log.final, spec, state["epoch"]), encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def load_exported(folder, device="cpu") -> torch.nn.Module:
    """The model of an exported folder: build_model from config.json, weights from
    model.safetensors (strict: every tensor must fit), in eval mode."""
    from safetensors.torch import load_model
    folder = Path(folder)
    config = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    if config.get("format") != FORMAT:
        raise ValueError(f"{folder / CONFIG}: format {config.get('format')!r}, expected {FORMAT!r}")
    model = build_model(config["model"], config["num_classes"], **config["model_kwargs"])
    load_model(model, str(folder / WEIGHTS), strict=True, device=str(device))
    return model.to(device).eval()


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m classification.export", description="Export a finished classification run folder as a "
                                "model-hub folder (model.safetensors, config.json, README.md model card).")
    p.add_argument("run_dir", help="a run folder, e.g. runs/table1/resnet50_selfkd_s0")
    p.add_argument("--out", required=True, help="the folder to write (new or empty)")
    args = p.parse_args(argv)
    out = export_run(args.run_dir, args.out)
    print(f"exported {args.run_dir} to {out}/ ({WEIGHTS}, {CONFIG}, {CARD}); load it with "
          f"classification.export.load_exported({str(out)!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
