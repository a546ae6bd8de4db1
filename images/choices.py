"""Statuses and kinds of the images app, each value with one line saying what it means."""

from django.db import models

from provisioning.choices import ACTIVE_STATES, TERMINAL_STATES, OperationState


class ProviderName(models.TextChoices):
    LOCAL = "local", "Local host"  # real artifacts on disk, instances as local processes (embedded default)
    AWS = "aws", "Amazon Web Services"  # EC2 through boto3


class BuildStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # stored, the saga has not started the build yet
    BUILDING = "building", "Building"  # the provider builds it in every region
    READY = "ready", "Ready"  # ready in every region: instances can be launched from it
    FAILED = "failed", "Failed"  # a region's build failed or timed out (see error)
    DELETED = "deleted", "Deleted"  # removed again (a one-off image of a launch that failed)


ACTIVE_BUILD_STATUSES = frozenset({BuildStatus.PENDING, BuildStatus.BUILDING})
TERMINAL_BUILD_STATUSES = frozenset({BuildStatus.READY, BuildStatus.FAILED, BuildStatus.DELETED})

# A reservation's state is its operation's state (pending, running, retrying, waiting, compensating,
# then succeeded, failed, cancelled or timed out).
ReservationState = OperationState
ACTIVE_RESERVATION_STATES = ACTIVE_STATES
TERMINAL_RESERVATION_STATES = TERMINAL_STATES
