"""Shared fixtures: a tiny prepared Multi30k (300 training pairs) and tiny-model overrides."""
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED_DATA

# 2-layer 64-dim Transformer, 3 epochs of 300 pairs (10 updates an epoch): ~10 s a run on CPU.
TINY = [
    "model.layers=2", "model.embed_dim=64", "model.ffn_dim=128", "model.heads=2",
    "epochs=3", "optim.max_tokens=1024", "optim.warmup_updates=10", "optim.lr=0.001",
    "data.num_workers=0", "device=cpu", "eval.beam=2", "log_interval=1000",
]


@pytest.fixture(scope="session")
def tiny_multi30k(tmp_path_factory) -> Path:
    pytest.importorskip("fairseq")
    if not (SHARED_DATA / "multi30k").is_dir():
        pytest.skip(f"{SHARED_DATA / 'multi30k'} is absent (CI always has it)")
    from core.config import load_config
    from translation.data import PrepConfig, prepare

    out = tmp_path_factory.mktemp("multi30k_de_en")
    cfg = load_config(PrepConfig, REPO / "translation/configs/prep/multi30k_de_en.yaml", [
        f"raw_path={SHARED_DATA / 'multi30k'}", f"out_dir={out}",
        "max_train_pairs=300", "max_eval_pairs=40", "bpe_merges=500",
    ])
    prepare(cfg)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_multi30k, tmp_path_factory) -> Path:
    """checkpoint_best.pt of a baseline on tiny_multi30k (de -> en, the TINY model). 20 epochs at
    lr 0.003 (~15 s on CPU) so that hypotheses differ from sentence to sentence (39 of 40 test
    hypotheses distinct), which alignment checks need; 2 epochs give "a a a" for everything."""
    from translation.train import main
    out = tmp_path_factory.mktemp("runs")
    argv = (["--config", str(REPO / "translation/configs/multi30k_de_en_baseline.yaml")] + TINY
            + ["epochs=20", "optim.lr=0.003", f"data.prep_dir={tiny_multi30k}",
               f"out_dir={out}", "run_id=tiny"])
    assert main(argv) == 0
    return out / "table4" / "tiny" / "checkpoints" / "checkpoint_best.pt"
