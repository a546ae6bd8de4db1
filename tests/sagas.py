"""Sagas for the engine's own tests. The worker imports this module (`--include tests.sagas`).

Each step follows a plan in the operation's data: `plan[step]` is a list of what to do on attempt 1,
2, ...: "done", "retry:SECONDS", "fail", "error", "wait:SIGNAL:SECONDS", "sleep:SECONDS", "timeout".
Every step acts idempotently on the `test_side_effect` table (it looks before it inserts), the way a
real step looks at the provider before it creates anything; compensations are recorded there too.
"""

import time

from django.db import connection

from provisioning.saga import (
    Done,
    LookAgain,
    PollPolicy,
    RetryAfter,
    RetryPolicy,
    Saga,
    Step,
    StepFailed,
    WaitForSignal,
)

TABLE = "test_side_effect"


def ensure_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id serial PRIMARY KEY, op varchar(64), step varchar(64), "
            "kind varchar(20), at double precision)"
        )


def record(op_id: str, step: str, kind: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO test_side_effect (op, step, kind, at) VALUES (%s, %s, %s, %s)",
            [op_id, step, kind, time.time()],
        )


def effects(op_id: str, kind: str | None = None) -> list[tuple[str, str, float]]:
    with connection.cursor() as cursor:
        sql = "SELECT step, kind, at FROM test_side_effect WHERE op = %s"
        args = [op_id]
        if kind:
            sql += " AND kind = %s"
            args.append(kind)
        cursor.execute(sql + " ORDER BY id", args)
        return cursor.fetchall()


class PlannedStep(Step):
    retry = RetryPolicy(max_attempts=5, backoff=0.2, multiplier=2.0, max_interval=2.0)

    def __init__(self, name: str, weight: int) -> None:
        self.name = name
        self.title = f"Step {name}"
        self.weight = weight

    def _action(self, ctx) -> str:
        plan = ctx.data.get("plan", {}).get(self.name, ["done"])
        return plan[min(ctx.attempt, len(plan)) - 1]

    def run(self, ctx):
        action = self._action(ctx)
        kind, _, arg = action.partition(":")
        if kind == "retry":
            return RetryAfter(float(arg), reason="planned retry")
        if kind == "fail":
            raise StepFailed(f"{self.name} failed as planned", detail="planned failure")
        if kind == "error":
            raise RuntimeError(f"{self.name} hit an unexpected error")
        if kind == "wait":
            signal, _, seconds = arg.partition(":")
            payload = ctx.signal(signal)
            if payload is None:
                from datetime import timedelta

                return WaitForSignal(
                    signal,
                    timedelta(seconds=float(seconds or 30)),
                    instructions=f"send {signal}",
                    message=f"waiting for {signal}",
                )
            return Done({f"{self.name}_signal": payload})
        record(ctx.operation_id, self.name, "start")
        if not [e for e in effects(ctx.operation_id, "run") if e[0] == self.name]:
            record(ctx.operation_id, self.name, "run")
        if kind == "sleep":
            end = time.monotonic() + float(arg)
            while time.monotonic() < end:
                ctx.heartbeat()
                time.sleep(0.2)
        record(ctx.operation_id, self.name, "finish")
        return Done({self.name: ctx.attempt})

    def compensate(self, ctx) -> None:
        record(ctx.operation_id, self.name, "compensate")


class LookingStep(PlannedStep):
    """A step that only reads (`reads_only`): it follows its plan without touching the side-effect
    table, and counts its runs in nothing but the engine's own timeline."""

    reads_only = True

    def run(self, ctx):
        action = self._action(ctx)
        if action == "done":
            return Done({self.name: ctx.attempt})
        return super().run(ctx)  # retry, fail, error and wait act before any write


class LooksFirst(Saga):
    """Two steps that only read, then one that acts: what a request may run itself (`run_here`)."""

    kind = "test_looks_first"
    steps = [LookingStep("r1", 1), LookingStep("r2", 2), PlannedStep("w3", 3)]


class FiveSteps(Saga):
    kind = "test_five"
    steps = [PlannedStep(f"s{i}", i) for i in range(1, 6)]


class ParallelGroup(Saga):
    kind = "test_parallel"
    steps = [
        PlannedStep("a", 1),
        PlannedStep("b1", 2),
        PlannedStep("b2", 2),
        PlannedStep("b3", 2),
        PlannedStep("c", 3),
    ]


class ModelStep(PlannedStep):
    """A step of the property-based test: acts on every attempt (records "start" with the attempt
    number), so a step that ran twice would show."""

    retry = RetryPolicy(max_attempts=4, backoff=0.01, multiplier=1.0, max_interval=0.01)

    def _action(self, ctx) -> str:
        plan = ctx.data.get("plan", {}).get(self.name, [])
        return plan[ctx.attempt - 1] if ctx.attempt <= len(plan) else "done"

    def run(self, ctx):
        record(ctx.operation_id, f"{self.name}#{ctx.attempt}", "start")
        return super().run(ctx)


class ModelSaga(Saga):
    """Two sequential steps around a parallel pair; its status goes onto a subject row."""

    kind = "test_model"
    steps = [ModelStep("m1", 1), ModelStep("m2", 2), ModelStep("m3", 2), ModelStep("m4", 3)]

    def write_status(self, operation, view) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO test_subject (op, state, message) VALUES (%s, %s, %s) "
                "ON CONFLICT (op) DO UPDATE SET state = EXCLUDED.state, message = EXCLUDED.message",
                [str(operation.pk), view.state, view.message],
            )


def ensure_subject_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS test_subject (op varchar(64) PRIMARY KEY, state varchar(20), message text)"
        )


def subject_state(op_id: str) -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT state FROM test_subject WHERE op = %s", [op_id])
        row = cursor.fetchone()
        return row[0] if row else None


class PollingStep(Step):
    """Looks at something that becomes ready `data["ready_after"]` seconds after the first look, one
    look per run (LookAgain), recording each look; `data["poll_timeout"]` bounds the polling."""

    poll = PollPolicy(interval=0.3, multiplier=2.0, max_interval=1.0, lateness=0.5)

    def __init__(self, name: str, weight: int) -> None:
        self.name = name
        self.title = f"Polling {name}"
        self.weight = weight

    def poll_deadline(self, ctx) -> float | None:
        timeout = ctx.data.get("poll_timeout")
        return ctx.polling_since + float(timeout) if timeout is not None else None

    def run(self, ctx):
        record(ctx.operation_id, self.name, "look")
        waited = time.time() - ctx.polling_since
        if waited >= float(ctx.data.get("ready_after", 0)):
            return Done({self.name: ctx.looks + 1})
        return LookAgain(reason=f"not ready after {waited:.1f} s")


class Polls(Saga):
    kind = "test_polls"
    steps = [PlannedStep("p1", 1), PollingStep("p2", 2), PlannedStep("p3", 3)]
