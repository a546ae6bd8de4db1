from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"  # manages the customer's members and everything the customer booked
    MEMBER = "member", "Member"  # books and follows the customer's items


class OperationState(models.TextChoices):
    PENDING = "pending", "Pending"  # a step is queued for a worker
    RUNNING = "running", "Running"  # a worker runs a step (heartbeating)
    RETRYING = "retrying", "Retrying"  # a step asked to run again at next_run_at
    WAITING = "waiting", "Waiting"  # a step waits for a signal (a person) until its deadline
    COMPENSATING = "compensating", "Compensating"  # finished steps are being undone
    SUCCEEDED = "succeeded", "Succeeded"  # every step finished
    FAILED = "failed", "Failed"  # a step failed for good; finished steps were undone
    CANCELLED = "cancelled", "Cancelled"  # somebody cancelled it; finished steps were undone
    TIMED_OUT = "timed_out", "Timed out"  # a deadline passed; finished steps were undone


ACTIVE_STATES = frozenset(
    {
        OperationState.PENDING,
        OperationState.RUNNING,
        OperationState.RETRYING,
        OperationState.WAITING,
        OperationState.COMPENSATING,
    }
)
TERMINAL_STATES = frozenset(
    {OperationState.SUCCEEDED, OperationState.FAILED, OperationState.CANCELLED, OperationState.TIMED_OUT}
)


class StepStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # not started, or queued again
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying"  # runs again at its next_run_at
    WAITING = "waiting", "Waiting"  # waits for a signal
    DONE = "done", "Done"  # finished; never runs again
    FAILED = "failed", "Failed"  # failed for good
    COMPENSATED = "compensated", "Compensated"  # was done, then undone


class Outcome(models.TextChoices):
    DONE = "done", "Done"
    RETRY = "retry", "Retry later"
    LOOK = "look", "Looked: not ready yet"  # a poll (LookAgain); the next look is timed in the row
    WAIT = "wait", "Wait for a signal"
    FAILED = "failed", "Failed"
    LOST = "lost", "Lost (worker died)"
    COMPENSATED = "compensated", "Compensated"
    COMPENSATION_FAILED = "compensation_failed", "Compensation failed"


class IdempotencyState(models.TextChoices):
    PROCESSING = "processing", "Processing"  # the first request with the key is being handled
    DONE = "done", "Done"  # answered: the same request with the key gets the same answer again
