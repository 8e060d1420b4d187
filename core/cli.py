"""How every command-line entry point ends (each task's, the reports', the tools'): a user's
mistake is one line ``error: ...`` on stderr and exit status 2, Ctrl-C is one line and exit status
130, and anything else is a bug and stays a traceback (Python's exit status 1).

A user's mistake is a ``UserError`` (``core.config.ConfigError``, ``core.checkpoint.CheckpointError``,
the tasks' own input errors subclass it), a ``FileNotFoundError`` (a data file, a checkpoint or a
config that is not where the user said), or an ``OSError`` of the machine rather than the code (a
full disk, a folder that cannot be written: ``storage_error``). A bare ``ValueError`` is not one:
it may be a bug, and a bug keeps its traceback.
"""
from __future__ import annotations

import difflib
import errno
import functools
import os
import sys
from typing import Callable, Iterable

USER_ERROR = 2  # the exit status of a user's mistake (argparse uses it for a bad option too)
INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of stdout closed it (`| head`)

# what to tell the user after a full disk or a Ctrl-C, by how the command continues
RESUME_FLAG = "rerun the same command with --resume (or resume=true) to continue from the last checkpoint"
RERUN_RESUMES = "rerun the same command: it continues from the last checkpoint"
RERUN = "rerun the same command"


class UserError(ValueError):
    """A mistake in what the user gave (a config value, a file, a run folder, an argument): the
    message is one line naming the value and what was expected. A ValueError, so the functions
    that raise it keep the library convention of torchvision and friends."""


def nearest(word: str, choices: Iterable[str], aliases: dict | None = None) -> str | None:
    """The one of `choices` that `word` is a near miss of (difflib, with case and '-' / '_'
    ignored: `alpha_t` -> `alpha_T`), or the choice `aliases` (other names of a choice, in lower
    case without '-' / '_') gives for it; None when there is none."""
    def norm(s: str) -> str:
        return s.lower().replace("-", "").replace("_", "")
    if aliases and norm(word) in aliases:
        return aliases[norm(word)]
    by_norm: dict = {}
    for c in choices:
        by_norm.setdefault(norm(str(c)), str(c))
    # a name with a prefix left out (resnet_18 for preact_resnet18): the shortest name holding it
    holding = sorted((n for n in by_norm if len(norm(word)) >= 4 and norm(word) in n), key=len)
    if holding:
        return by_norm[holding[0]] if by_norm[holding[0]] != word else None
    close = difflib.get_close_matches(norm(word), list(by_norm), n=1, cutoff=0.6)
    return by_norm[close[0]] if close and by_norm[close[0]] != word else None


def did_you_mean(word: str, choices: Iterable[str], prefix: str = "", aliases: dict | None = None) -> str:
    """' (did you mean <prefix>X?)' for the nearest of `choices` (see nearest), else ''."""
    near = nearest(word, choices, aliases)
    return f" (did you mean {prefix}{near}?)" if near else ""


def description(doc: str) -> str:
    """An entry point's --help description: the first paragraph of its module docstring, whole
    (argparse re-wraps it)."""
    return " ".join(doc.strip().split("\n\n")[0].split())


def storage_error(e: OSError, rerun: str = RERUN) -> str | None:
    """The one-line message for an OSError that is the machine's and not the code's (a full disk,
    a folder that cannot be written), naming the file; None for any other OSError (a bug: it stays
    a traceback). Checkpoints are written atomically and logs line by line, so once the cause is
    fixed `rerun` (what the user runs next) continues from the last checkpoint."""
    where = f" {e.filename}" if e.filename else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk is full (no space left writing{where}); free some space and {rerun}"
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = "read-only file system" if e.errno == errno.EROFS else "permission denied"
        return f"cannot write{where} ({why}); make the folder writable or choose another output folder"
    return None


def error_line(e: BaseException) -> str:
    """The one line a user's mistake prints after 'error: '. A DataLoader worker re-raises its
    exception as the same class with the worker's traceback in the message ("Caught X in
    DataLoader worker process 0 ... X: msg"): the original message is its last line."""
    lines = str(e).strip().splitlines() or [type(e).__name__]
    if len(lines) > 1 and lines[0].startswith("Caught "):
        last = lines[-1]
        prefix = f"{type(e).__name__}: "
        return last[len(prefix):] if last.startswith(prefix) else last
    return lines[0]


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null so the interpreter's own flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # a stdout without a file descriptor (a test's capture)
        pass


def run_cli(body: Callable[[], int | None], rerun: str = RERUN) -> int:
    """`body()`'s exit status (None: 0), with a user's mistake printed as one line 'error: ...'
    (status 2) and Ctrl-C as one line 'interrupted; <rerun>' (status 130). `rerun` says how the
    command continues after a full disk or a Ctrl-C (RESUME_FLAG, RERUN_RESUMES or RERUN)."""
    try:
        return body() or 0
    except (UserError, FileNotFoundError) as e:
        line = error_line(e)
    except BrokenPipeError:  # stdout's reader went away (`| head`): stop quietly, as a Unix tool does
        _stdout_to_devnull()
        return BROKEN_PIPE
    except OSError as e:
        line = storage_error(e, rerun)
        if line is None:
            raise
    except KeyboardInterrupt:
        print(f"interrupted; {rerun}", file=sys.stderr)
        return INTERRUPTED
    print(f"error: {line}", file=sys.stderr)
    return USER_ERROR


def entry_point(rerun: str = RERUN):
    """Decorator for a `main(argv=None) -> int`: its body runs under run_cli (see there). The
    wrapped function carries `cli_rerun`, so a test can check that every main() uses it."""
    def wrap(main):
        @functools.wraps(main)
        def wrapped(*args, **kwargs):
            return run_cli(lambda: main(*args, **kwargs), rerun)
        wrapped.cli_rerun = rerun
        return wrapped
    return wrap
