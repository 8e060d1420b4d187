"""Unpaired and paired-by-seed differences, on cases worked by hand."""
import math
from types import SimpleNamespace

import pytest

from reports.differences import Difference, by_seed, fmt, paired, unpaired, verdict_2se

BASE = {0: 30.0, 1: 31.0, 2: 33.0}
OTHER = {0: 29.0, 1: 30.5, 2: 31.5}


def test_unpaired_by_hand():
    # means 31.333 and 30.333 -> -1.0; s_b^2 = (1.778 + 0.111 + 2.778) / 2 = 7/3,
    # s_o^2 = (1.778 + 0.028 + 1.361) / 2 = 19/12; SE = sqrt((7/3 + 19/12) / 3)
    d = unpaired(BASE.values(), OTHER.values())
    assert d.value == pytest.approx(-1.0)
    assert d.se == pytest.approx(math.sqrt((7 / 3 + 19 / 12) / 3))
    assert (d.n_base, d.n_other, d.paired) == (3, 3, False)
    assert fmt(d, 2, with_n=True) == "-1.00 ± 1.14 (n = 3 / 3)"
    assert verdict_2se(d, who="Self-KD") == "within 2 SE: no difference detected"


def test_paired_by_hand():
    # per-seed differences -1.0, -0.5, -1.5: mean -1.0, sd 0.5, SE 0.5 / sqrt(3) = 0.289
    d = paired(BASE, OTHER)
    assert d.value == pytest.approx(-1.0) and d.se == pytest.approx(0.5 / math.sqrt(3))
    assert (d.n, d.paired) == (3, True)
    assert fmt(d, 2, with_n=True) == "-1.00 ± 0.29 (n = 3)"
    assert verdict_2se(d, who="Self-KD") == "beyond 2 SE: Self-KD better"
    assert verdict_2se(d, lower_is_better=False, who="Self-KD") == "beyond 2 SE: Self-KD worse"


def test_paired_uses_only_seeds_both_sides_have():
    # seed 3 only in other, seed 2 None in base: pairs are seeds 0 and 1 (-1.0, -0.5)
    d = paired({0: 30.0, 1: 31.0, 2: None}, {0: 29.0, 1: 30.5, 2: 31.5, 3: 99.0})
    assert d.n == 2 and d.value == pytest.approx(-0.75)
    assert d.se == pytest.approx(math.sqrt(0.125) / math.sqrt(2))  # sd of (-1, -0.5) = 0.354
    assert verdict_2se(d) == "2 pairs: not called"


def test_one_value_and_no_value():
    one = paired({0: 1.0}, {0: 3.0})
    assert (one.value, one.se, one.n) == (2.0, None, 1)
    assert verdict_2se(one) == "one pair: no standard error" and fmt(one, 1, True) == "+2.0 (n = 1)"
    u = unpaired([1.0, 2.0], [3.0])
    assert u.value == pytest.approx(1.5) and u.se is None
    assert verdict_2se(u) == "no standard error (one value on a side)"
    empty = paired({}, {0: 1.0})
    assert empty.value is None and fmt(empty, 2) == "–" and verdict_2se(empty) == "–"


def test_zero_spread_of_differences_is_called():
    # identical per-seed differences: SE 0, any non-zero mean is beyond 2 SE; zero is not
    d = paired({0: 1.0, 1: 2.0, 2: 3.0}, {0: 2.0, 1: 3.0, 2: 4.0})
    assert d.se == 0.0 and verdict_2se(d) == "beyond 2 SE: method worse"
    assert verdict_2se(Difference(0.0, 0.0, 3, 3, paired=True)) == "within 2 SE: no difference detected"


def test_by_seed_averages_repeats_and_skips_missing():
    runs = [SimpleNamespace(seed=1, v=2.0), SimpleNamespace(seed=1, v=4.0),
            SimpleNamespace(seed=None, v=9.0), SimpleNamespace(seed=2, v=None),
            SimpleNamespace(seed=0, v=1.0)]
    assert by_seed(runs, lambda r: r.v) == {0: 1.0, 1: 3.0}
