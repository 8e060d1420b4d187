"""core/ is a library: it must not import any task package (docs/design.md, "Layout")."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"
TASKS = {"classification", "detection", "translation", "reports"}


def test_core_imports_no_task_package():
    offenders = []
    for f in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{f.name}: {n}" for n in names if n.split(".")[0] in TASKS]
    assert not offenders, offenders


def test_evaluation_never_imports_training():
    """A task's evaluate.py scores a finished run without its training script (torchvision's
    references/detection: engine.py holds evaluate, train.py only sets a run up)."""
    offenders = []
    for task in ("classification", "detection", "translation"):
        f = CORE.parent / task / "evaluate.py"
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if (node.level == 1 and module.split(".")[0] == "train") or module == f"{task}.train":
                    offenders.append(f"{task}/evaluate.py: {'.' * node.level}{module}")
    assert not offenders, offenders


def test_no_private_name_is_imported_across_modules():
    """A `_name` stays in its module; what another module needs is public (an `import x as _y`
    alias of a public name is fine)."""
    offenders = []
    for package in ("core", "classification", "detection", "translation", "reports"):
        for f in (CORE.parent / package).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                    offenders += [f"{f.relative_to(CORE.parent)}: {a.name}" for a in node.names
                                  if a.name.startswith("_") and not a.name.startswith("__")]
    assert not offenders, offenders
