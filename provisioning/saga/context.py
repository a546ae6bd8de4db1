from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone

if TYPE_CHECKING:
    from provisioning.models import Operation
    from provisioning.saga.definition import Saga
    from provisioning.saga.steps import Step


class StepContext:
    """What a step sees while it runs: the operation as claimed, its persisted data, its subject,
    the signals sent to it, and a heartbeat. Nothing here holds a transaction open."""

    def __init__(
        self, operation: Operation, saga: Saga, step: Step, attempt: int, step_run_id: int | None = None
    ) -> None:
        self.operation = operation
        self.saga = saga
        self.step = step
        self.attempt = attempt
        self.step_run_id = step_run_id
        self.data: dict[str, Any] = dict(operation.data)
        self.consumed_signals: list[int] = []

    @property
    def operation_id(self) -> str:
        return str(self.operation.pk)

    @property
    def polling_since(self) -> float:
        """When this step first looked (a Unix time): the engine's polling clock, kept in the row
        across looks, crashes and retries; the current attempt's start before the first LookAgain."""
        st = self.operation.steps.get(self.step.name, {})
        return float(st.get("polling_since") or st.get("started_at") or timezone.now().timestamp())

    @property
    def looks(self) -> int:
        """How many looks of this step ended with LookAgain so far."""
        return int(self.operation.steps.get(self.step.name, {}).get("looks", 0))

    @cached_property
    def subject(self) -> Any:
        op = self.operation
        if not op.subject_type:
            return None
        model = apps.get_model(op.subject_type)
        return model.objects.filter(pk=op.subject_id).first()

    def signal(self, name: str) -> dict | None:
        """The payload of the oldest unconsumed signal `name`, or None. It counts as consumed once the
        step's outcome is recorded, so a crash before that keeps it for the next attempt."""
        from provisioning.models import Signal

        sig = (
            Signal.objects.filter(operation_id=self.operation.pk, name=name, consumed_at__isnull=True)
            .exclude(pk__in=self.consumed_signals)
            .order_by("created_at", "id")
            .first()
        )
        if sig is None:
            return None
        self.consumed_signals.append(sig.pk)
        return dict(sig.payload or {}, _sent_by=sig.sent_by_id)

    def save(self, **data: Any) -> None:
        """Persist data at once, before a call whose result must not be lost (an idempotency token,
        an id the provider returned)."""
        from provisioning.models import Operation

        with transaction.atomic():
            op = Operation.objects.select_for_update().only("data", "version").get(pk=self.operation.pk)
            op.data.update(data)
            Operation.objects.filter(pk=op.pk).update(data=op.data, version=op.version + 1)
        if op.version == self.operation.version:
            # Nobody else changed the row since we claimed it: our copy stays current, so recording
            # the outcome can still be a compare-and-set.
            self.operation.version += 1
        # Otherwise the outcome is recorded on a fresh, locked copy of the row, which has this data.
        self.operation.data.update(data)
        self.data.update(data)

    def heartbeat(self) -> None:
        """Tell the sweeper this step is alive; call it from long loops."""
        from provisioning.saga.claim import heartbeat

        heartbeat(self.operation.pk, self.step)

    @contextmanager
    def keep_alive(self, every: float = 5.0) -> Iterator[None]:
        """Heartbeat from a thread while a long call that cannot report progress runs (a playbook, a
        slow provider call), so that the step's heartbeat timeout can stay short: a worker killed in
        the middle is then noticed within that timeout, not after the longest such call."""
        stop = threading.Event()

        def beat() -> None:
            try:
                while not stop.wait(every):
                    self.heartbeat()
            finally:
                connection.close()  # this thread's own connection

        thread = threading.Thread(target=beat, name=f"heartbeat {self.operation_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def now(self):
        return timezone.now()
