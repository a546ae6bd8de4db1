"""The row store: reading an operation, writing it back (with the subject's status, in the caller's
transaction, as a compare-and-set on its version or under the caller's row lock), and the StepRun
timeline. The two writes every step makes are SQL compiled once."""

from __future__ import annotations

import functools
import socket
from datetime import datetime

from django.db import connection
from django.utils import timezone

from provisioning.choices import StepStatus
from provisioning.models import Operation, StepRun
from provisioning.saga.definition import Saga
from provisioning.saga.status import describe, status_view

WORKER = socket.gethostname()
# A message may reach a worker a little before the time the database row names (clocks, rounding).
EARLY_TOLERANCE = 0.5


def ts(when: datetime) -> float:
    return when.timestamp()


def dt(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, tz=timezone.get_current_timezone())


def step_state(op: Operation, name: str) -> dict:
    return op.steps.setdefault(name, {"status": StepStatus.PENDING, "attempts": 0})


def load(op_id: str) -> Operation | None:
    try:
        return Operation.objects.get(pk=op_id)
    except Operation.DoesNotExist:
        return None


# Every column the engine changes; one UPDATE writes them all, so no change is ever left unsaved.
_ROW_FIELDS = (
    "state",
    "position",
    "steps",
    "definition",
    "data",
    "message",
    "sweep_at",
    "next_run_at",
    "heartbeat_at",
    "waiting_for",
    "wait_deadline",
    "instructions",
    "end_state",
    "error_message",
    "error_detail",
    "finished_at",
)


def save_row(op: Operation, saga: Saga, *, reason: str = "", expected_version: int | None = None) -> bool:
    """Write the row and the subject's status in the caller's transaction.

    With `expected_version`, the write is a compare-and-set: it happens only if nobody changed the row
    since that version was read (returns False otherwise, and writes nothing). Without it, the caller
    holds the row lock."""
    op.message = describe(op, saga, reason)[:500]
    op.updated_at = timezone.now()
    fields = _update_fields()
    params = [field.get_db_prep_save(getattr(op, field.attname), connection) for field in fields]
    params += [op.version + 1, Operation._meta.pk.get_db_prep_value(op.pk, connection)]
    compare = expected_version is not None
    if compare:
        params.append(expected_version)
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(connection.vendor, compare), params)
        if cursor.rowcount != 1:
            return False
    op.version += 1
    saga.write_status(op, status_view(op, saga))
    return True


# The two writes every step makes (its row, its StepRun) as SQL compiled once: on this path the ORM's
# query building cost more than the database did.


@functools.cache
def _update_fields() -> list:
    return [Operation._meta.get_field(name) for name in (*_ROW_FIELDS, "updated_at")]


@functools.cache
def _update_sql(vendor: str, compare: bool) -> str:
    qn = connection.ops.quote_name
    columns = ", ".join(f"{qn(field.column)} = %s" for field in _update_fields())
    where = f"{qn('id')} = %s" + (f" AND {qn('version')} = %s" if compare else "")
    # Names come from the model's metadata, values go as parameters.
    return f"UPDATE {qn(Operation._meta.db_table)} SET {columns}, {qn('version')} = %s WHERE {where}"  # noqa: S608


@functools.cache
def _insert_fields() -> list:
    return [field for field in StepRun._meta.concrete_fields if not field.primary_key]


@functools.cache
def _insert_sql(vendor: str) -> str:
    qn = connection.ops.quote_name
    fields = _insert_fields()
    columns = ", ".join(qn(field.column) for field in fields)
    values = ", ".join(["%s"] * len(fields))
    return f"INSERT INTO {qn(StepRun._meta.db_table)} ({columns}) VALUES ({values})"  # noqa: S608


def insert_run(run: StepRun) -> None:
    params = [field.get_db_prep_save(getattr(run, field.attname), connection) for field in _insert_fields()]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection.vendor), params)
