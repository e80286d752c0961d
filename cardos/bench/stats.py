"""Timing samples and their summaries (medians and p99, in microseconds).

Every measurement is a list of individual samples taken with
``time.perf_counter_ns`` around one operation, so the same code measures
our card, vicc and the transport floor, and p99 is a real percentile.
"""
from __future__ import annotations

import gc
import statistics
import time

_clock = time.perf_counter_ns


def sample(operation, n: int, warmup: int = 0) -> list[int]:
    """Run ``operation()`` ``warmup + n`` times; the last ``n`` durations in ns.

    The garbage collector is paused while sampling (as pyperf does), so a
    collection triggered by one side does not land in the other's numbers.
    """
    for _ in range(warmup):
        operation()
    out = [0] * n
    clock = _clock
    enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(n):
            t0 = clock()
            operation()
            out[i] = clock() - t0
    finally:
        if enabled:
            gc.enable()
    return out


def percentile(sorted_values: list, q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def summary(samples_ns: list[int]) -> dict:
    """``{"n", "median_us", "p99_us", "mean_us", "min_us"}`` of samples in ns."""
    if not samples_ns:
        return {"n": 0, "median_us": None, "p99_us": None, "mean_us": None, "min_us": None}
    s = sorted(samples_ns)
    return {"n": len(s), "median_us": round(statistics.median(s) / 1000.0, 3),
            "p99_us": round(percentile(s, 99) / 1000.0, 3),
            "mean_us": round(sum(s) / len(s) / 1000.0, 3), "min_us": round(s[0] / 1000.0, 3)}


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b rounded, or None when either is missing."""
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)
