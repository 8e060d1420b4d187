"""docs/gpu_plan.md (tools/gpu_plan.py): a GPU-hour estimate for every row config of every table,
and the arithmetic from FLOPs to hours."""
import importlib.util
import re

from tests.conftest import REPO

_spec = importlib.util.spec_from_file_location("gpu_plan", REPO / "tools" / "gpu_plan.py")
gpu_plan = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_plan)

PLAN = (REPO / "docs" / "gpu_plan.md").read_text(encoding="utf-8")


def _plan_rows() -> list[list[str]]:
    block = PLAN.split(gpu_plan.BEGIN)[1].split(gpu_plan.END)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()
            if re.match(r"^\| (table\d|fig2) \|", line)]


def test_every_row_config_has_an_estimate():
    rows = _plan_rows()
    per_run = [r for r in rows if len(r) == 9]
    for prefix in ("table1", "table2", "fig2"):
        configs = sorted(p.stem[len(prefix) + 1:] for p in (REPO / "classification" / "configs").glob(f"{prefix}_*.yaml"))
        planned = sorted(f"{r[1]}_{r[2]}" for r in per_run if r[0] == prefix)
        assert planned == configs, prefix
    translation = sorted(p.stem for p in (REPO / "translation" / "configs").glob("*.yaml"))
    assert sorted(f"{r[1]}_{r[2]}" for r in per_run if r[0] == "table4") == translation
    assert sorted(r[2] for r in per_run if r[0] == "table3") == ["baseline", "ls", "selfkd"]
    for r in per_run:
        assert float(r[6].replace(",", "")) > 0 and float(r[7].replace(",", "")) > 0
    assert "assumed" in PLAN and "estimate" in PLAN


def test_hours_from_flops():
    rate = 25e12
    rows = [("table1", "r", "selfkd", "m", 1e9, 300, rate * 3600 * 2.0)]  # 2 GPU-hours of FLOPs
    text = gpu_plan.render(rows, rate, 40e9, "note")
    line = next(l for l in text.splitlines() if l.startswith("| table1 | r |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[6] == "2.0" and cells[7] == "6.0"   # a run; 3 seeds
    assert "| table1 | 6.0 |" in text
    # a 6-layer d512 / ff1024 Transformer with a 10k vocabulary: the ~37M of the paper's model
    assert 35e6 < gpu_plan._transformer_params(6, 512, 1024, 10_000) < 40e6
