"""Distributed plumbing every task shares: rank / world / device, and the Self-KD bank update
that keeps every rank's prediction bank identical under DDP."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from .bank import PredictionBank


def check_device(device: str) -> None:
    """ValueError (one line) unless `device` is auto, cpu, cuda[:N] with that GPU present, or mps."""
    if device in ("auto", "cpu"):
        return
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; expected auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked but no CUDA GPU is available here; use device=cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} GPU(s) here")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {device!r} asked but MPS is not available here")
    else:
        raise ValueError(f"unknown device {device!r}; expected auto, cpu, cuda, cuda:N or mps")


class Dist:
    """Rank, world size and device; torchrun sets the environment, gloo on CPU, NCCL on GPU."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.rank = int(os.environ.get("RANK", 0))
        local = int(os.environ.get("LOCAL_RANK", 0))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", local)
            torch.cuda.set_device(self.device)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate t from every rank in rank order (every rank's t has the same shape)."""
        if self.world == 1:
            return t
        out = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(out, t.contiguous())
        return torch.cat(out)

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    @torch.no_grad()
    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm running statistics), as DDP does at the start
        of each forward: between epochs each rank holds the statistics of its own last batch."""
        if self.world > 1:
            for b in module.buffers():
                dist.broadcast(b, 0)


def update_bank(bank: PredictionBank, d: Dist, idx, logits, mask) -> None:
    """Write softmax(logits) into the rows of idx where mask, on every rank: under DDP the
    (index, probabilities) pairs of all ranks are gathered so all banks stay identical.
    mask=True: every row (plain Self-KD), written without boolean indexing, which on a GPU would
    wait for the device to count the selected rows every step."""
    probs = torch.softmax(logits.detach().float(), dim=1)
    idx = d.gather(idx.to(probs.device))
    probs = d.gather(probs)
    if mask is True:
        bank.update(idx, probs)
        return
    mask = d.gather(mask.to(probs.device))
    bank.update(idx[mask], probs[mask])
