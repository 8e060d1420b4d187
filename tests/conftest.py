import os
from pathlib import Path

import pytest
import torch

# Tests run on 2 cores: one intra-op thread keeps parallel test work from oversubscribing.
torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (CI always has it)")
    return SHARED_DATA
