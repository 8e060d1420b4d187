"""core.cli: the one ending of every entry point (a user's mistake one line and exit 2, Ctrl-C one
line and exit 130, a bug a traceback) and the "did you mean" hints."""
import errno

import pytest

from core.checkpoint import CheckpointError
from core.cli import (INTERRUPTED, RESUME_FLAG, USER_ERROR, UserError, description, did_you_mean,
                      entry_point, error_line, nearest, run_cli, storage_error)
from core.config import ConfigError
from core.run import TrainingDiverged
from core.runlog import RunLogError


def test_storage_errors_are_one_line_naming_the_file():
    full = storage_error(OSError(errno.ENOSPC, "No space left on device", "/runs/t/r/checkpoint.pt"), RESUME_FLAG)
    assert "disk is full" in full and "/runs/t/r/checkpoint.pt" in full and "resume=true" in full
    ro = storage_error(PermissionError(errno.EACCES, "Permission denied", "/runs/t/r/log.jsonl"))
    assert "cannot write /runs/t/r/log.jsonl (permission denied)" in ro
    assert "read-only file system" in storage_error(OSError(errno.EROFS, "Read-only", "/x"))
    assert storage_error(OSError(errno.EBADF, "Bad file descriptor")) is None  # a bug: a traceback


def _raises(e):
    def body():
        raise e
    return body


@pytest.mark.parametrize("exc", [ConfigError("bad key x"), CheckpointError("bad key x"), RunLogError("bad key x"),
                                 TrainingDiverged("bad key x"), UserError("bad key x"),
                                 FileNotFoundError("bad key x")])
def test_user_errors_are_one_line_and_exit_2(capsys, exc):
    assert run_cli(_raises(exc)) == USER_ERROR == 2
    assert capsys.readouterr().err == "error: bad key x\n"


@pytest.mark.parametrize("exc", [ValueError("a bug"), KeyError("k"), RuntimeError("a bug"),
                                 OSError(errno.EBADF, "Bad file descriptor")])
def test_anything_else_stays_a_traceback(capsys, exc):
    """A bare ValueError is not a user's mistake: it may be a bug, so it keeps its traceback."""
    with pytest.raises(type(exc)):
        run_cli(_raises(exc))
    assert capsys.readouterr().err == ""


def test_full_disk_and_ctrl_c(capsys):
    assert run_cli(_raises(OSError(errno.ENOSPC, "No space", "/r/log.jsonl")), RESUME_FLAG) == 2
    assert capsys.readouterr().err.startswith("error: the disk is full (no space left writing /r/log.jsonl)")
    assert run_cli(_raises(KeyboardInterrupt()), RESUME_FLAG) == INTERRUPTED == 130
    assert capsys.readouterr().err == f"interrupted; {RESUME_FLAG}\n"


def test_dataloader_worker_message_is_its_last_line():
    msg = ("Caught UserError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
           '  File "x.py", line 1, in f\nUserError: image 7 is not a JPEG')
    assert error_line(UserError(msg)) == "image 7 is not a JPEG"
    assert error_line(ConfigError("first\nsecond")) == "first"


def test_entry_point_marks_and_wraps_main(capsys):
    @entry_point(rerun=RESUME_FLAG)
    def main(argv=None):
        """Doc."""
        if argv:
            raise ConfigError(f"unknown {argv[0]}")
        return 0
    assert main.cli_rerun == RESUME_FLAG and main.__doc__ == "Doc."
    assert main([]) == 0 and main(["x"]) == 2
    assert capsys.readouterr().err == "error: unknown x\n"


@pytest.mark.parametrize("word,choices,near", [
    ("alpha_t", ["alpha_T", "alpha_kind", "bank"], "alpha_T"),
    ("cs_kd", ["selfkd", "cskd", "tfkd"], "cskd"),
    ("cifar_10", ["cifar10", "cifar100", "digits"], "cifar10"),
    ("resnet_56", ["resnet20", "resnet56", "densenet121"], "resnet56"),
    ("resnet_18", ["resnet101", "resnet20", "preact_resnet18"], "preact_resnet18"),
    ("wholly_other", ["alpha_T", "bank"], None),
])
def test_nearest(word, choices, near):
    assert nearest(word, choices) == near


def test_aliases_and_did_you_mean():
    assert nearest("PS-KD", ["selfkd", "cskd"], aliases={"pskd": "selfkd"}) == "selfkd"
    assert did_you_mean("alpha_t", ["alpha_T"], "method.selfkd.") == " (did you mean method.selfkd.alpha_T?)"
    assert did_you_mean("zzz", ["alpha_T"]) == ""


def test_description_is_the_whole_first_paragraph():
    doc = "Run the missing runs of a table, one after another, resumable (a killed\nlauncher picks up).\n\nMore."
    assert description(doc) == "Run the missing runs of a table, one after another, resumable (a killed launcher picks up)."
