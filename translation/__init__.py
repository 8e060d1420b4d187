"""Self-KD for machine translation (Sec. 3.4) as a fairseq ``--user-dir`` plugin.

Read top to bottom:
  data.py       raw parallel text (Multi30k, IWSLT15 2015-01 release) -> Moses tokens -> BPE ->
                fairseq-preprocess binaries
  task.py       task ``self_kd_translation``: the translation task + a frozen snapshot teacher
                refreshed at the start of every epoch (core.teacher.SnapshotTeacher)
  criterion.py  criterion ``self_kd_cross_entropy``: token-level soft targets (Eq. 6) from
                core.targets; label smoothing is the same criterion with a uniform teacher
  train.py      ``python -m translation.train --config translation/configs/<row>_<method>.yaml``:
                wraps fairseq-train in-process and writes the repo's JSONL run log
  evaluate.py   beam search + detokenised and tokenised BLEU with sacrebleu

fairseq imports this package (``--user-dir translation``) before it builds the task or loads a
checkpoint, so registration and the checkpoint-loading fix live here (``register()``; run at
import when fairseq is already loaded, else by the entry points once they import it). Without fairseq installed
(``make install-translation``) only data.py's pure-Python parts and the configs are usable.
"""
from __future__ import annotations

import argparse
import sys

_registered = False


def register() -> None:
    """Register the task and criterion with fairseq (idempotent). fairseq itself calls this by
    importing the package through ``--user-dir``; the project's entry points call it after they
    import fairseq, so that ``--help`` and config errors never pay for (or print) fairseq's import."""
    global _registered
    if _registered:
        return
    import torch

    # torch >= 2.6 loads checkpoints with weights_only=True; fairseq checkpoints hold an
    # argparse.Namespace ("Weights only load failed ... argparse.Namespace"). Allow exactly that
    # class instead of turning weights_only off globally.
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals([argparse.Namespace])

    from translation import criterion, task  # noqa: F401  (register with fairseq)
    _registered = True


if "fairseq" in sys.modules:  # imported by fairseq (--user-dir), or after it
    register()
