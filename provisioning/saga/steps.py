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
class LookAgain:
    """Not ready yet: look again later (a build, a boot, a DNS record, a bucket becoming reachable).

    No worker process waits between two looks: each look is a short task and the interval is kept in
    the operation's row. Without `seconds` the engine takes the interval from the step's `poll`
    policy; either way it keeps the clock (how many looks, since when) across crashes and ends the
    step through `on_poll_timeout` once `poll_deadline` passes."""

    reason: str = ""
    seconds: float | None = None


@dataclass(frozen=True)
class PollPolicy:
    """The rhythm of a step's looks: `interval` after the first, growing by `multiplier` up to
    `max_interval`, and never more than `lateness` of the time waited so far, so that a thing that
    becomes ready is seen at most that share late (10 %: a 60 s build is seen by 66 s). `timeout`
    (seconds from the first look) bounds the polling; None: only the operation's own time limit."""

    interval: float = 2.0
    multiplier: float = 2.0
    max_interval: float = 30.0
    lateness: float = 0.1
    timeout: float | None = None

    def delay(self, looks: int, waited: float) -> float:
        """Seconds until the next look, after `looks` looks over `waited` seconds."""
        backoff = self.interval * self.multiplier ** max(0, looks - 1)
        return max(0.0, min(self.max_interval, backoff, max(self.interval, self.lateness * waited)))


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


Outcome = Done | RetryAfter | LookAgain | WaitForSignal


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
    poll: PollPolicy = PollPolicy()  # the rhythm of LookAgain without seconds

    def run(self, ctx: StepContext) -> Outcome:
        raise NotImplementedError

    def compensate(self, ctx: StepContext) -> None:
        """Undo what `run` did. Must be safe to run again, and on partial work."""

    def on_wait_timeout(self, ctx: StepContext) -> Outcome:
        raise StepTimedOut(f"Nobody acted in time: {self.title or self.name} timed out.")

    def poll_policy(self, ctx: StepContext) -> PollPolicy:
        """The polling rhythm for this operation (a saga may keep it in the operation's data)."""
        return self.poll

    def poll_deadline(self, ctx: StepContext) -> float | None:
        """When polling gives up (a Unix time), or None; by default `poll.timeout` after the first look."""
        timeout = self.poll_policy(ctx).timeout
        return ctx.polling_since + timeout if timeout is not None else None

    def on_poll_timeout(self, ctx: StepContext, reason: str) -> Outcome:
        """The step looked until its poll deadline and the thing is still not ready."""
        raise StepTimedOut(
            f"{self.title or self.name} did not finish in time{': ' + reason if reason else ''}. "
            "What the operation had created was removed; submit it again later."
        )

    def queue_for(self, operation_queue: str) -> str:
        return self.queue or operation_queue

    def __repr__(self) -> str:
        return f"<Step {self.name} weight={self.weight}>"
