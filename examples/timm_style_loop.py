"""Self-KD in a timm-style training script: a `timm.create_model` network, timm's optimiser and
scheduler factories, and a `train_one_epoch` in timm's shape, where Self-KD is one object that
gives the targets and remembers the predictions (CPU, seconds).

    python examples/timm_style_loop.py [--epochs 6]

The loss is `core.losses.soft_cross_entropy`, the same soft-target loss timm's
SoftTargetCrossEntropy computes, so timm users can keep theirs. Data: scikit-learn's digits,
upsampled to 16x16 RGB for a ResNet; no download, no pretrained weights.
"""
from __future__ import annotations

import argparse

import timm
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch.utils.data import DataLoader, TensorDataset

from core.bank import PredictionBank
from core.cli import UserError, entry_point
from core.losses import soft_cross_entropy
from core.metrics import classification_metrics
from core.schedules import alpha_at


class SelfKD:
    """What a timm-style loop needs: `targets(idx, y)` before the step, `remember(idx, logits)`
    after the forward, `set_epoch(epoch)` at each epoch start (Eqs. 5-6)."""

    def __init__(self, num_samples: int, num_classes: int, epochs: int, alpha_T: float = 0.8):
        self.bank = PredictionBank(num_samples, num_classes)
        self.epochs, self.alpha_T, self.alpha = epochs, alpha_T, 0.0

    def set_epoch(self, epoch: int) -> None:  # 1-based
        self.alpha = alpha_at(epoch, self.epochs, self.alpha_T)

    def targets(self, idx, labels):
        return self.bank.targets(idx, labels, self.alpha)

    def remember(self, idx, logits) -> None:
        self.bank.update(idx, logits.detach().float().softmax(1))


def train_one_epoch(epoch, model, loader, optimizer, selfkd: SelfKD, lr_scheduler=None):
    model.train()
    selfkd.set_epoch(epoch + 1)
    for x, y, idx in loader:
        output = model(x)
        loss = soft_cross_entropy(output, selfkd.targets(idx, y))
        selfkd.remember(idx, output)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if lr_scheduler is not None:
        lr_scheduler.step(epoch + 1)


@entry_point()  # a bad argument: one line 'error: ...', exit status 2
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=6)
    args = p.parse_args(argv)
    if args.epochs < 1:
        raise UserError(f"need --epochs >= 1, got {args.epochs}")
    torch.manual_seed(0)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=16, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    y = torch.tensor(d.target)
    n_train = 1400
    loader = DataLoader(TensorDataset(x[:n_train], y[:n_train], torch.arange(n_train)), batch_size=64, shuffle=True)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=10)
    optimizer = create_optimizer_v2(model, opt="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4)
    scheduler, num_epochs = create_scheduler_v2(optimizer, sched="cosine", num_epochs=args.epochs)
    selfkd = SelfKD(n_train, 10, num_epochs)
    for epoch in range(num_epochs):
        train_one_epoch(epoch, model, loader, optimizer, selfkd, scheduler)
    model.eval()
    with torch.no_grad():
        probs = model(x[n_train:]).softmax(1)
    metrics, _ = classification_metrics(probs, y[n_train:])
    print(f"timm resnet10t, {num_epochs} epochs, Self-KD alpha_T {selfkd.alpha_T}: top-1 error "
          f"{metrics['top1_err']:.2f}%, ECE {metrics['ece']:.2f}% on {len(probs)} held-out digits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
