from django.db import models


class RequestState(models.TextChoices):
    CHECKING = "checking", "Pre-flight checks"  # the saga checks team, requester, authorizer and names
    AWAITING_DECISION = "awaiting_decision", "Awaiting decision"  # the authorizer was asked to decide
    PROVISIONING = "provisioning", "Provisioning"  # approved: the resources are being created
    CLEANING_UP = "cleaning_up", "Cleaning up"  # failed or cancelled: what was created is being removed
    READY = "ready", "Ready"  # every resource exists; addresses are shown
    REJECTED = "rejected", "Rejected"  # the authorizer said no; nothing was created
    TIMED_OUT = "timed_out", "Timed out"  # nobody decided within the time limit; nothing was created
    FAILED = "failed", "Failed"  # a check or a provider failed; what was created was removed
    CANCELLED = "cancelled", "Cancelled"  # somebody cancelled it; what was created was removed


ACTIVE_STATES = frozenset(
    {
        RequestState.CHECKING,
        RequestState.AWAITING_DECISION,
        RequestState.PROVISIONING,
        RequestState.CLEANING_UP,
    }
)
TERMINAL_STATES = frozenset(
    {
        RequestState.READY,
        RequestState.REJECTED,
        RequestState.TIMED_OUT,
        RequestState.FAILED,
        RequestState.CANCELLED,
    }
)


class Decision(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class Provider(models.TextChoices):
    AWS = "aws", "Amazon Web Services (S3)"
    LOCAL = "local", "Local host"


class ResourceKind(models.TextChoices):
    BUCKET = "bucket", "Storage bucket with an index page"
