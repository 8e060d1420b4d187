"""Scale-out: a 2-node torchrun rendezvous (c10d, localhost, gloo) trains the same Self-KD bank and
weights as one process with the same global batch; the launcher prints the torchrun line for
N nodes x G processes; the Slurm job array of a table is written (dry run), not submitted."""
import os
import re
import shlex
import socket
import subprocess
import sys

import pytest
import torch

from classification.cluster import SlurmJob, slurm_array, torchrun_args
from classification.launch import main as launch_main
from classification.train import main as train_main
from core.config import ConfigError
from core.runlog import read_run_log
from tests.conftest import REPO

TINY = ["model=small_cnn", "model_kwargs={norm: gn}", "data.name=digits", "data.num_workers=0",
        "data.train_subset=256", "data.test_subset=128", "epochs=2", "optim.batch_size=64",
        "method.name=selfkd", "progress=false", "run_id=r"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _checkpoint(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)


def test_two_node_rendezvous_matches_one_process(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    # the launcher's line for 2 nodes x 1 process, started twice: two agents meet at the c10d
    # rendezvous on localhost (the first to bind the port hosts its store), world size 2, gloo
    dist = torchrun_args(2, 1, f"127.0.0.1:{_free_port()}", "test")
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *dist, "-m", "classification.train",
                               *TINY, f"out_dir={tmp_path}/two"], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    # meanwhile the one-process run, in this process (one thread, like the workers)
    assert train_main([*TINY, f"out_dir={tmp_path}/one"]) == 0
    for p in nodes:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out[-3000:]
    a = read_run_log(tmp_path / "one/table1/r/log.jsonl", strict=True)
    b = read_run_log(tmp_path / "two/table1/r/log.jsonl", strict=True)
    assert a.meta["world_size"] == 1 and b.meta["world_size"] == 2
    cs = b.final["bank_checksums"]
    assert len(cs) == 2 and cs[0] == cs[1]  # both nodes ended with the same bank
    # Same global batches (64 = 2 x 32); the gradients differ only in summation order (the
    # all-reduce of two half-batch means vs one mean), so equal to float rounding.
    ca, cb = _checkpoint(tmp_path / "one/table1/r"), _checkpoint(tmp_path / "two/table1/r")
    assert ca["epoch"] == cb["epoch"] == 2
    torch.testing.assert_close(cb["method"]["probs"], ca["method"]["probs"], rtol=1e-3, atol=1e-5)
    assert ca["model"].keys() == cb["model"].keys()
    for k, w in ca["model"].items():
        torch.testing.assert_close(cb["model"][k], w, rtol=1e-4, atol=1e-5, msg=k)
    for k, v in a.final["metrics"].items():
        assert b.final["metrics"][k] == pytest.approx(v, rel=1e-4, abs=1e-4), k


def test_launcher_prints_the_torchrun_line(capsys):
    rows = ["--rows", "resnet50", "--methods", "selfkd", "--seeds", "0", "--dry-run", "out_dir=/nonexistent/runs"]
    assert launch_main(["table1", *rows, "--nnodes", "2", "--nproc-per-node", "8",
                        "--rdzv-endpoint", "node01:29500"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("todo  "))[6:]
    argv = shlex.split(line)
    assert argv[0] == "torchrun" and argv[argv.index("-m") + 1] == "classification.train"
    assert {"--nnodes=2", "--nproc-per-node=8", "--rdzv-backend=c10d", "--rdzv-endpoint=node01:29500",
            "--rdzv-id=table1-resnet50_selfkd_s0"} <= set(argv)
    assert not any(a.startswith("--node-rank") for a in argv)  # one line for every node
    assert "resume=true" in argv and "on all 2 nodes" in out
    # one node, G processes: a standalone rendezvous
    assert launch_main(["table1", *rows, "--nproc-per-node", "4"]) == 0
    assert "todo  torchrun --standalone --nproc-per-node=4 -m classification.train" in capsys.readouterr().out
    # one process: plain python, as before
    assert launch_main(["table1", *rows]) == 0
    assert "todo  python -m classification.train --config" in capsys.readouterr().out


@pytest.mark.parametrize("argv, msg", [
    (["--nnodes", "2"], "needs --rdzv-endpoint HOST:PORT"),
    (["--nnodes", "2", "--rdzv-endpoint", "node01"], "must be HOST:PORT"),
    (["--nproc-per-node", "0"], "must be >= 1"),
    (["--slurm", "SLURM", "--dry-run", "--slurm-opt=partition"], "takes KEY=VALUE"),
    (["--slurm", "SLURM", "--dry-run", "--slurm-opt=array=0-3"], "set by the launcher"),
    (["--slurm", "SLURM"], "sbatch is not on PATH"),  # not a Slurm machine, and no --dry-run
])
def test_launcher_bad_scale_out_arguments(tmp_path, capsys, monkeypatch, argv, msg):
    monkeypatch.setattr("shutil.which", lambda name: None)
    argv = [a.replace("SLURM", str(tmp_path / "job")) for a in argv]
    assert launch_main(["table1", "--rows", "resnet50", "--seeds", "0", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and err.count("\n") == 1, err
    assert not (tmp_path / "job").exists()


def test_cskd_refuses_more_than_one_process(capsys):
    assert launch_main(["table1", "--rows", "densenet121", "--methods", "cskd", "--seeds", "0",
                        "--nproc-per-node", "2", "--dry-run"]) == 2
    assert "method cskd runs in one process" in capsys.readouterr().err


def _cases(script: str) -> dict[int, list[str]]:
    return {int(i): shlex.split(a) for i, a in re.findall(r"^  (\d+)\) ARGS=\((.*)\) ;;$", script, re.M)}


def test_slurm_dry_run_writes_the_job_array(tmp_path, capsys):
    runs, job = tmp_path / "runs", tmp_path / "job"
    common = ["model=small_cnn", "data.name=digits", "data.num_workers=0", "data.train_subset=64",
              "data.test_subset=64", "epochs=1", "progress=false", f"out_dir={runs}"]
    # one run of the table is complete: the array holds only the other two
    assert launch_main(["table1", *common, "--rows", "resnet50", "--methods", "baseline", "--seeds", "0"]) == 0
    capsys.readouterr()
    assert launch_main(["table1", *common, "--rows", "resnet50", "--seeds", "0", "1", "--slurm", str(job),
                        "--dry-run", "--slurm-opt=partition=gpu", "--slurm-opt=time=24:00:00",
                        "--max-parallel", "4"]) == 0
    out = capsys.readouterr().out
    assert "5 of 6 runs to do" in out and "submit with: sbatch" in out
    script = (job / "table1.sbatch").read_text()
    assert os.access(job / "table1.sbatch", os.X_OK) and (job / "logs").is_dir()
    assert subprocess.run(["bash", "-n", str(job / "table1.sbatch")]).returncode == 0
    for opt in ("--array=0-4%4", "--nodes=1", "--ntasks-per-node=1", "--gpus-per-node=1", "--requeue",
                "--open-mode=append", f"--output={job}/logs/%A_%a.out", "--partition=gpu", "--time=24:00:00"):
        assert f"#SBATCH {opt}\n" in script, opt
    assert f"cd {shlex.quote(os.getcwd())}\n" in script
    assert f'srun {shlex.quote(sys.executable)} -m classification.train "${{ARGS[@]}}"' in script
    cases = _cases(script)
    assert sorted(cases) == list(range(5))
    manifest = (job / "runs.txt").read_text().splitlines()
    seen = set()
    for i, args in cases.items():
        assert args[0] == "--config" and args[-1] == "resume=true" and f"out_dir={runs}" in args
        cfg = os.path.basename(args[1]).removesuffix(".yaml")
        seed = next(a for a in args if a.startswith("seed="))
        seen.add((cfg, seed))
        assert manifest[i] == f"{i}\tpython -m classification.train {shlex.join(args)}"
    assert ("table1_resnet50_baseline", "seed=0") not in seen and len(seen) == 5


def test_slurm_multi_node_dry_run_needs_no_endpoint(tmp_path, capsys):
    job = tmp_path / "job"
    assert launch_main(["table2", "--rows", "resnet152", "--methods", "selfkd", "--seeds", "0", "--nnodes", "2",
                        "--nproc-per-node", "8", "--slurm", str(job), "--dry-run", f"out_dir={tmp_path}/runs"]) == 0
    assert "todo  python -m classification.train" in capsys.readouterr().out  # the job file wraps it
    script = (job / "table2.sbatch").read_text()
    assert "#SBATCH --nodes=2\n" in script and "-m torch.distributed.run" in script


def test_slurm_multi_node_job_runs_torchrun_per_node(tmp_path):
    script = slurm_array("table2", [["--config", "c.yaml", "seed=0", "resume=true"]], tmp_path,
                         SlurmJob("/venv/bin/python", tmp_path / "job", nnodes=2, nproc=8))
    assert "#SBATCH --nodes=2\n" in script and "#SBATCH --gpus-per-node=8\n" in script
    assert "#SBATCH --ntasks-per-node=1\n" in script  # srun starts one torchrun agent per node
    launch = script.strip().splitlines()[-1]
    assert launch.startswith("srun --kill-on-bad-exit=1 /venv/bin/python -m torch.distributed.run ")
    for part in ('--nnodes="$SLURM_JOB_NUM_NODES"', "--nproc-per-node=8", "--rdzv-backend=c10d",
                 '--rdzv-endpoint="$HEAD:$PORT"', '-m classification.train "${ARGS[@]}"'):
        assert part in launch
    (tmp_path / "s.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "s.sh")]).returncode == 0
    with pytest.raises(ConfigError):
        torchrun_args(3, 1, None, "x")
