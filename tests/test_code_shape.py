"""Shape rules the code keeps, checked on its syntax tree: behaviour follows a method's registered
attributes (core.methods), never a test of its name; no function in classification/ passes more
than a handful of values (a longer list is a small object missing)."""
import ast

from core.methods import method_names
from tests.conftest import REPO

PACKAGES = ("classification", "core", "detection", "reports", "tools", "translation")
REGISTRY = REPO / "core" / "methods.py"  # the one place a name may be compared
STRING_TESTS = ("startswith", "endswith", "find", "index", "count")
MAX_PARAMETERS = 6


def name_tests(source: str, names) -> list[tuple[int, str]]:
    """(line, code) of each comparison (==, !=, in, not in, ...) or str.startswith/endswith/...
    call with a string in `names` as an operand (alone or inside a tuple, list or set literal)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in STRING_TESTS:
            operands = list(node.args)
        else:
            continue
        for operand in operands:
            values = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
            if any(isinstance(v, ast.Constant) and v.value in names for v in values):
                out.append((node.lineno, ast.unparse(node)))
                break
    return out


def test_the_check_finds_name_tests():
    names = {"selfkd", "baseline"}
    src = ('if m == "selfkd": pass\nx = m in ("baseline", "ls")\ny = m.endswith("selfkd")\n'
           'z = m == other\nw = {"selfkd": 1}[m]\n')
    assert [line for line, _ in name_tests(src, names)] == [1, 2, 3]


def test_no_method_name_is_tested_outside_the_registry():
    names = set(method_names())
    offenders = [f"{f.relative_to(REPO)}:{line}: {code}"
                 for pkg in PACKAGES for f in sorted((REPO / pkg).rglob("*.py")) if f != REGISTRY
                 for line, code in name_tests(f.read_text(), names)]
    assert not offenders, offenders


def parameter_count(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Every parameter (positional-only, positional, *args, keyword-only, **kwargs) but a method's
    self / cls."""
    a = fn.args
    params = [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg))]
    if params and params[0].arg in ("self", "cls"):
        params = params[1:]
    return len(params)


def test_parameter_count():
    fn = ast.parse("def f(self, a, b=1, *c, d, **e): pass").body[0]
    assert parameter_count(fn) == 5


def test_no_function_in_classification_takes_more_than_six_parameters():
    wide = []
    for f in sorted((REPO / "classification").rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and parameter_count(node) > MAX_PARAMETERS:
                wide.append(f"{f.relative_to(REPO)}:{node.lineno} {node.name}: {parameter_count(node)}")
    assert not wide, wide
