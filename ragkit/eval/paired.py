"""Is system A really better than system B? A paired test over the same queries.

Per-query scores of two systems differ by chance as well as by merit. The test asks how often a
difference as large as the one seen would appear if the two were interchangeable (the p-value),
and how far the mean difference could plausibly be from the one seen (the confidence interval).
`mean_ci` gives the same bootstrap interval for one system's mean score, for error bars.

>>> r = paired_test([0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, 0.5])
>>> round(r.mean_diff, 3), r.p_value
(0.25, 0.125)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["MeanCI", "PairedResult", "mean_ci", "paired_test"]

@dataclass(frozen=True)
class PairedResult:
    """Mean per-query difference a - b, its bootstrap confidence interval and a two-sided p-value."""

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int  # queries compared
    confidence: float = 0.95

    def __str__(self) -> str:
        return (f"mean difference {self.mean_diff:+.4f} ({self.confidence:.0%} CI {self.ci_low:+.4f} to "
                f"{self.ci_high:+.4f}), p = {self.p_value:.4f}, n = {self.n} queries")

    def to_frame(self) -> pd.DataFrame:
        """Return the result as a one-row DataFrame."""
        return pd.DataFrame([self.__dict__])


@dataclass(frozen=True)
class MeanCI:
    """A mean over queries and its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int  # queries
    confidence: float = 0.95

    def __str__(self) -> str:
        return f"{self.mean:.4f} ({self.confidence:.0%} CI {self.low:.4f} to {self.high:.4f}, n = {self.n})"


def _bootstrap_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Return the means of `n_resamples` resamples of `values` drawn with replacement (bounded memory)."""
    n = len(values)
    batch = max(1, 4_000_000 // n)  # resamples per block
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, batch):
        size = min(batch, n_resamples - start)
        means[start : start + size] = values[rng.integers(0, n, size=(size, n))].mean(axis=1)
    return means


def _check(confidence: float, n_resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, e.g. 0.95; got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")


def mean_ci(scores, n_resamples: int = 10_000, seed: int = 0, confidence: float = 0.95) -> MeanCI:
    """Return the mean of per-query scores with its bootstrap percentile confidence interval.

    The queries are resampled with replacement `n_resamples` times; the interval holds the middle
    `confidence` share of the resampled means. It says how much the mean could move with another
    sample of questions like these, the error bar of one system's score (`paired_test` is the one
    to use for the *difference* between two systems on the same questions: much narrower, because
    what makes a question hard for one makes it hard for the other).

    >>> r = mean_ci([1, 1, 1, 0])            # three questions of four found: mean 0.75
    >>> r.mean, r.low, r.high                # a resample may draw the miss 0 to 4 times
    (0.75, 0.25, 1.0)
    >>> mean_ci([0.5, 0.5]).low == mean_ci([0.5, 0.5]).high == 0.5   # no spread, no width
    True
    """
    _check(confidence, n_resamples)
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"scores must be a non-empty 1-d series of per-query scores, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("scores hold NaN or infinite values; evaluate() gives every query a number")
    means = _bootstrap_means(values, n_resamples, np.random.default_rng(seed))
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return MeanCI(float(values.mean()), float(low), float(high), len(values), confidence)


def _paired(a, b) -> np.ndarray:
    """Return the per-query differences a - b, aligned on query id when both are Series."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        if a.index.has_duplicates or b.index.has_duplicates:
            raise ValueError("a query appears twice in a or b; pass one score per query")
        only_a, only_b = a.index.difference(b.index), b.index.difference(a.index)
        if len(only_a) or len(only_b):
            raise ValueError(f"a and b must score the same queries: {len(only_a)} only in a "
                             f"(e.g. {list(only_a[:3])}), {len(only_b)} only in b (e.g. {list(only_b[:3])}); "
                             "evaluate both runs with the same qrels")
        b = b.reindex(a.index)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be two 1-d series of per-query scores of one length, got shapes "
                         f"{a.shape} and {b.shape}")
    if len(a) == 0:
        raise ValueError("no queries to compare")
    d = a - b
    if not np.all(np.isfinite(d)):
        raise ValueError("a or b holds NaN or infinite scores; evaluate() gives every query a number")
    return d


def paired_test(a, b, n_resamples: int = 10_000, seed: int = 0, confidence: float = 0.95) -> PairedResult:
    """Return how much a beats b on average, how sure we can be (CI), and a p-value.

    `a` and `b` are per-query scores of two systems on the same queries, e.g. two `evaluate(...)`
    columns (pandas Series are matched by query id). With d = a - b per query:

    - confidence interval: paired bootstrap percentile interval of mean(d) (resample queries
      with replacement `n_resamples` times);
    - p-value: two-sided paired randomisation test: if a and b were interchangeable, each d
      would be as likely to be -d; p is the share of random sign flips whose |mean| is at least
      the observed |mean(d)|, counting the observed one, (hits + 1) / (n_resamples + 1). With
      2**n <= n_resamples (n < 14 by default) all 2**n sign flips are enumerated: an exact p.

    The same `seed` gives the same numbers.

    >>> r = paired_test([0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, 0.5])
    >>> round(r.mean_diff, 3), r.p_value    # exact: only 2 of 16 sign flips reach |mean| 0.25
    (0.25, 0.125)
    """
    _check(confidence, n_resamples)
    d = _paired(a, b)
    n = len(d)
    observed = float(d.mean())
    rng = np.random.default_rng(seed)
    batch = max(1, 4_000_000 // n)  # sign flips per block: bounded memory for many queries
    means = _bootstrap_means(d, n_resamples, rng)
    alpha = 1 - confidence
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])

    tolerance = 1e-12 * max(1.0, float(np.abs(d).max()))  # float noise must not decide a tie
    if 2**n <= n_resamples:  # exact: every assignment of signs once
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        p = float(np.mean(np.abs(signs @ d) / n >= abs(observed) - tolerance))
    else:
        hits = 0
        for start in range(0, n_resamples, batch):
            size = min(batch, n_resamples - start)
            signs = 1 - 2 * rng.integers(0, 2, size=(size, n), dtype=np.int8)
            hits += int(np.count_nonzero(np.abs(signs @ d) / n >= abs(observed) - tolerance))
        p = (hits + 1) / (n_resamples + 1)
    return PairedResult(observed, float(low), float(high), min(1.0, p), n, confidence)
