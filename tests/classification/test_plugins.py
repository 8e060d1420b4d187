"""Your own dataset and model: registered in your module, named in `imports`, trained
by the CLI in a fresh process; a missing module is one line."""
import subprocess
import sys
from pathlib import Path

from core.runlog import read_run_log

REPO = Path(__file__).resolve().parents[2]


def test_own_dataset_and_model_through_the_cli(tmp_path):
    r = subprocess.run([sys.executable, "-m", "classification.train", "imports=[tests.fixtures.plugins.my_plugin]",
                        "data.name=my_blobs", "model=my_mlp", "epochs=3", "optim.lr=0.05", "optim.batch_size=32",
                        "optim.milestones=[2]", "data.num_workers=0", "progress=false", f"out_dir={tmp_path}"],
                       cwd=REPO, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    log = read_run_log(tmp_path / "table1/my_mlp_baseline_s0/log.jsonl", strict=True)
    assert log.meta["dataset"] == "my_blobs" and log.meta["model"] == "my_mlp"
    assert log.final["metrics"]["top1_err"] < 20.0  # four well separated blobs


def test_missing_plugin_module_is_one_line(tmp_path, capsys):
    from classification.train import main
    assert main(["imports=[no_such_module]", "data.name=digits", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot import 'no_such_module'" in err[0] and "PYTHONPATH" in err[0]
    assert not any(tmp_path.iterdir())
