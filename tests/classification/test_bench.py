import json
import subprocess
from pathlib import Path

from classification.bench import main

REPO = Path(__file__).resolve().parents[2]


def test_bench_prints_side_by_side_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--data", "synthetic", "--n", "256", "--steps", "2", "--warmup", "1", "--batch", "32",
                 "--workers", "0", "--model", "small_cnn", "--rounds", "3", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| official | selfkd |" in text and "| fast | selfkd |" in text and "| fast | baseline |" in text
    assert "fast / official" in text and "Self-KD overhead" in text
    res = json.loads(out.read_text())
    assert len(res["rows"]) == 3 and all(r["images_per_s"] > 0 for r in res["rows"])
    # interleaved rounds: every configuration timed once per round; the ratios are paired medians
    assert all(len(r["ms_per_step_rounds"]) == 3 for r in res["rows"])
    t = [r["ms_per_step_rounds"] for r in res["rows"]]
    assert res["speedup_rounds"] == [o / f for o, f in zip(t[0], t[1])]
    assert res["speedup"] == sorted(res["speedup_rounds"])[1]
    assert res["selfkd_overhead_pct"] == sorted(100 * (s / b - 1) for s, b in zip(t[1], t[2]))[1]


def test_bench_missing_data_one_line_error(capsys):
    assert main(["--data", "/nonexistent.npz"]) == 2
    assert capsys.readouterr().err.strip() == "error: data file not found: /nonexistent.npz"


def test_evidence_scripts_parse():
    for script in ("tools/gpu_evidence.sh", "tools/cpu_block1.sh", "tools/fetch_gpu_wheels.sh", "tools/cpu_regime.sh",
                   "tools/cpu_study.sh"):
        r = subprocess.run(["bash", "-n", str(REPO / script)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
