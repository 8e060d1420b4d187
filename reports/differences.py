"""Method minus baseline over seeds: the unpaired and the paired-by-seed difference.

Runs of two methods with the same seed share their initialisation and data order (a Self-KD run's
first epoch equals the baseline's line for line), so the per-seed differences remove the
seed-to-seed spread both sides share. The pre-registrations fixed the unpaired analysis; the
reports show it as primary and the paired one beside it, labelled as not pre-registered.

    unpaired:  d = mean(other) - mean(base),       SE = sqrt(s_o^2 / n_o + s_b^2 / n_b)
    paired:    d = mean_s(other_s - base_s),       SE = sd_s(other_s - base_s) / sqrt(n)

over the n seeds both sides have (s: sample standard deviations, ddof = 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .logs import Cell

UNPAIRED_LABEL = "pre-registered rule: unpaired"
PAIRED_LABEL = "paired by seed (not pre-registered)"
# fewest pairs for which the paired difference is called at all (two pairs leave one degree of
# freedom: a "2 standard errors" call would mean little)
MIN_PAIRS_FOR_CALL = 3


@dataclass(frozen=True)
class Difference:
    """other minus base. value None: a side has no value; se None: too few values for one.
    n_base, n_other: the values on each side (paired: both are the number of pairs)."""
    value: float | None
    se: float | None
    n_base: int
    n_other: int
    paired: bool = False

    @property
    def n(self) -> int:
        return min(self.n_base, self.n_other)

    def calls(self, k: float = 2.0) -> bool | None:
        """|value| > k standard errors, or None when there is no standard error."""
        if self.value is None or self.se is None:
            return None
        return abs(self.value) > k * self.se


def _values(xs) -> list[float]:
    return [float(x) for x in xs if x is not None]


def unpaired(base, other) -> Difference:
    """Difference of the means of two lists of values (None entries ignored), with the standard
    error sqrt(s_o^2/n_o + s_b^2/n_b) when each side has two values or more."""
    b, o = _values(base), _values(other)
    d, se = Cell.of(o).minus(Cell.of(b))
    return Difference(d, se, len(b), len(o))


def paired(base: dict, other: dict) -> Difference:
    """Mean of the per-seed differences other[s] - base[s] over the seeds both dicts hold with a
    value, and its standard error sd(differences) / sqrt(n) (None with one pair)."""
    seeds = [s for s in base if s in other and base[s] is not None and other[s] is not None]
    diffs = [float(other[s]) - float(base[s]) for s in seeds]
    c = Cell.of(diffs)
    se = c.std / math.sqrt(c.n) if c.std is not None else None
    return Difference(c.mean, se, c.n, c.n, paired=True)


def by_seed(runs, value) -> dict:
    """{seed: value(run)} over the runs with a seed and a value; repeats of one seed (a rerun)
    count once, as the mean of their values."""
    acc: dict = {}
    for r in runs:
        v = value(r)
        if r.seed is None or v is None:
            continue
        acc.setdefault(r.seed, []).append(float(v))
    return {s: sum(vs) / len(vs) for s, vs in sorted(acc.items(), key=lambda kv: str(kv[0]))}


def verdict_2se(d: Difference, lower_is_better: bool = True, who: str = "method") -> str:
    """The 2-standard-error call: '<who> better/worse (beyond 2 SE)' or 'no difference detected
    (within 2 SE)'; no call without a standard error, or for fewer than MIN_PAIRS_FOR_CALL pairs."""
    if d.value is None:
        return "–"
    if d.se is None:
        return "no standard error (one value on a side)" if not d.paired else "one pair: no standard error"
    if d.paired and d.n < MIN_PAIRS_FOR_CALL:
        return f"{d.n} pairs: not called"
    if not d.calls(2.0):
        return "within 2 SE: no difference detected"
    better = (d.value < 0) == lower_is_better
    return f"beyond 2 SE: {who} {'better' if better else 'worse'}"


def fmt(d: Difference, decimals: int, with_n: bool = False) -> str:
    """'+1.08 ± 0.26' (the standard error when there is one), '(n = 3)' appended with with_n."""
    if d.value is None:
        return "–"
    text = f"{d.value:+.{decimals}f}" + (f" ± {d.se:.{decimals}f}" if d.se is not None else "")
    if with_n:
        text += f" (n = {d.n})" if d.paired else f" (n = {d.n_base} / {d.n_other})"
    return text
