"""Figures 3 and 8 of the paper: qualitative examples. For each of a few images of an
ImageFolder-style dataset (one folder per class), the image, its label and the top-k predicted
probabilities of two or more classification models (the paper: a baseline and a Self-KD model on
ImageNet), side by side.

    python -m reports qualitative --checkpoints runs/table2/resnet152_baseline_s0 \\
        runs/table2/resnet152_selfkd_s0 --data /data/imagenet/val --num 6 --out reports/out/fig3

Checkpoints are classification/'s (``checkpoint.pt``, or the run folder holding it), read by the
loader detection uses (``detection.backbone.read_classification_checkpoint``); each model sees
the images through its own evaluation transform (ImageNet: resize 256, centre crop 224; CIFAR:
as they are), normalised with its training data's statistics. Writes ``<name>.png`` (rows:
images; columns: the image, then one bar chart of top-k probabilities per model, the label's
bar green), ``<name>.md`` and ``<name>.csv`` (every probability shown) under ``--out`` and
nothing elsewhere. A bad input is one line ``error: ...`` (exit 2), before anything is written.
Inference only: nothing is trained.
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from core.cli import UserError, entry_point


class QualitativeError(UserError):
    """A bad input (one line)."""


@dataclass
class Model:
    name: str
    path: Path
    net: torch.nn.Module
    transform: object
    dataset: str | None


@dataclass
class Example:
    path: Path  # relative to the dataset root
    label: int
    image: object  # the PIL image as shown (the first model's view: ImageNet crops, CIFAR as is)
    probs: list  # per model: (K,) float32 softmax probabilities


def eval_transform(dataset: str | None, config: dict):
    """The evaluation transform classification/ applies for a model trained on ``dataset``."""
    from classification.data import NUM_CLASSES, cifar_transforms, imagenet_transforms
    if dataset == "imagenet":
        return imagenet_transforms(False)
    if dataset in ("cifar10", "cifar10_npz", "cifar100"):
        kw = {}
        norm = (config.get("data") or {}).get("normalization")
        if norm is not None:  # recorded by runs that chose it
            kw["normalization"] = norm
        return cifar_transforms(NUM_CLASSES[dataset], train=False, **kw)
    raise QualitativeError(f"no evaluation transform known for a model trained on {dataset!r}; "
                           f"expected an ImageNet or CIFAR checkpoint")


def display_transform(dataset: str | None):
    """What the model sees, before tensor conversion: ImageNet's crop, else the image as is."""
    if dataset == "imagenet":
        import torchvision.transforms as T
        return T.Compose([T.Resize(256), T.CenterCrop(224)])
    return lambda im: im


def checkpoint_file(p: str) -> Path:
    path = Path(p)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise QualitativeError(f"checkpoint not found: {path}")
    return path


def load_model(path: Path, num_classes: int):
    """(model in eval mode, transform, dataset name, method name) from a classification checkpoint."""
    from classification.models import build_model, run_model_kwargs
    from core.checkpoint import CheckpointError
    from detection.backbone import BackboneCheckpointError, read_classification_checkpoint
    try:
        ckpt = read_classification_checkpoint(path)
    except (BackboneCheckpointError, CheckpointError) as e:
        raise QualitativeError(str(e).strip().splitlines()[0]) from None
    if ckpt.model is None:
        raise QualitativeError(f"{path} does not record its model (not a classification/ checkpoint)")
    if ckpt.num_classes is not None and ckpt.num_classes != num_classes:
        raise QualitativeError(f"{path} predicts {ckpt.num_classes} classes but the image folder has "
                               f"{num_classes} class folders")
    method = ckpt.config.get("method")
    method = method.get("name") if isinstance(method, dict) else method
    try:  # built as classification/train.py builds it (input channels, ShakeDrop)
        kwargs = run_model_kwargs(ckpt.model_kwargs, ckpt.dataset, method or "baseline")
    except ValueError:
        raise QualitativeError(f"{path}: unknown training method {method!r}") from None
    try:
        net = build_model(ckpt.model, num_classes, **kwargs)
        net.load_state_dict(ckpt.state_dict)
    except (ValueError, RuntimeError, TypeError) as e:
        raise QualitativeError(f"{path}: the weights do not fit a {ckpt.model!r} model "
                               f"({str(e).strip().splitlines()[0][:160]})") from None
    return net.eval(), eval_transform(ckpt.dataset, ckpt.config), ckpt.dataset, method or path.parent.name


def pick_images(dataset, images: list[str] | None, num: int, seed: int) -> list[int]:
    """Indices into ``dataset.samples``: the named files (relative to the root) in the order given,
    else ``num`` drawn at random with ``seed``."""
    root = Path(dataset.root)
    if images:
        index = {Path(p).resolve(): i for i, (p, _) in enumerate(dataset.samples)}
        out = []
        for rel in images:
            p = Path(rel)
            p = (p if p.is_absolute() else root / p).resolve()
            if p not in index:
                raise QualitativeError(f"image {rel} is not an image of {root} (give a path relative to it, "
                                       f"e.g. {Path(dataset.samples[0][0]).relative_to(root)})")
            out.append(index[p])
        return out
    if num < 1:
        raise QualitativeError(f"--num must be >= 1, got {num}")
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(len(dataset.samples), generator=g)[:num].tolist()


@torch.no_grad()
def predict(models: list[Model], dataset, indices: list[int]) -> list[Example]:
    from PIL import Image
    root = Path(dataset.root)
    out = []
    for i in indices:
        path, label = dataset.samples[i]
        with Image.open(path) as im:
            image = im.convert("RGB")
        probs = [torch.softmax(m.net(m.transform(image)[None]).float(), 1)[0] for m in models]
        shown = display_transform(models[0].dataset)(image)
        out.append(Example(Path(path).relative_to(root), label, shown, probs))
    return out


def top_k(probs: torch.Tensor, k: int) -> list[tuple[int, float]]:
    """[(class, probability)] of the k most probable classes, most probable first."""
    p, c = probs.topk(min(k, probs.numel()))
    return list(zip(c.tolist(), p.tolist()))


def write_csv(path: Path, examples, models, classes, k: int) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label", "model", "checkpoint", "rank", "class", "probability", "is_label"])
        for ex in examples:
            for m, probs in zip(models, ex.probs):
                ranked = top_k(probs, k)
                if ex.label not in [c for c, _ in ranked]:  # the label's probability, always given
                    ranked.append((ex.label, float(probs[ex.label])))
                for c, p in ranked:
                    rank = int((probs > probs[c]).sum()) + 1
                    w.writerow([ex.path.as_posix(), classes[ex.label], m.name, str(m.path),
                                rank, classes[c], f"{p:.6f}", int(c == ex.label)])


def write_markdown(path: Path, examples, models, classes, k: int) -> None:
    lines = [f"# Qualitative examples: top-{k} predicted probabilities", "",
             "Models: " + ", ".join(f"{m.name} (`{m.path}`)" for m in models), ""]
    for ex in examples:
        lines += [f"## `{ex.path.as_posix()}`: label {classes[ex.label]}", "",
                  "| rank | " + " | ".join(f"{m.name} | p" for m in models) + " |",
                  "|---|" + "---|---|" * len(models)]
        ranked = [top_k(p, k) for p in ex.probs]
        for r in range(len(ranked[0])):
            cells = []
            for rk in ranked:
                c, p = rk[r]
                cells += [f"**{classes[c]}**" if c == ex.label else classes[c], f"{100 * p:.2f}%"]
            lines.append(f"| {r + 1} | " + " | ".join(cells) + " |")
        lines.append("| p(label) | " + " | ".join(f"{classes[ex.label]} | {100 * float(p[ex.label]):.2f}%"
                                                  for p in ex.probs) + " |")
        lines.append("")
    path.write_text("\n".join(lines))


def draw(stem: Path, examples, models, classes, k: int) -> list[Path]:
    from .figures import plt, save
    n, m = len(examples), len(models)
    fig, axes = plt.subplots(n, m + 1, figsize=(3.2 * (m + 1), 2.4 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1] + [1.4] * m})
    for row, ex in zip(axes, examples):
        row[0].imshow(ex.image, interpolation="nearest")
        row[0].set_title(f"label: {classes[ex.label]}", fontsize=9)
        row[0].axis("off")
        for ax, model, probs in zip(row[1:], models, ex.probs):
            ranked = top_k(probs, k)
            names = [classes[c] for c, _ in ranked][::-1]
            values = [p for _, p in ranked][::-1]
            colours = ["tab:green" if c == ex.label else "0.6" for c, _ in ranked][::-1]
            ax.barh(range(len(values)), values, color=colours)
            ax.set_yticks(range(len(values)), names, fontsize=8)
            ax.set_xlim(0, 1)
            ax.tick_params(axis="x", labelsize=7)
            for y, v in enumerate(values):
                ax.text(min(v + 0.02, 0.8), y, f"{100 * v:.1f}%", va="center", fontsize=7)
            ax.set_title(f"{model.name}: p(label) {100 * float(probs[ex.label]):.1f}%", fontsize=9)
    fig.tight_layout()
    paths = save(fig, stem, formats=("png",))
    plt.close(fig)
    return paths


def render_qualitative(checkpoints: list[str], data: str, out: str, images: list[str] | None = None,
                       num: int = 6, seed: int = 0, k: int = 5, names: list[str] | None = None,
                       class_names: str | None = None, name: str = "qualitative") -> list[Path]:
    """Draw the figure and write its tables; returns the files written (all under ``out``)."""
    import torchvision
    if len(checkpoints) < 2:
        raise QualitativeError(f"give two or more checkpoints to compare, got {len(checkpoints)}")
    if names and len(names) != len(checkpoints):
        raise QualitativeError(f"{len(names)} --names for {len(checkpoints)} checkpoints")
    if k < 1:
        raise QualitativeError(f"--topk must be >= 1, got {k}")
    if not name or Path(name).name != name or name in (".", ".."):
        raise QualitativeError(f"--name must be a plain file name stem, got {name!r}")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise QualitativeError(f"--out {out_dir} exists and is not a folder")
    paths = [checkpoint_file(c) for c in checkpoints]
    if not Path(data).is_dir():
        raise QualitativeError(f"image folder not found: {data}")
    try:
        dataset = torchvision.datasets.ImageFolder(data)
    except (FileNotFoundError, RuntimeError) as e:
        raise QualitativeError(f"{data} is not an ImageFolder (one folder of images per class): "
                               f"{str(e).strip().splitlines()[0]}") from None
    classes = list(dataset.classes)
    if class_names:
        if not Path(class_names).is_file():
            raise QualitativeError(f"class names file not found: {class_names}")
        classes = [ln.strip() for ln in Path(class_names).read_text().splitlines() if ln.strip()]
        if len(classes) != len(dataset.classes):
            raise QualitativeError(f"{class_names} names {len(classes)} classes, {data} has "
                                   f"{len(dataset.classes)} class folders")
    models = []
    for i, p in enumerate(paths):
        net, transform, ds, method = load_model(p, len(dataset.classes))
        models.append(Model(names[i] if names else method, p, net, transform, ds))
    if not names and len({m.name for m in models}) < len(models):  # same method: tell them by run
        for m in models:
            m.name = m.path.parent.name
    examples = predict(models, dataset, pick_images(dataset, images, num, seed))

    # -- everything computed: only now write, under out_dir alone
    out_dir.mkdir(parents=True, exist_ok=True)
    written = draw(out_dir / name, examples, models, classes, k)
    write_markdown(out_dir / f"{name}.md", examples, models, classes, k)
    write_csv(out_dir / f"{name}.csv", examples, models, classes, k)
    return written + [out_dir / f"{name}.md", out_dir / f"{name}.csv"]


@entry_point()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reports qualitative", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoints", nargs="+", required=True,
                    help="two or more classification checkpoints (checkpoint.pt or its run folder)")
    ap.add_argument("--data", required=True, help="an ImageFolder-style folder (one folder of images per class)")
    ap.add_argument("--images", nargs="+", default=None, help="image files, relative to --data (default: --num at random)")
    ap.add_argument("--num", type=int, default=6, help="images drawn at random when --images is not given")
    ap.add_argument("--seed", type=int, default=0, help="seed of that draw")
    ap.add_argument("--topk", type=int, default=5, help="probabilities shown per model (default: %(default)s)")
    ap.add_argument("--names", nargs="+", default=None,
                    help="a column title per checkpoint (default: each run's training method)")
    ap.add_argument("--class-names", default=None,
                    help="a file with one class name a line, in class index order (e.g. ImageNet's "
                         "readable names for its wnid folders)")
    ap.add_argument("--name", default="qualitative", help="file name stem of the outputs")
    ap.add_argument("--out", required=True, help="output folder (nothing is written elsewhere)")
    args = ap.parse_args(argv)
    files = render_qualitative(args.checkpoints, args.data, args.out, args.images, args.num, args.seed,
                               args.topk, args.names, args.class_names, args.name)
    for f in files:
        print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
