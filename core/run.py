"""The start of a run, shared by every task: where its folder is, who owns it, and whether it
starts, resumes or is already done.

A run owns exactly one folder, ``<out_dir>/<table>/<run_id>/``, and nothing outside it: names are
checked so that no ``table`` or ``run_id`` can point elsewhere (``.``, ``..``, ``/``); a lock file
keeps a second process out of a folder in use; a resume whose config differs from the run's
``config.yaml`` is refused with the changed keys unless the user allows it (and then the change is
recorded in the log); a folder that cannot be resumed (no checkpoint) is moved aside, never
deleted.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .cli import UserError
from .config import ConfigError
from .runlog import read_run_log

# Keys that may differ between the invocations of one run without changing what it computes.
RUNTIME_KEYS = ("resume", "resume_changed", "stop_after_epochs", "progress", "tensorboard", "threads",
                "data.num_workers", "device", "out_dir")
ASIDE = ".aside"  # <out_dir>/<table>/.aside/<run_id>-<time>/: folders moved out of the way


def check_name(value: str, what: str) -> str:
    """A path component of a run folder (or a file name built from one): non-empty, not '.' or
    '..', no separator, no control character (a newline would also break the Markdown tables that
    list run ids)."""
    value = str(value)
    if (value in ("", ".", "..") or any(c in value for c in ("/", "\\")) or value.startswith(ASIDE)
            or any(ord(c) < 32 or ord(c) == 127 for c in value)):
        raise ConfigError(f"{what} must be a plain folder name (no '/', not '.' or '..', no control "
                          f"characters), got {value!r}")
    return value


def run_dir_for(out_dir: str, table: str, run_id: str) -> Path:
    return Path(out_dir) / check_name(table, "table") / check_name(run_id, "run_id")


def check_out_dir(out_dir: str) -> None:
    """out_dir must be (or be creatable as) a writable folder."""
    p = Path(out_dir)
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise ConfigError(f"out_dir {out_dir}: {p} is not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"out_dir {out_dir}: {p} is not writable")


def flatten_config(d, prefix="") -> dict:
    """{"a.b": value} for a nested config dict (an empty section stays a key holding {})."""
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten_config(v, key + "."))
        else:
            out[key] = v
    return out


def config_changes(old: dict, new: dict, ignore=RUNTIME_KEYS, renames=None) -> list[str]:
    """'key: old -> new' for every key (dotted) whose value differs, runtime keys ignored (an
    ignored key also ignores the keys under it). A key the old config.yaml does not have (added by
    a later version of the code) is not a change, and renames (old dotted key -> new, the task
    config's RENAMED_KEYS) make a key under its old name the same key as under its new one: runs
    started before an upgrade still resume."""
    renames = renames or {}
    a, b = ({renames.get(k, k): v for k, v in flatten_config(c).items()} for c in (old, new))
    skip = lambda k: any(k == i or k.startswith(i + ".") for i in ignore)  # noqa: E731
    return [f"{k}: {a.get(k)!r} -> {b.get(k, '<unset>')!r}"
            for k in sorted(a) if not skip(k) and a.get(k) != b.get(k, '<unset>')]


def saved_config(run_dir: Path) -> dict | None:
    p = run_dir / "config.yaml"
    if not p.is_file():
        return None
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p} is not readable YAML ({type(e).__name__}); move the run folder away "
                          f"or fix the file") from None
    if not isinstance(data, dict):
        # a config.yaml that is not a mapping cannot be compared: refusing is the only safe answer
        raise ConfigError(f"{p} is not a config (a YAML {type(data).__name__}, not a mapping); move the "
                          f"run folder away or fix the file")
    return data


def check_resume_config(run_dir: Path, new: dict, policy: str, renames=None, ignore=()) -> list[str]:
    """On resume: the changed keys against the run's config.yaml (config_changes: renamed keys
    matched, RUNTIME_KEYS and `ignore` skipped). policy 'refuse' raises a one-line ConfigError
    naming them; 'allow' returns them (the caller records them in the log)."""
    if policy not in ("refuse", "allow"):
        raise ConfigError(f"resume_changed must be 'refuse' or 'allow', got {policy!r}")
    old = saved_config(run_dir)
    if old is None:
        return []
    changes = config_changes(old, new, RUNTIME_KEYS + tuple(ignore), renames)
    if changes and policy == "refuse":
        raise ConfigError(f"{run_dir} was started with another config ({'; '.join(changes)}); "
                          f"resume with the same settings, or pass resume_changed=allow to continue "
                          f"with the new ones (recorded in the log)")
    return changes


def move_aside(run_dir: Path) -> Path:
    """Move a run folder out of the way (never delete it): <table>/.aside/<run_id>-<time>/."""
    dest = run_dir.parent / ASIDE / f"{run_dir.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while dest.exists():
        dest = dest.with_name(f"{dest.name.split('~')[0]}~{n}")
        n += 1
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(run_dir, dest)
    return dest


class RunLock:
    """An exclusive lock on a run folder (flock on <run_dir>/.lock, released by the OS when the
    process dies, so a killed run never leaves a stale lock). A second process fails at once with
    a one-line error naming the holder's pid."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self.fd = None

    def acquire(self) -> "RunLock":
        import fcntl
        for _ in range(100):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the folder was moved away after our mkdir: again
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                os.close(fd)
                if e.errno in (errno.EAGAIN, errno.EACCES):
                    raise ConfigError(f"run folder {self.path.parent} is in use by process {holder}; "
                                      f"wait for it or stop it first") from None
                raise
            # The lock file may have been moved aside or deleted (with its folder) by the holder
            # between our open and our flock: then we hold a lock on a file that no longer guards
            # this folder. Only a lock on the file now at self.path counts; otherwise try again.
            try:
                here = os.stat(self.path)
            except FileNotFoundError:
                here = None
            held = os.fstat(fd)
            if here is not None and (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino):
                os.ftruncate(fd, 0)
                os.pwrite(fd, str(os.getpid()).encode(), 0)
                self.fd = fd
                return self
            os.close(fd)
        raise ConfigError(f"run folder {self.path.parent} keeps changing under this process; is another "
                          f"process moving it?")

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Checkpoint temp files (``*.tmp``) left by a kill during a save; only the lock holder calls
    this, so no save is in flight."""
    removed = []
    if run_dir.is_dir():
        for p in run_dir.glob("*.tmp"):
            p.unlink()
            removed.append(p)
    return removed


@dataclass
class RunStart:
    """What a task does with its run folder: 'fresh' (new folder), 'resume' (from a checkpoint)
    or 'complete' (nothing to do). aside: where an unresumable old folder was moved; changes: the
    config keys a resume_changed=allow resume changed."""
    run_dir: Path
    state: str
    lock: RunLock
    aside: Path | None = None
    changes: tuple = ()


def log_complete(run_dir: Path) -> bool:
    """The run's log.jsonl has its final record."""
    log = Path(run_dir) / "log.jsonl"
    return log.is_file() and read_run_log(log).complete


def start_run(run_dir: Path, config: dict, resume: bool, checkpoint: Path, is_complete=log_complete,
              resume_changed: str = "refuse", renames=None, ignore=()) -> RunStart:
    """Decide fresh / resume / complete for run_dir and take its lock (the main process only:
    other DDP ranks follow its decision).

    - folder exists, resume not asked: error (never overwrite a run);
    - resume asked, log complete: 'complete'; else a checkpoint: 'resume'; in both cases a config
      that differs from config.yaml is an error naming the keys (or, with resume_changed=allow,
      go on and report the changes), and a config.yaml that is not a mapping is an error;
    - resume asked, a folder without a checkpoint (killed before its first save, or a user's
      notes): moved aside under <table>/.aside/, then 'fresh'.
    The lock is held from the first look at the folder to the return, the move aside included.
    is_complete: a callable(run_dir) -> bool (the task's run log says 'final'). renames, ignore:
    for the config comparison (check_resume_config).
    """
    if run_dir.exists() and not resume:
        raise ConfigError(f"run directory {run_dir} exists; pass resume=true to continue it or set run_id")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} is a file, not a folder")
    if resume_changed not in ("refuse", "allow"):
        raise ConfigError(f"resume_changed must be 'refuse' or 'allow', got {resume_changed!r}")
    lock = RunLock(run_dir).acquire()
    try:
        # everything below reads the folder under its lock: no other process is writing it
        remove_stale_temp_files(run_dir)
        # The config is compared where there is something to continue; a folder without a
        # checkpoint is moved aside whatever config made it (a kill may have left its config.yaml
        # half written).
        if resume and (is_complete(run_dir) or checkpoint.exists()):
            changes = check_resume_config(run_dir, config, resume_changed, renames, ignore)
            state = "complete" if is_complete(run_dir) else "resume"
            return RunStart(run_dir, state, lock, changes=tuple(changes))
        aside = None
        if any(p.name != ".lock" for p in run_dir.iterdir()):
            # Moved with its lock held (the lock file goes with it); the new folder is then locked
            # before the old lock is let go. A process that arrives in between finds the old lock
            # held, or takes the new folder first, and then this one stops with "in use": either way
            # exactly one process owns the run.
            aside = move_aside(run_dir)
            new_lock = RunLock(run_dir).acquire()
            lock.release()
            lock = new_lock
        return RunStart(run_dir, "fresh", lock, aside=aside)
    except BaseException:
        lock.release()
        raise


@contextlib.contextmanager
def owned_run(run_dir: Path, config: dict, resume: bool, checkpoint: Path, resume_changed: str = "refuse",
              renames=None, ignore=()):
    """start_run as a context: yields the RunStart (its aside move reported on stderr), releases the
    lock at the end, and if the body fails in a fresh run before its first checkpoint, removes the
    folder this invocation made, and the folders above it it made (<out_dir>/<table>/) while they
    are empty (nothing else is ever deleted: an old folder was moved aside)."""
    import sys
    made = [p for p in Path(run_dir).absolute().parents if not p.exists()]  # deepest first
    start = start_run(run_dir, config, resume, checkpoint, log_complete, resume_changed, renames, ignore)
    if start.aside:
        print(f"{run_dir}: no checkpoint to resume; its old contents were moved to {start.aside}", file=sys.stderr)
    try:
        yield start
    except BaseException:
        # a run marked failed keeps its folder: the log says where and why it failed
        if start.state == "fresh" and not checkpoint.exists() and run_dir.is_dir() and not _marked_failed(run_dir):
            shutil.rmtree(run_dir)
            for parent in made:
                try:
                    parent.rmdir()  # only while empty: another run may have started beside this one
                except OSError:
                    break
        raise
    finally:
        start.lock.release()


def _marked_failed(run_dir: Path) -> bool:
    log = run_dir / "log.jsonl"
    try:
        return log.is_file() and any(r.get("type") == "failed" for r in read_run_log(log).extra)
    except OSError:
        return False


class TrainingDiverged(UserError):
    """The training loss became NaN or infinite (the message says at which epoch and step)."""


def record_resume(log, run_dir: Path, epoch: int, total_epochs: int, changes, config_yaml: str,
                  command: str, saved: dict | None = None) -> None:
    """On resume from the checkpoint of `epoch`: drop the log lines written after it, put back
    from `saved` (the checkpoint's copy of the log records, RunLogWriter.records()) any line a
    damaged log lost, add a "resume" record in place, and with resume_changed=allow write the new
    config.yaml and a "config_change" record naming the changed keys. A log that lost its meta line
    with no copy to restore it from is a one-line ConfigError (resuming would finish a run no report
    can read); lost epoch lines without a copy are named on stderr."""
    import sys
    from .runlog import RunLogError, now_iso
    try:
        missing = log.truncate_to_epoch(epoch, saved)
    except RunLogError as e:
        raise ConfigError(str(e)) from None
    if missing:
        print(f"warning: {log.path} lacks the lines of epoch(s) {', '.join(map(str, missing))} and the "
              f"checkpoint holds no copy of them; the run continues without them", file=sys.stderr)
    log.extra("resume", from_epoch=epoch, at=now_iso(), command=command)
    if changes:
        (run_dir / "config.yaml").write_text(config_yaml)
        log.extra("config_change", changes=list(changes), at=now_iso(), command=command)
        print(f"resuming {run_dir} with a changed config: {'; '.join(changes)}", file=sys.stderr)
    print(f"resuming {run_dir} at epoch {epoch + 1}" if epoch < total_epochs else
          f"{run_dir}: all {total_epochs} epochs trained; writing the final record")


def record_failure(log, epoch: int, error: Exception) -> TrainingDiverged:
    """Mark the log failed at `epoch` (reports show "failed at epoch N"); the checkpoint of the
    previous epoch stays as it was. Returns the one-line error to raise."""
    from .runlog import now_iso
    if log is not None:
        log.extra("failed", epoch=epoch, reason=str(error), at=now_iso())
    kept = f"the checkpoint of epoch {epoch - 1} is kept" if epoch > 1 else "no checkpoint was written"
    return TrainingDiverged(f"{error}; the run log is marked failed and {kept}")


def lock_finished_run(run_dir: Path):
    """(the run's RunLock, its RunLog) for appending an evaluation record to a finished run's log
    (`--record` of the evaluate commands). The lock (a run still training, or another --record on
    it, is a one-line error) is taken only once the log is known to be complete: the scores of a
    checkpoint that training may still replace must not enter its log. FileNotFoundError without
    a log, ValueError without a final record."""
    run_dir = Path(run_dir)
    log_path = run_dir / "log.jsonl"
    if not log_path.is_file():
        raise FileNotFoundError(f"--record: {log_path} not found")
    log = read_run_log(log_path, strict=True)
    if log.final is None:
        raise UserError(f"--record: {run_dir} has not finished (no final record in its log); "
                        "record its evaluation once it has")
    return RunLock(run_dir).acquire(), log
