"""Evaluation: softmax probabilities over a loader, then the Table-1 metrics (core.metrics)."""
from __future__ import annotations

import torch

from core.metrics import classification_metrics


@torch.no_grad()
def predict(model, loader, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) float32 probabilities on the cpu and (N,) labels, in loader order."""
    model.eval()
    probs, labels = [], []
    for x, y, _ in loader:
        logits = model(x.to(device, non_blocking=True))
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
        labels.append(y)
    return torch.cat(probs), torch.cat(labels)


def evaluate(model, loader, device, n_bins: int = 10) -> tuple[dict, dict]:
    probs, labels = predict(model, loader, device)
    return classification_metrics(probs, labels, n_bins)
