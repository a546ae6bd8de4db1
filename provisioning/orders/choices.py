from django.db import models


class OrderAction(models.TextChoices):
    UPDATE = "update", "Update"  # create the environment or bring it to what the order says
    DELETE = "delete", "Delete"  # tear the environment down


class Section(models.TextChoices):
    API = "api", "API"
    FRONT = "front", "Front"


class ServiceType(models.TextChoices):
    PYTHON = "python", "Python"  # a Python app started as `python3 app.py` with PORT in its environment
    NODE = "node", "Node.js"  # known to the format, refused: no node runtime is managed on the hosts
    ANGULAR = "angular", "Angular"  # known to the format, refused: needs a build toolchain


KNOWN_TYPES = frozenset(ServiceType.values)
DEPLOYABLE_TYPES = frozenset({ServiceType.PYTHON})


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # validated and stored; the workflow is queued
    RUNNING = "running", "Running"  # a task of the workflow runs
    WAITING = "waiting", "Waiting"  # a task waits (retry)
    SUCCEEDED = "succeeded", "Succeeded"  # the environment is what the order says
    FAILED = "failed", "Failed"  # a task failed; see message and the service statuses
    CANCELLED = "cancelled", "Cancelled"  # somebody cancelled the workflow
    TIMED_OUT = "timed_out", "Timed out"  # the workflow ran out of time


ACTIVE_ORDER_STATUSES = frozenset({OrderStatus.PENDING, OrderStatus.RUNNING, OrderStatus.WAITING})
TERMINAL_ORDER_STATUSES = frozenset(
    {OrderStatus.SUCCEEDED, OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.TIMED_OUT}
)


class EnvironmentState(models.TextChoices):
    ACTIVE = "active", "Active"  # has (or is getting) services
    DELETED = "deleted", "Deleted"  # torn down by a delete order


class DeploymentStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # ordered, not deployed yet (or a change waits for the deploy task)
    DEPLOYING = "deploying", "Deploying"  # the playbook runs
    DEPLOYED = "deployed", "Deployed"  # runs the ordered version and answered its check
    FAILED = "failed", "Failed"  # the last deploy failed; see status_message
    REMOVING = "removing", "Removing"  # no longer ordered; being stopped
    REMOVED = "removed", "Removed"  # stopped, its route and folder gone


ACTIVE_DEPLOYMENT_STATUSES = frozenset(
    {DeploymentStatus.PENDING, DeploymentStatus.DEPLOYING, DeploymentStatus.REMOVING}
)
TERMINAL_DEPLOYMENT_STATUSES = frozenset(
    {DeploymentStatus.DEPLOYED, DeploymentStatus.FAILED, DeploymentStatus.REMOVED}
)
