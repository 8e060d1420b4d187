"""The prediction bank: one row of past class probabilities per training sample (Sec. 2.2,
'save the past predictions'; the official code's ``all_predictions``).

Semantics (docs/design.md, "Where p_{t-1} comes from"): a row that has never been written acts as the one-hot label, so epoch-1
targets are one-hot. At each step the target is built from the stored row *before* the row is
overwritten with ``softmax(logits).detach()`` of that same training forward pass. ``p_{t-1}`` is
therefore the train-mode prediction on the previous epoch's augmented view, as in the official code.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from .targets import self_kd_targets

_NP_DTYPES = {torch.float32: np.float32, torch.float16: np.float16}


def row_age_stats(written: torch.Tensor, seen: torch.Tensor, epoch: int) -> dict:
    """How old the rows are that epoch `epoch` + 1 will read, from the epoch of each row's last
    write (written, (N,) int) and whether it was ever written (seen, (N,) bool):
    bank_row_age = mean over written rows of epoch + 1 - written (in epochs; 1 = written in
    epoch `epoch`, the paper's p_{t-1}; None when no row is written), bank_never_written = the
    fraction of rows never written (read as the one-hot label). With Self-KD alone every row is
    rewritten each epoch (age 1, fraction 0 from epoch 1 on); combined with CutMix a CutMix'd
    sample keeps its older row (classification/methods/selfkd.py), so rows age."""
    n_seen = int(seen.sum())
    age = float((epoch + 1 - written[seen]).double().mean()) if n_seen else None
    return {"bank_row_age": age, "bank_never_written": 1.0 - n_seen / seen.numel()}


class PredictionBank:
    """(num_samples, num_classes) probabilities indexed by dataset index.

    device: where rows live ("cpu" or a CUDA device: keeping it on the GPU avoids a host copy per
    step). dtype: float32 (official) or float16 (halves memory: 1.28M x 1000 ImageNet rows are
    5.1 GB in fp32). path: if given, rows live in a memory-mapped file on disk (CPU only), the
    paper's second implementation for banks larger than RAM.
    """

    def __init__(self, num_samples: int, num_classes: int, device="cpu", dtype=torch.float32, path=None):
        if num_samples < 1 or num_classes < 2:
            raise ValueError(f"need num_samples >= 1 and num_classes >= 2, got {num_samples}, {num_classes}")
        if dtype not in _NP_DTYPES:
            raise ValueError(f"bank dtype must be torch.float32 or torch.float16, got {dtype}")
        self.num_samples, self.num_classes = int(num_samples), int(num_classes)
        self.device, self.dtype, self.path = torch.device(device), dtype, path
        if path is not None:
            if self.device.type != "cpu":
                raise ValueError("a memory-mapped bank must live on the cpu")
            mm = np.lib.format.open_memmap(str(path), mode="w+", dtype=_NP_DTYPES[dtype],
                                           shape=(self.num_samples, self.num_classes))
            _preallocate(path)
            self.probs = torch.from_numpy(mm)
        else:
            self.probs = torch.zeros(self.num_samples, self.num_classes, dtype=dtype, device=self.device)
        # seen[i] is False until row i is first written: it then stops standing for the one-hot label.
        self.seen = torch.zeros(self.num_samples, dtype=torch.bool, device=self.device)
        # written[i]: the epoch of row i's last write (row_age); the training loop sets `epoch`
        # at the start of each epoch, the writes of that epoch carry it.
        self.written = torch.zeros(self.num_samples, dtype=torch.int32, device=self.device)
        self.epoch = 0

    def _idx(self, idx: torch.Tensor) -> torch.Tensor:
        idx = torch.as_tensor(idx, device=self.device).long()
        # Range-check only on the cpu: on a GPU the check would synchronise every step (the
        # indexing itself still fails on a bad index, with a device-side assert).
        if idx.device.type == "cpu" and idx.numel() and (idx.min() < 0 or idx.max() >= self.num_samples):
            raise IndexError(f"bank index out of range [0, {self.num_samples}): {idx.min().item()}..{idx.max().item()}")
        return idx

    def teacher(self, idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Stored rows for idx as float32 (B, K) on labels' device; unseen rows are one-hot labels."""
        i = self._idx(idx)
        rows = self.probs[i].to(device=labels.device, dtype=torch.float32)
        unseen = ~self.seen[i].to(labels.device)
        # unseen rows: zeros, then 1 at the label (the one-hot label, without a (B, K) one-hot)
        rows.masked_fill_(unseen[:, None], 0.0)
        rows.scatter_add_(1, labels.long()[:, None], unseen.float()[:, None])
        return rows

    def targets(self, idx: torch.Tensor, labels: torch.Tensor, alpha: float) -> torch.Tensor:
        """Eq. 6 soft targets (B, K) from the stored rows of idx."""
        return self_kd_targets(labels, self.teacher(idx, labels), alpha)

    @torch.no_grad()
    def update(self, idx: torch.Tensor, probs: torch.Tensor) -> None:
        """Overwrite rows idx with probs (B, K), e.g. ``softmax(logits).detach()``."""
        i = self._idx(idx)
        if probs.shape != (i.numel(), self.num_classes):
            raise ValueError(f"expected probs of shape {(i.numel(), self.num_classes)}, got {tuple(probs.shape)}")
        self.probs[i] = probs.detach().to(device=self.device, dtype=self.dtype)
        self.seen[i] = True
        self.written[i] = self.epoch

    def row_age(self) -> dict:
        """{bank_row_age, bank_never_written} of the rows as they stand (row_age_stats)."""
        return row_age_stats(self.written, self.seen, self.epoch)

    def state_dict(self) -> dict:
        """The bank for a checkpoint. On the cpu (and for the memory-mapped bank) `probs` is the
        live tensor, not a copy: an ImageNet-size bank (1.28M x 1000, 5.1 GB in fp32) is not
        doubled in memory at every checkpoint. Save it before the next update (training does)."""
        return {"probs": self.probs.detach().cpu(), "seen": self.seen.cpu(), "written": self.written.cpu(),
                "num_samples": self.num_samples, "num_classes": self.num_classes}

    def load_state_dict(self, state: dict) -> None:
        shape = (state["num_samples"], state["num_classes"])
        if shape != (self.num_samples, self.num_classes):
            raise ValueError(f"bank state has shape {shape}, this bank is {(self.num_samples, self.num_classes)}")
        self.probs.copy_(state["probs"].to(self.dtype))
        self.seen.copy_(state["seen"])
        _load_written(self, state)

    def nbytes(self) -> int:
        return self.probs.element_size() * self.probs.numel() + self.seen.numel() + 4 * self.written.numel()


def bank_checksum(bank: PredictionBank, chunk: int = 1 << 14) -> torch.Tensor:
    """A position-weighted float64 checksum of a dense bank, sum_i i * sum_k k * p[i, k] (1-based),
    to compare the banks of DDP ranks. In chunks of rows: an ImageNet-size bank is never copied
    whole to float64 (10 GB)."""
    w = torch.arange(1, bank.num_classes + 1, dtype=torch.float64, device=bank.probs.device)
    total = torch.zeros((), dtype=torch.float64, device=bank.probs.device)
    for start in range(0, bank.num_samples, chunk):
        rows = bank.probs[start:start + chunk].double() @ w
        pos = torch.arange(start + 1, start + 1 + rows.numel(), dtype=torch.float64, device=rows.device)
        total += (rows * pos).sum()
    return total


def _preallocate(path) -> None:
    """Reserve the bank file's blocks now. open_memmap leaves a sparse file, so the first epoch's
    scattered row writes each allocate blocks, and the kernel throttles the writer once dirty
    pages pile up: measured 5.6x the in-memory bank's median update and stalls of 2.5 s in epoch 1
    (later epochs, rewriting allocated rows, ran at 1.1x). Where posix_fallocate is missing, the
    file stays sparse."""
    if hasattr(os, "posix_fallocate"):
        with open(path, "r+b") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
            except OSError:
                pass  # a filesystem without fallocate: sparse, as before


def _load_written(bank, state: dict) -> None:
    # A checkpoint from before row ages were kept has no "written": its rows count as written in
    # epoch 0 (their ages are then upper bounds until they are rewritten).
    written = state.get("written")
    bank.written.copy_(written if written is not None else torch.zeros_like(bank.written))


class TopKPredictionBank:
    """A sparse prediction bank for label spaces where N x K does not fit: per sample the k
    largest probabilities and their class indices. The teacher row it gives back puts those k
    values at their classes and spreads the remaining mass, 1 - (sum of the k values), uniformly
    over the other K - k classes (so every row still sums to 1 and no class gets probability 0).
    With k = K - 1 this is the dense bank exactly (the last class gets the rest). Same interface
    as PredictionBank (teacher, targets, update, state_dict, load_state_dict, nbytes)."""

    def __init__(self, num_samples: int, num_classes: int, k: int, device="cpu", dtype=torch.float32):
        if not 1 <= k < num_classes:
            raise ValueError(f"bank top-k must be in [1, {num_classes}) for {num_classes} classes, got {k}")
        if dtype not in _NP_DTYPES:
            raise ValueError(f"bank dtype must be torch.float32 or torch.float16, got {dtype}")
        self.num_samples, self.num_classes, self.k = int(num_samples), int(num_classes), int(k)
        self.device, self.dtype = torch.device(device), dtype
        index_dtype = torch.int16 if num_classes <= 32767 else torch.int32
        self.values = torch.zeros(self.num_samples, self.k, dtype=dtype, device=self.device)
        self.indices = torch.zeros(self.num_samples, self.k, dtype=index_dtype, device=self.device)
        self.seen = torch.zeros(self.num_samples, dtype=torch.bool, device=self.device)
        self.written = torch.zeros(self.num_samples, dtype=torch.int32, device=self.device)
        self.epoch = 0

    _idx = PredictionBank._idx

    def teacher(self, idx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        i = self._idx(idx)
        v = self.values[i].to(device=labels.device, dtype=torch.float32)
        rest = (1.0 - v.sum(1, keepdim=True)).clamp_min(0.0) / (self.num_classes - self.k)
        rows = rest.expand(len(i), self.num_classes).clone()
        rows.scatter_(1, self.indices[i].to(labels.device).long(), v)
        onehot = torch.nn.functional.one_hot(labels.long(), self.num_classes).float()
        return torch.where(self.seen[i].to(labels.device)[:, None], rows, onehot)

    targets = PredictionBank.targets

    @torch.no_grad()
    def update(self, idx: torch.Tensor, probs: torch.Tensor) -> None:
        i = self._idx(idx)
        if probs.shape != (i.numel(), self.num_classes):
            raise ValueError(f"expected probs of shape {(i.numel(), self.num_classes)}, got {tuple(probs.shape)}")
        v, c = probs.detach().float().topk(self.k, dim=1)
        self.values[i] = v.to(device=self.device, dtype=self.dtype)
        self.indices[i] = c.to(device=self.device, dtype=self.indices.dtype)
        self.seen[i] = True
        self.written[i] = self.epoch

    row_age = PredictionBank.row_age

    def state_dict(self) -> dict:
        return {"values": self.values.detach().cpu(), "indices": self.indices.cpu(), "seen": self.seen.cpu(),
                "written": self.written.cpu(), "num_samples": self.num_samples, "num_classes": self.num_classes,
                "k": self.k}

    def load_state_dict(self, state: dict) -> None:
        shape = (state.get("num_samples"), state.get("num_classes"), state.get("k"))
        if shape != (self.num_samples, self.num_classes, self.k):
            raise ValueError(f"bank state has (N, K, k) {shape}, this bank is "
                             f"{(self.num_samples, self.num_classes, self.k)}")
        self.values.copy_(state["values"].to(self.dtype))
        self.indices.copy_(state["indices"])
        self.seen.copy_(state["seen"])
        _load_written(self, state)

    def nbytes(self) -> int:
        return (self.values.element_size() * self.values.numel()
                + self.indices.element_size() * self.indices.numel() + self.seen.numel() + 4 * self.written.numel())
