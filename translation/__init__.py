"""Self-KD for machine translation (Sec. 3.4) as a fairseq ``--user-dir`` plugin.

Read top to bottom:
  data.py       raw parallel text (Multi30k, IWSLT15 2015-01 release) -> Moses tokens -> BPE ->
                fairseq-preprocess binaries
  task.py       task ``self_kd_translation``: the translation task + a frozen snapshot teacher
                refreshed at the start of every epoch (core.teacher.SnapshotTeacher)
  criterion.py  criterion ``self_kd_cross_entropy``: token-level soft targets (Eq. 6) from
                core.targets; label smoothing is the same criterion with a uniform teacher
  methods.py    the ``method`` section of a run's config (method.selfkd.*, method.ls.*, as in
                classification) and, per registered rule, what the criterion gets from it
  train.py      ``python -m translation.train --config translation/configs/<row>_<method>.yaml``:
                wraps fairseq-train in-process and writes the repo's JSONL run log
  evaluate.py   beam search + detokenised and tokenised BLEU with sacrebleu

fairseq imports this package (``--user-dir translation``) before it builds the task or loads a
checkpoint, so registration and the checkpoint-loading fix live here (``register()``; run at
import when fairseq is already loaded, else by the entry points once they import it). Without
fairseq installed (``make install-translation``) only data.py's pure-Python parts and the configs
are usable.
"""
from __future__ import annotations

import argparse
import logging
import sys

_registered = False


def register() -> None:
    """Register the task and criterion with fairseq (idempotent). fairseq itself calls this by
    importing the package through ``--user-dir``; the project's entry points call it after they
    import fairseq, so that ``--help`` and config errors never pay for (or print) fairseq's import."""
    global _registered
    if _registered:
        return
    allow_fairseq_checkpoints()
    from translation import criterion, task  # noqa: F401  (register with fairseq)
    _registered = True


def allow_fairseq_checkpoints() -> None:
    """Let weights_only=True loads (every load of this package, and fairseq's own under torch >=
    2.6, whose default it is) read fairseq checkpoints, which hold an argparse.Namespace ("Weights
    only load failed ... argparse.Namespace"): exactly that class is allowed, weights_only stays
    on. Needs torch only, so a checkpoint can be checked before fairseq is imported."""
    import torch
    torch.serialization.add_safe_globals([argparse.Namespace])


def _no_traceback(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Traceback")


def quiet_fairseq() -> None:
    """What the entry points (train, data, evaluate) print by default: their own lines, not the
    libraries'. fairseq, hydra and torch at WARNING (no INFO lines, no Namespace dump, no "Please
    install tensorboardX"), their Future/Deprecation/User warnings hidden (torch.jit's, the
    DataLoader's pin_memory), subword-nmt's BPE-learning progress bar off. Call it before fairseq
    is imported; ``--verbose`` skips it."""
    import warnings
    root = logging.getLogger()
    if not root.handlers:  # before fairseq_cli's basicConfig(INFO, stdout), which then does nothing
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
        # the progress-bar logger is set to INFO for EpochRecords; its records reach the root
        # handler whatever the root level, so the handler filters too
        root.handlers[0].setLevel(logging.WARNING)
    root.setLevel(logging.WARNING)
    for name in ("fairseq", "fairseq_cli", "hydra", "torch", "sacrebleu"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # fairseq logs the traceback of a failed checkpoint write before raising the error, which
    # main() reports in one line (a full disk, a folder that cannot be written)
    logging.getLogger("fairseq.checkpoint_utils").addFilter(_no_traceback)  # (once: a set)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category)
    try:  # learn_bpe draws a tqdm bar when tqdm is importable; this is its own no-tqdm fallback
        from subword_nmt import learn_bpe
        learn_bpe.tqdm = lambda iterator, *args, **kwargs: iterator
    except ImportError:
        pass


if "fairseq" in sys.modules:  # imported by fairseq (--user-dir), or after it
    register()
