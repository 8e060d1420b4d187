"""Evaluation: softmax probabilities over a loader, then the Table-1 metrics (core.metrics)."""
from __future__ import annotations

import torch

from core.metrics import classification_metrics


@torch.no_grad()
def predict(model, batches, device, amp_dtype=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, K) float32 probabilities on the cpu, (N,) labels and (N,) float64 log p(label) (from
    log_softmax of the logits: exact where the float32 probability underflows), in batch order.
    batches: any iterable of (x, y, idx), e.g. a DataLoader."""
    model.eval()
    probs, labels, label_logp = [], [], []
    for x, y, _ in batches:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(x.to(device, non_blocking=True))
        y = y.to(logits.device)
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
        label_logp.append(torch.log_softmax(logits.double(), dim=1).gather(1, y[:, None])[:, 0].cpu())
        labels.append(y.cpu())
    return torch.cat(probs), torch.cat(labels), torch.cat(label_logp)


def evaluate(model, batches, device, n_bins: int = 10, amp_dtype=None, extra: bool = True) -> tuple[dict, dict]:
    """Metrics of `model` on `batches`; extra=False skips the calibration metrics beyond the
    paper's (the fit subset needs only top-1, NLL and confidence)."""
    probs, labels, label_logp = predict(model, batches, device, amp_dtype)
    return classification_metrics(probs, labels, n_bins, label_logp, extra=extra)
