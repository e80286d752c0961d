"""Hypothesis settings of the property tests: a bounded ``ci`` run and a ``long`` one.

The default run (``ci``) keeps every property test module well under a minute
together. The long fuzzing run multiplies every test's examples by
``CARDOS_FUZZ_FACTOR`` (default 100)::

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_fuzz*.py tests/test_bad_files.py

(see docs/robustness.md). Failing examples are stored in ``.hypothesis/`` and
replayed first by the next run.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

settings.register_profile("ci", deadline=None, suppress_health_check=_SUPPRESS, print_blob=True)
settings.register_profile("long", deadline=None, suppress_health_check=_SUPPRESS, print_blob=True,
                          max_examples=10_000)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    raise RuntimeError(f"HYPOTHESIS_PROFILE={PROFILE!r}: use ci (default) or long")
FACTOR = int(os.environ.get("CARDOS_FUZZ_FACTOR", "100")) if PROFILE == "long" else 1


def fuzz(examples: int) -> settings:
    """Settings for a property test: ``examples`` in CI, ``examples × FACTOR`` in the long run."""
    return settings(settings.get_profile(PROFILE), max_examples=examples * FACTOR)
