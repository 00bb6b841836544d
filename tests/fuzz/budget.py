"""Hypothesis settings and example budgets for the fuzz tests (loaded by this directory's conftest).

The default profile, `ci`, is derandomized (the same examples on every run, no example
database) and runs each test's own bounded number of examples: the whole fuzz run takes well
under a minute. `THETA_FUZZ_SCALE=20` runs twenty times as many; `THETA_FUZZ_PROFILE=random`
draws fresh examples each run (use both to hunt, then add what fails to the corpus).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("random", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("THETA_FUZZ_PROFILE", "ci"))

SCALE = float(os.environ.get("THETA_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    """`n` examples, scaled by THETA_FUZZ_SCALE."""
    return max(1, int(n * SCALE))
