"""Every command-line entry point of the tasks and the reports ends through core.cli: a user's
mistake is one line 'error: ...' and exit status 2 (docs/design.md, "Command lines"). Each main()
found in classification/, detection/, translation/ and reports/ is listed here with a bad
argument, so a new entry point that bypasses the helper fails this test. The scripts of tools/ and
examples/ (run as `python tools/x.py`) end the same way: every main() there is checked on the
syntax tree, and each one a user can give a bad argument is run with one."""
import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("classification", "detection", "translation", "reports")


def _bad_args(t: Path) -> dict:
    """module -> an argument list that is a user's mistake (a file or folder that is not there,
    or one that is a file where a folder is needed)."""
    missing = str(t / "missing")
    return {
        "classification.train": ["--config", f"{missing}.yaml"],
        "classification.bench": ["--data", f"{missing}.npz"],
        "classification.demo": ["--out", str(t / ".."), "--report", str(t / "rep")],
        "classification.evaluate": [missing],
        "classification.export": [missing, "--out", str(t / "export")],
        "classification.launch": ["no_such_table", "--dry-run"],
        "classification.select_alpha": ["--config", f"{missing}.yaml"],
        "detection.train": ["--config", f"{missing}.yaml"],
        "detection.evaluate": [missing],
        "detection.synthetic": ["--out", str(t / "afile" / "voc")],
        "reports.__main__": ["table1", "--runs", missing, "--out", str(t / "out")],
        "reports.qualitative": ["--checkpoints", missing, missing, "--data", missing, "--out", str(t / "q")],
        "translation.train": ["--config", f"{missing}.yaml"],
        "translation.data": ["--config", f"{missing}.yaml"],
        "translation.evaluate": [missing, missing, "-s", "de", "-t", "en"],
        "translation.bench": ["--config", f"{missing}.yaml"],
        "translation.select_alpha": [missing],
    }


def _modules_with_main() -> list[str]:
    found = []
    for pkg in PACKAGES:
        for f in sorted((REPO / pkg).rglob("*.py")):
            tree = ast.parse(f.read_text())
            if any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body):
                found.append(".".join(f.relative_to(REPO).with_suffix("").parts))
    return found


def test_every_main_is_listed_here(tmp_path):
    assert sorted(_modules_with_main()) == sorted(_bad_args(tmp_path))


@pytest.mark.parametrize("module", sorted(_bad_args(Path("/nonexistent"))))
def test_every_main_ends_through_the_helper(tmp_path, capsys, module):
    if module.startswith("translation.") and module != "translation.data":
        pytest.importorskip("fairseq")
    main = importlib.import_module(module).main
    assert hasattr(main, "cli_rerun"), f"{module}.main is not wrapped by core.cli.entry_point"
    (tmp_path / "afile").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    rc = main(_bad_args(tmp_path)[module])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), (rc, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # nothing written


@pytest.mark.parametrize("module", sorted(_bad_args(Path("/nonexistent"))))
def test_every_help_is_whole(capsys, module):
    """--help exits 0 with the command's own usage line and a description that ends a sentence
    (not the first line of a docstring cut mid-sentence)."""
    if module.startswith("translation.") and module != "translation.data":
        pytest.importorskip("fairseq")
    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    prog = "python -m reports" if module == "reports.__main__" else \
        "python -m reports qualitative" if module == "reports.qualitative" else f"python -m {module}"
    assert text.startswith(f"usage: {prog} "), text[:100]
    description = text.split("\n\n", 1)[1]  # after the usage lines, before the arguments
    for heading in ("\npositional arguments:", "\noptions:", "\nsubcommands:"):
        description = description.split(heading)[0]
    description = description.strip()
    assert description.endswith((".", ")")), description


def test_ctrl_c_says_how_each_training_continues():
    """The line after Ctrl-C or a full disk names the way the command continues: --resume where
    the task has that flag, the same command where it always resumes (docs/design.md)."""
    from core.cli import RERUN, RERUN_RESUMES, RESUME_FLAG
    expected = {"classification.train": RESUME_FLAG, "detection.train": RESUME_FLAG,
                "classification.launch": RERUN_RESUMES}
    if importlib.util.find_spec("fairseq") is not None:
        expected["translation.train"] = RESUME_FLAG
    for module, rerun in expected.items():
        assert importlib.import_module(module).main.cli_rerun == rerun, module
    for module in _bad_args(Path("/nonexistent")):
        if module not in expected and not module.startswith("translation."):
            assert importlib.import_module(module).main.cli_rerun == RERUN, module


# ----------------------------------------------------------------------------- tools/ and examples/
SCRIPTS = ("tools", "examples")  # run as `python tools/x.py`, not listed in --help's prog convention


def _script_bad_args(t: Path) -> dict:
    """script module -> an argument list that is a user's mistake, for each script that has one
    (bench_metrics, method_golden and troubleshooting_doc take nothing a user can get wrong)."""
    missing = str(t / "missing")
    return {
        "tools.bench_bank": ["--dir", missing],
        "tools.bench_epoch": ["--data", f"{missing}.npz"],
        "tools.check_demo": ["--readme", f"{missing}.md"],
        "tools.compare_logs": [f"{missing}.jsonl", f"{missing}.jsonl"],
        "tools.gpu_plan": ["--out", f"{missing}.md"],
        "tools.study_pilots": [missing],
        "examples.selfkd_in_your_loop": ["--alpha-T", "2"],
        "examples.timm_style_loop": ["--epochs", "0"],
    }


def _script_mains() -> dict:
    """module -> whether its top-level `def main` is decorated with (core.cli.)entry_point(...)."""
    found = {}
    for folder in SCRIPTS:
        for f in sorted((REPO / folder).glob("*.py")):
            for n in ast.parse(f.read_text()).body:
                if isinstance(n, ast.FunctionDef) and n.name == "main":
                    calls = [d.func for d in n.decorator_list if isinstance(d, ast.Call)]
                    found[f"{folder}.{f.stem}"] = any(
                        (isinstance(c, ast.Name) and c.id == "entry_point")
                        or (isinstance(c, ast.Attribute) and c.attr == "entry_point") for c in calls)
    return found


def test_every_tool_and_example_main_is_wrapped():
    mains = _script_mains()
    assert mains and all(mains.values()), [m for m, wrapped in mains.items() if not wrapped]
    assert set(_script_bad_args(Path("/nonexistent"))) <= set(mains)


def _load_script(module: str):
    """tools/x.py or examples/x.py as a module, from its file (neither folder is a package, and an
    installed distribution may own the top-level name `examples`)."""
    folder, name = module.split(".")
    spec = importlib.util.spec_from_file_location(f"_script_{folder}_{name}", REPO / folder / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("module", sorted(_script_bad_args(Path("/nonexistent"))))
def test_tool_and_example_bad_argument_is_one_line(tmp_path, capsys, module):
    main = _load_script(module).main
    assert hasattr(main, "cli_rerun"), f"{module}.main is not wrapped by core.cli.entry_point"
    rc = main(_script_bad_args(tmp_path)[module])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("error: "), (rc, err)
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`python -m reports ... | head -1`: when the reader closes stdout early the command stops
    with 141 (128 + SIGPIPE) and no traceback, like a Unix tool."""
    import subprocess
    import sys
    code = ("from core.cli import entry_point\n"
            "@entry_point()\n"
            "def main():\n"
            "    for i in range(10**6):\n"
            "        print('x' * 100)\n"
            "raise SystemExit(main())\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=Path(__file__).resolve().parent.parent)
    p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and "Traceback" not in err and err == ""
