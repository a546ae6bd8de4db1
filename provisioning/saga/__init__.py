"""The saga engine: durable, crash-proof multi-step operations on Celery.

Flows define a `Saga` with `Step`s (see `steps.py`); services start it with `runner.start`. The engine
knows no flow: it reaches the subject only through the saga's `write_status` hook.
"""

from provisioning.saga.definition import Saga, StatusView, saga_for
from provisioning.saga.steps import (
    Done,
    LookAgain,
    PollPolicy,
    RetryAfter,
    RetryPolicy,
    Step,
    StepFailed,
    StepTimedOut,
    WaitForSignal,
)

__all__ = [
    "Done",
    "LookAgain",
    "PollPolicy",
    "RetryAfter",
    "RetryPolicy",
    "Saga",
    "StatusView",
    "Step",
    "StepFailed",
    "StepTimedOut",
    "WaitForSignal",
    "saga_for",
]
