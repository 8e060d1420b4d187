"""Estimated GPU-hours for every row of the paper's tables (docs/gpu_plan.md): training FLOPs
counted from each row's config, divided by an assumed sustained GPU rate. An estimate, not a
measurement: no GPU has run these configs. What is counted and what is assumed:

- classification (Tables 1, 2, Fig. 2): the forward FLOPs of one input, counted by
  torch.utils.flop_counter on the row's model (CIFAR 32x32, ImageNet 224x224); a training step
  costs 3 forwards (forward + backward), plus 1 for Self-KD's snapshot teacher; every epoch also
  evaluates the test set and the 2,000-image fit subset. Data sizes: CIFAR-100 50,000 / 10,000,
  ImageNet 1,281,167 / 50,000.
- detection (Tables 3, 5): the forward FLOPs of the row config's C4 Faster R-CNN (ResNet-152) on
  one 600x800 image (VOC's 500x375 after the model's resize), counted the same way, x3 for
  training, 16,551 VOC07+12 trainval images a epoch (twice with data.flip=copy), one VOC07 test
  pass (4,952 images) at the end.
- translation (Table 4): 6 x parameters x tokens (forward + backward; +2 x for the Self-KD
  teacher's forward), parameters from the config (embeddings excluded, the output projection
  included), tokens a epoch: Multi30k measured (the converged CPU runs' updates a epoch x the
  2,048-token batch: an upper bound), IWSLT15 assumed (see --iwslt-tokens).
- the CPU column converts the same FLOPs with the rate measured by `make bench` on the project's
  2-core CPU (BENCHMARKS.md: PreAct ResNet-18, batch 64, 5,357.55 ms a step): a check of scale.
- the GPU rate (--gpu-tflops, default 25 TFLOP/s sustained) is an assumption for one A100-class
  card training with the fast path (bf16, channels_last); replace it with a measured one (the
  GPU bench: `make bench` on the card) by passing --bench-ms/--bench-batch of that run.

    python tools/gpu_plan.py [--gpu-tflops 25 | --bench-ms MS --bench-batch B] [--out docs/gpu_plan.md]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from core.cli import UserError, entry_point  # noqa: E402

SEEDS = 3
DATA = {"cifar100": (50_000, 10_000, 32, 100), "imagenet": (1_281_167, 50_000, 224, 1000)}
# The CPU measurement BENCHMARKS.md records (`make bench`, official loop, Self-KD).
CPU_BENCH = {"model": "preact_resnet18", "batch": 64, "ms": 5357.55}
VOC_TRAIN, VOC_TEST, VOC_HW = 16_551, 4_952, (600, 800)
MULTI30K_TOKENS = 247 * 2048  # updates a epoch (reports/runs/table4_converged) x tokens a batch
BEGIN, END = "<!-- gpu-plan table (begin): tools/gpu_plan.py -->", "<!-- gpu-plan table (end) -->"


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


def classification_rows(prefix: str):
    from core.methods import has_alpha_schedule
    from classification.export import model_spec
    from classification.launch import table_configs
    from classification.models import build_model
    from classification.train import TrainConfig
    from core.config import load_config, to_dict
    cache = {}
    for f in table_configs(prefix):
        cfg = load_config(TrainConfig, f)
        n_train, n_test, size, classes = DATA[cfg.data.name]
        spec = model_spec(to_dict(cfg), classes)
        key = (spec["model"], tuple(sorted(spec["model_kwargs"].items())), classes, size)
        if key not in cache:
            model = build_model(spec["model"], classes, **spec["model_kwargs"])
            cache[key] = forward_flops(model, torch.zeros(1, 3, size, size))
            del model
        fwd = cache[key]
        snapshot = has_alpha_schedule(cfg.method.name) and cfg.method.selfkd.teacher == "snapshot"
        fit = cfg.data.fit_subset if cfg.data.fit_subset >= 0 else n_train
        per_epoch = n_train * fwd * (3 + snapshot) + (n_test + fit) * fwd
        row = cfg.row or cfg.model
        # the config's own name after the row (Fig. 2's rows differ in the schedule, not the method)
        label = f.stem[len(f"{prefix}_{row}_"):] if f.stem.startswith(f"{prefix}_{row}_") else cfg.method.name
        yield (prefix, row, label, cfg.model, fwd, cfg.epochs, cfg.epochs * per_epoch)


def detection_rows():
    from core.config import load_config
    from detection.config import TrainConfig
    from detection.engine import build_model
    from core.methods import method_names
    fwd = None
    for method in method_names("detection"):
        # the row's own model settings (RoIAlign size, resize), the backbone untrained: same FLOPs
        cfg = load_config(TrainConfig, REPO / "detection" / "configs" / f"resnet152_{method}.yaml",
                          ["model.backbone_checkpoint=''", "model.backbone=timm/resnet152"])
        if fwd is None:
            model, _ = build_model(cfg, 20)
            fwd = forward_flops(model, [torch.zeros(3, *VOC_HW)])
        per_epoch = VOC_TRAIN * (2 if cfg.data.flip == "copy" else 1)  # copy: each image twice
        yield ("table3", "resnet152 (VOC07+12)", method, "Faster R-CNN C4, ResNet-152", fwd, cfg.epochs,
               cfg.epochs * per_epoch * 3 * fwd + VOC_TEST * fwd)


def _transformer_params(layers: int, d: int, ff: int, vocab: int) -> int:
    enc = layers * (4 * d * d + 2 * d * ff)   # self-attention (q, k, v, out) + feed-forward
    dec = layers * (8 * d * d + 2 * d * ff)   # + encoder-decoder attention
    return enc + dec + d * vocab              # output projection (tied to the target embedding)


def translation_rows(iwslt_tokens: int, vocab: int):
    import yaml

    from core.methods import method_names
    from translation.methods import rule_of
    for name, tokens in (("multi30k_de_en", MULTI30K_TOKENS), ("iwslt15_en_de", iwslt_tokens),
                         ("iwslt15_de_en", iwslt_tokens)):
        for method in method_names("translation"):
            path = REPO / "translation" / "configs" / f"{name}_{method}.yaml"
            cfg = yaml.safe_load(path.read_text())
            m, epochs = cfg["model"], cfg["epochs"]
            n = _transformer_params(m["layers"], m["embed_dim"], m["ffn_dim"], vocab)
            # the snapshot teacher's forward, from epoch 2 on (no teacher in epoch 1)
            teacher = 2 * (epochs - 1) if rule_of(method).snapshot_teacher else 0
            yield ("table4", name, method, f"Transformer {m['layers']}L d{m['embed_dim']}", 2.0 * n,
                   epochs, (6 * epochs + teacher) * n * tokens)


def _fmt_h(h: float) -> str:
    return f"{h:,.0f}" if h >= 100 else f"{h:,.1f}" if h >= 1 else f"{h:.2f}"


def render(rows, gpu_rate: float, cpu_rate: float, rate_note: str) -> str:
    head = ("| table | row | method | model | fwd GFLOPs / image (token) | epochs | GPU-h a run | GPU-h, "
            f"{SEEDS} seeds | CPU-years a run (2-core, measured rate) |")
    out = [head, "|" + "---|" * 9]
    totals = {}
    for table, row, method, model, fwd, epochs, flops in rows:
        h = flops / gpu_rate / 3600
        totals[table] = totals.get(table, 0.0) + h * SEEDS
        out.append(f"| {table} | {row} | {method} | {model} | {fwd / 1e9:.3g} | {epochs} | {_fmt_h(h)} | "
                   f"{_fmt_h(h * SEEDS)} | {flops / cpu_rate / 3600 / 24 / 365:.2g} |")
    out += ["", "| table | GPU-hours, every row x " + f"{SEEDS} seeds |", "|---|---|"]
    out += [f"| {t} | {_fmt_h(v)} |" for t, v in totals.items()]
    out += ["", rate_note]
    return "\n".join(out) + "\n"


@entry_point()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gpu-tflops", type=float, default=25.0, help="assumed sustained TFLOP/s of one GPU")
    p.add_argument("--bench-ms", type=float, help="a GPU bench's ms a step (PreAct ResNet-18, CIFAR) instead")
    p.add_argument("--bench-batch", type=int, default=128)
    p.add_argument("--iwslt-tokens", type=int, default=4_000_000,
                   help="IWSLT15 tokens a epoch a side (assumed: ~200k sentence pairs x ~20 BPE tokens)")
    p.add_argument("--vocab", type=int, default=10_000, help="joint BPE vocabulary (10,000 merges)")
    p.add_argument("--tables", nargs="*", default=["table1", "table2", "fig2", "table3", "table4"])
    p.add_argument("--out", help="replace the table between the markers of this Markdown file")
    args = p.parse_args(argv)
    if args.out and not Path(args.out).is_file():
        raise UserError(f"--out {args.out}: file not found")
    torch.set_num_threads(1)
    from classification.models import build_model
    bench_fwd = forward_flops(build_model(CPU_BENCH["model"], 10), torch.zeros(1, 3, 32, 32))
    cpu_rate = 3 * bench_fwd * CPU_BENCH["batch"] / (CPU_BENCH["ms"] / 1000)
    if args.bench_ms:
        gpu_rate = 3 * bench_fwd * args.bench_batch / (args.bench_ms / 1000)
        note = (f"GPU rate: {gpu_rate / 1e12:.1f} TFLOP/s, measured by a GPU bench ({args.bench_ms} ms a "
                f"step at batch {args.bench_batch}).")
    else:
        gpu_rate = args.gpu_tflops * 1e12
        note = (f"GPU rate: {args.gpu_tflops:g} TFLOP/s sustained, assumed (no GPU measurement yet). CPU "
                f"rate: {cpu_rate / 1e9:.1f} GFLOP/s, from `make bench` on the 2-core CPU "
                f"({CPU_BENCH['model']}, batch {CPU_BENCH['batch']}, {CPU_BENCH['ms']} ms a step).")
    given = list(sys.argv[1:] if argv is None else argv)
    shown = [a for i, a in enumerate(given) if not a.startswith("--out") and (i == 0 or given[i - 1] != "--out")]
    note += " Generated by `python tools/gpu_plan.py" + "".join(f" {a}" for a in shown) + "`."
    rows = []
    for t in args.tables:
        if t in ("table1", "table2", "fig2"):
            rows += classification_rows(t)
        elif t == "table3":
            rows += detection_rows()
        elif t == "table4":
            rows += translation_rows(args.iwslt_tokens, args.vocab)
    table = render(rows, gpu_rate, cpu_rate, note)
    if args.out:
        path = Path(args.out)
        text = path.read_text(encoding="utf-8")
        new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n{table}{END}", text, flags=re.S)
        if new == text and BEGIN not in text:
            raise UserError(f"{path} has no {BEGIN!r} marker")
        path.write_text(new, encoding="utf-8")
    else:
        print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
