"""Detection fixtures: the real 10-image VOC sample in ../shared/data/voc-sample."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def voc_sample(shared_data) -> Path:
    devkit = shared_data / "voc-sample" / "VOCdevkit"
    if not devkit.is_dir():
        pytest.skip(f"{devkit} is absent (CI always has it)")
    return devkit
