import uuid

from django.conf import settings
from django.db import models
from django_fsm import RETURN_VALUE, FSMField, transition

from provisioning.choices import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    IdempotencyState,
    OperationState,
    Outcome,
    Role,
)


class Customer(models.Model):
    """A tenant: everything booked, built or requested belongs to one customer."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "customer"], name="membership_unique_user_customer")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.customer} ({self.role})"


_ACTIVE = sorted(s.value for s in ACTIVE_STATES)
_RUNNABLE = [OperationState.PENDING, OperationState.RETRYING, OperationState.RUNNING, OperationState.WAITING]


class Operation(models.Model):
    """One run of a saga: the database row is the truth, Celery only moves it along.

    `steps` holds each step's status, attempts and next run time, keyed by step name; `data` holds what
    the steps persisted (ids of what they created), so a step that runs again can skip work already done.
    `sweep_at` is when the sweeper must look at the row next (lost message, retry due, wait deadline,
    stale heartbeat, operation timeout); it is NULL once the operation is final.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=100, db_index=True)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="operations"
    )
    subject_type = models.CharField(max_length=100, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    queue = models.CharField(max_length=50, default="default")

    state = FSMField(max_length=20, choices=OperationState.choices, default=OperationState.PENDING)
    position = models.PositiveIntegerField(default=0)
    # Bumped by every engine write: a worker records a step with a compare-and-set on it.
    version = models.PositiveIntegerField(default=0)
    steps = models.JSONField(default=dict, blank=True)
    data = models.JSONField(default=dict, blank=True)
    # The definition the operation started on (its saga's version and step names in run order): the
    # engine runs it on that one, or moves it by the saga's declared upgrade, or holds it.
    definition = models.JSONField(default=dict, blank=True)

    next_run_at = models.DateTimeField(null=True, blank=True)
    sweep_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    waiting_for = models.CharField(max_length=50, blank=True)
    wait_deadline = models.DateTimeField(null=True, blank=True)
    instructions = models.TextField(blank=True)
    message = models.CharField(max_length=500, blank=True)
    # The final state the operation goes to once compensation ends (failed, cancelled, timed out).
    end_state = models.CharField(max_length=20, choices=OperationState.choices, blank=True)
    error_message = models.TextField(blank=True)
    error_detail = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The sweeper reads only what is due: O(due), not O(all).
            models.Index(
                fields=["sweep_at"], condition=models.Q(sweep_at__isnull=False), name="op_sweep_due"
            ),
            models.Index(fields=["subject_type", "subject_id"], name="op_subject"),
            models.Index(fields=["customer", "-created_at"], name="op_customer_recent"),
            # Metrics at scrape time: what is active now, and what finished lately, read in O(those).
            models.Index(fields=["kind", "state"], condition=models.Q(state__in=_ACTIVE), name="op_active"),
            models.Index(
                fields=["finished_at"], condition=models.Q(finished_at__isnull=False), name="op_finished"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def can_cancel(self) -> bool:
        return self.state in ACTIVE_STATES and not self.end_state

    @property
    def can_retry(self) -> bool:
        return self.state in (OperationState.RETRYING, OperationState.WAITING, OperationState.PENDING)

    # Transitions: called by the engine only, with the row locked (select_for_update).
    @transition(field=state, source=_RUNNABLE, target=OperationState.RUNNING)
    def run(self) -> None:
        pass

    @transition(field=state, source=_RUNNABLE, target=OperationState.PENDING)
    def queue_next(self) -> None:
        pass

    @transition(field=state, source=_RUNNABLE, target=OperationState.RETRYING)
    def retry_later(self) -> None:
        pass

    @transition(field=state, source=_RUNNABLE, target=OperationState.WAITING)
    def wait(self) -> None:
        pass

    @transition(field=state, source=_RUNNABLE, target=OperationState.COMPENSATING)
    def compensate(self) -> None:
        pass

    @transition(
        field=state, source=[OperationState.RUNNING, OperationState.PENDING], target=OperationState.SUCCEEDED
    )
    def succeed(self) -> None:
        pass

    @transition(
        field=state,
        source=OperationState.COMPENSATING,
        target=RETURN_VALUE(OperationState.FAILED, OperationState.CANCELLED, OperationState.TIMED_OUT),
    )
    def end(self) -> str:
        return self.end_state or OperationState.FAILED


class StepRun(models.Model):
    """One attempt of one step (or of its compensation): the operation's timeline."""

    class Kind(models.TextChoices):
        RUN = "run", "Run"
        COMPENSATE = "compensate", "Compensate"

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="step_runs")
    step = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.RUN)
    position = models.PositiveIntegerField()
    attempt = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    message = models.TextField(blank=True)
    detail = models.TextField(blank=True)
    retry_delay = models.FloatField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["started_at", "id"]
        indexes = [
            models.Index(fields=["operation", "started_at"], name="steprun_timeline"),
            # Step durations, retries and failures of the last minutes (metrics at scrape time).
            models.Index(fields=["finished_at"], name="steprun_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.step} #{self.attempt} ({self.outcome or 'running'})"

    @property
    def duration(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Signal(models.Model):
    """Something a person (or another system) told a saga. Stored first, so that a signal that arrives
    before the saga waits for it is not lost."""

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="signals")
    name = models.CharField(max_length=50)
    payload = models.JSONField(default=dict, blank=True)
    sent_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["operation", "name", "consumed_at"], name="signal_pending")]

    def __str__(self) -> str:
        return f"{self.name} for {self.operation_id}"


class Heartbeat(models.Model):
    """A sign of life of a Celery worker (with the queues it consumes) or of the sweeper, written every
    few seconds; health and metrics read it, so they never ask the workers over the broker."""

    class Role(models.TextChoices):
        WORKER = "worker", "Worker"  # a `celery worker` node; `name` is its node name
        SWEEPER = "sweeper", "Sweeper"  # the beat-driven sweeper's last tick

    name = models.CharField(max_length=200, unique=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.WORKER)
    queues = models.JSONField(default=list, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)
    ticks = models.PositiveBigIntegerField(default=0)  # the sweeper's ticks (claimed by any beat)

    class Meta:
        ordering = ["role", "name"]

    def __str__(self) -> str:
        return f"{self.role} {self.name}"


class IdempotencyKey(models.Model):
    """A client's `Idempotency-Key` (IETF httpapi draft) and the answer to the first request that
    carried it, kept for IDEMPOTENCY_KEY_TTL seconds. Keys are per customer (`scope`): the same key
    of two customers are two keys. Only successful answers are kept; a refused request frees the key."""

    scope = models.CharField(max_length=40)  # "customer:<id>", or "user:<id>" for several or none
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # SHA-256 of the method, the path and the body
    state = models.CharField(
        max_length=12, choices=IdempotencyState.choices, default=IdempotencyState.PROCESSING
    )
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    body = models.TextField(blank=True)
    location = models.CharField(max_length=500, blank=True)  # where a page's answer redirects to
    created_at = models.DateTimeField()  # when the request now holding it began (a takeover renews it)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_unique")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} ({self.state})"
