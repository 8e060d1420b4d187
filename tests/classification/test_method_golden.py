"""Every method's epoch lines on tiny CPU runs equal, bit for bit, the reference in
tests/fixtures/method_golden.json (tools/method_golden.py wrote it): a change to how any method
trains (its targets, its randomness, the order of its random draws) changes a number here."""
import json

import pytest
import torch

from tools.method_golden import CASES, GOLDEN, NPZ, run_all

REFERENCE = json.loads(GOLDEN.read_text())


def test_every_case_is_in_the_reference():
    assert set(REFERENCE["cases"]) == set(CASES)


@pytest.mark.skipif(REFERENCE["torch"] != torch.__version__,
                    reason=f"reference written with torch {REFERENCE['torch']}: kernels may round differently")
def test_epoch_lines_are_bit_identical_to_the_reference():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = run_all(cifar=NPZ.is_file())
    finally:
        torch.set_num_threads(threads)
    for name, lines in got.items():
        assert lines == REFERENCE["cases"][name], name
