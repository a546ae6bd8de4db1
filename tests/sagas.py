"""Sagas for the engine's own tests. The worker imports this module (`--include tests.sagas`).

Each step follows a plan in the operation's data: `plan[step]` is a list of what to do on attempt 1,
2, ...: "done", "retry:SECONDS", "fail", "error", "wait:SIGNAL:SECONDS", "sleep:SECONDS", "timeout".
Every step acts idempotently on the `test_side_effect` table (it looks before it inserts), the way a
real step looks at the provider before it creates anything; compensations are recorded there too.
"""

import time

from django.db import connection

from provisioning.saga import Done, RetryAfter, RetryPolicy, Saga, Step, StepFailed, WaitForSignal

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
