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
        assert _keys_of(lines, REFERENCE["cases"][name]) == REFERENCE["cases"][name], name


def _keys_of(got, ref):
    """got cut to the keys the reference has, at every level: a metric added to the records later
    (e.g. SmoothECE, the temperature-scaled block) is not a change in how a method trains; every
    value the reference holds must still be there, bit for bit."""
    if isinstance(got, dict) and isinstance(ref, dict):
        return {k: _keys_of(got[k], ref[k]) if k in got else got.get(k) for k in ref}
    if isinstance(got, list) and isinstance(ref, list) and len(got) == len(ref):
        return [_keys_of(g, r) for g, r in zip(got, ref)]
    return got


def test_keys_of_keeps_every_reference_key():
    ref = {"a": 1, "b": [{"c": 2}]}
    assert _keys_of({"a": 1, "b": [{"c": 2, "new": 3}], "x": 0}, ref) == ref
    assert _keys_of({"a": 1, "b": [{"c": 2.5}]}, ref) != ref  # a changed value stays a change
    assert _keys_of({"b": [{"c": 2}]}, ref) != ref  # so does a missing key
