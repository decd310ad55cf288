"""Random tests are reproducible: their seed is printed, and can be given back.

A failing run shows ``random seed: N`` in the test's captured output; rerun it with
``NETGUARD_TEST_SEED=N``. Hypothesis has its own profiles (tests/conftest.py).
"""

from __future__ import annotations

import os
import random


def seeded_rng(what: str) -> random.Random:
    """A ``random.Random`` whose seed comes from ``NETGUARD_TEST_SEED`` or is drawn and printed.

    Args:
        what: Names the test in the printed line.
    """
    raw = os.environ.get("NETGUARD_TEST_SEED", "").strip()
    seed = int(raw) if raw else random.SystemRandom().randrange(2**32)
    # Printed, not logged: pytest shows a failing test's captured stdout.
    print(f"{what}: random seed: {seed} (rerun with NETGUARD_TEST_SEED={seed})")
    return random.Random(seed)
