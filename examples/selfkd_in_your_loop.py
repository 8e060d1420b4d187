"""Self-KD in a plain PyTorch loop: the README's snippet, runnable (CPU, seconds).

    python examples/selfkd_in_your_loop.py [--epochs 10]

Your own data, model and optimiser; `core` gives the three pieces Self-KD needs: a prediction
bank (p_{t-1} per training sample), the alpha schedule (Eq. 5) and the soft-target loss (Eq. 6).
The only change to your dataset is that it returns each sample's index. Data here: scikit-learn's
bundled digits (real 8x8 images), no download.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset

from core.bank import PredictionBank
from core.cli import UserError, entry_point
from core.losses import soft_cross_entropy
from core.metrics import classification_metrics
from core.schedules import alpha_at


@entry_point()  # a bad argument: one line 'error: ...', exit status 2
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--alpha-T", type=float, default=0.8)
    args = p.parse_args(argv)
    if args.epochs < 1 or not 0.0 <= args.alpha_T <= 1.0:
        raise UserError(f"need --epochs >= 1 and --alpha-T in [0, 1], got {args.epochs}, {args.alpha_T}")
    torch.manual_seed(0)
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target)
    n_train = 1400
    train = TensorDataset(x[:n_train], y[:n_train], torch.arange(n_train))  # (x, y, index)
    loader = DataLoader(train, batch_size=64, shuffle=True)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    bank = PredictionBank(len(train), num_classes=10)                  # one row per sample
    for epoch in range(1, args.epochs + 1):
        alpha = alpha_at(epoch, args.epochs, alpha_T=args.alpha_T)     # Eq. 5
        for xb, yb, idx in loader:
            logits = model(xb)
            targets = bank.targets(idx, yb, alpha)                     # Eq. 6 (one-hot in epoch 1)
            bank.update(idx, logits.detach().softmax(1))               # p_t, the next epoch's teacher
            loss = soft_cross_entropy(logits, targets)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        probs = model(x[n_train:]).softmax(1)
    metrics, _ = classification_metrics(probs, y[n_train:])
    print(f"after {args.epochs} epochs (alpha_T {args.alpha_T}): top-1 error {metrics['top1_err']:.2f}%, "
          f"NLL {metrics['nll']:.3f}, ECE {metrics['ece']:.2f}% on {len(probs)} held-out digits")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
