"""Sagas whose definition changes between two worker versions (tests/engine/test_versions.py).

`TEST_SAGA_DEFINITION` picks the code a process runs: "1" (the old deploy), "2" (the new one), or
"both" (the default: the tests' own process, which starts operations on either version).
- test_kept: version 2 adds `x` and moves `b` after `c`, and keeps version 1 (`current = False`), so
  an operation started on version 1 finishes on a, b, c.
- test_upgraded: version 2 renames `b` to `b2` and adds `d`, and declares the upgrade from version 1.
- test_dropped: version 2 removes `b` and keeps no trace of version 1: its operations are held.
"""

import os

from provisioning.saga import Saga
from tests.sagas import PlannedStep

DEFINITION = os.environ.get("TEST_SAGA_DEFINITION", "both")
OLD = DEFINITION == "1"
NEW = DEFINITION in ("2", "both")


def steps(*names: str) -> list[PlannedStep]:
    return [PlannedStep(name, weight) for weight, name in enumerate(names, 1)]


class KeptV1(Saga):
    kind = "test_kept"
    version = "1"
    current = OLD
    steps = steps("a", "b", "c")


if NEW:

    class KeptV2(Saga):
        kind = "test_kept"
        version = "2"
        steps = steps("a", "x", "c", "b")


if OLD or DEFINITION == "both":

    class UpgradedV1(Saga):
        kind = "test_upgraded"
        version = "1"
        current = OLD
        steps = steps("a", "b", "c")

    class DroppedV1(Saga):
        kind = "test_dropped"
        version = "1"
        current = OLD
        steps = steps("a", "b", "c")


if NEW:

    class UpgradedV2(Saga):
        kind = "test_upgraded"
        version = "2"
        steps = steps("a", "b2", "c", "d")
        upgrades = {"1": {"b": "b2"}}

    class DroppedV2(Saga):
        kind = "test_dropped"
        version = "2"
        steps = steps("a", "c")
