"""The public way to add a step to a saga (see README, "Writing a step").

A step is a small class with a `name`, a `title` for people, a `weight` (steps run in weight order;
equal weights run in parallel as a Celery chord), a retry policy and `run(ctx)`, which returns one of
the outcomes below or raises `StepFailed`. A step may run again after a crash or a lost message, so it
looks at `ctx.data` and at the provider before it creates anything, and passes idempotency tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provisioning.saga.context import StepContext


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how fast a step that raised an unexpected error runs again."""

    max_attempts: int = 5
    backoff: float = 1.0  # seconds before the second attempt
    multiplier: float = 2.0
    max_interval: float = 300.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after `attempt` (1-based) failed."""
        return min(self.max_interval, self.backoff * self.multiplier ** max(0, attempt - 1))


@dataclass(frozen=True)
class Done:
    """The step finished; `data` is merged into the operation's persisted data."""

    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryAfter:
    """Run the step again after `seconds` (the work is not finished yet: polling, a busy provider)."""

    seconds: float
    reason: str = ""


@dataclass(frozen=True)
class WaitForSignal:
    """Wait until somebody sends `signal` (or `cancel`), at most until `deadline`.

    `instructions` tell the person who must act exactly what to do; they are shown on the subject.
    When the deadline passes, the step's `on_wait_timeout` decides (by default the saga times out).
    """

    signal: str
    deadline: datetime | timedelta
    instructions: str = ""
    message: str = ""


Outcome = Done | RetryAfter | WaitForSignal


class StepFailed(Exception):
    """A permanent failure: the saga compensates its finished steps and ends failed with `message`.

    `message` is for the person (what happened, what to do); `detail` is for hostmasters.
    """

    end_state = "failed"

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class StepTimedOut(StepFailed):
    """A wait or a build ran out of time: the saga compensates and ends timed out."""

    end_state = "timed_out"


class Step:
    name: str = ""
    title: str = ""
    weight: int = 1
    retry: RetryPolicy = RetryPolicy()
    heartbeat_timeout: float | None = None  # seconds; None: SAGA_HEARTBEAT_TIMEOUT
    queue: str | None = None  # None: the operation's queue (its provider's)
    # True for a step that only reads (the database, DNS) and never calls ctx.save or ctx.heartbeat:
    # a request may run it without a claim to answer with what the saga waits for (runner.run_here).
    reads_only: bool = False

    def run(self, ctx: StepContext) -> Outcome:
        raise NotImplementedError

    def compensate(self, ctx: StepContext) -> None:
        """Undo what `run` did. Must be safe to run again, and on partial work."""

    def on_wait_timeout(self, ctx: StepContext) -> Outcome:
        raise StepTimedOut(f"Nobody acted in time: {self.title or self.name} timed out.")

    def queue_for(self, operation_queue: str) -> str:
        return self.queue or operation_queue

    def __repr__(self) -> str:
        return f"<Step {self.name} weight={self.weight}>"
