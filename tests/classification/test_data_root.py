"""A relative data.root is relative to the current working directory (classification/README.md,
top); when it is missing, the error says so and prints the absolute path it tried."""
import os

import pytest

from classification.data import REPO_ROOT, check_data_path
from tests.conftest import REPO


def _message(*args) -> str:
    with pytest.raises(FileNotFoundError) as e:
        check_data_path(*args)
    return str(e.value)


def test_relative_root_names_the_working_directory_and_the_path_tried(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, root, tried in (("cifar10_npz", "no/such.npz", "no/such.npz"),
                              ("cifar100", "nodata", "nodata/cifar-100-python"),
                              ("imagenet", "noimg", "noimg/train")):
        msg = _message(name, root, False)
        assert f"relative to the current working directory {tmp_path}" in msg, msg
        assert f"tried {tmp_path / tried}" in msg, msg
        assert "repository root" not in msg  # nowhere else either


def test_relative_root_that_exists_from_the_repository_root_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert REPO_ROOT == REPO
    msg = _message("cifar10_npz", "pyproject.toml", False)  # a file at the repo root, not an npz
    assert f"tried {tmp_path / 'pyproject.toml'}" in msg
    assert f"it exists relative to the repository root {REPO}" in msg
    assert f"data.root={REPO / 'pyproject.toml'}" in msg
    # `..` is normalised in the path tried
    msg = _message("cifar10_npz", "../x/y.npz", False)
    assert f"tried {os.path.normpath(tmp_path.parent / 'x/y.npz')}" in msg


def test_absolute_root_message_is_unchanged(tmp_path):
    assert _message("cifar10_npz", str(tmp_path / "no.npz"), False) == \
        f"dataset file not found: {tmp_path / 'no.npz'} (expected cifar10_jpeg.npz)"


def test_train_from_another_folder_reports_the_folder(tmp_path, monkeypatch, capsys):
    from classification.train import main
    monkeypatch.chdir(tmp_path)
    rc = main(["--config", str(REPO / "classification/configs/reduced/cifar10jpeg_smallcnn_cpu.yaml"),
               f"out_dir={tmp_path / 'runs'}"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: dataset file not found: ../shared/data/"), err
    assert f"relative to the current working directory {tmp_path}" in err
    assert not (tmp_path / "runs").exists()
