"""Environment orders: what was ordered (Order), what exists (Environment, ServiceDeployment) and the
secrets the services get (VaultVariable, encrypted at rest)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from provisioning.models import Customer, Operation
from provisioning.orders.choices import (
    ACTIVE_ORDER_STATUSES,
    TERMINAL_ORDER_STATUSES,
    DeploymentStatus,
    EnvironmentState,
    OrderAction,
    OrderStatus,
    Section,
)


class Environment(models.Model):
    """An environment named by the orders' `environment_id`: its domains and its services."""

    key = models.CharField(max_length=63, unique=True, help_text="the orders' environment_id")
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="environments", help_text="its owner"
    )
    domains = models.JSONField(default=dict, blank=True)  # {"api": [...], "front": [...]}
    state = models.CharField(max_length=20, choices=EnvironmentState.choices, default=EnvironmentState.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"environment {self.key}"

    def all_domains(self) -> list[str]:
        return [d for names in self.domains.values() for d in names]


class Order(models.Model):
    """One `order.yml`, validated before it is stored; its workflow's status is written here."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="orders")
    action = models.CharField(max_length=10, choices=OrderAction.choices)
    spec = models.JSONField(help_text="the validated order (no secrets: variables are names)")
    changes = models.JSONField(default=list, blank=True, help_text="what the order changes, for people")
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    progress = models.CharField(max_length=200, blank=True)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    tasks = models.JSONField(default=list, blank=True, help_text="status per task of the workflow, in order")
    operation = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["environment", "status"], name="order_env_status"),
            models.Index(fields=["customer", "-created_at"], name="order_customer_recent"),
        ]

    def __str__(self) -> str:
        return f"order {self.pk} ({self.action} {self.environment_id})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_ORDER_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_ORDER_STATUSES


class ServiceDeployment(models.Model):
    """One service of an environment on the local host: where it runs and what was deployed.

    `deployed_spec` is what the last successful deploy put there; a service needs a deploy when it
    differs from what is ordered now, or when the process is gone."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="deployments")
    service_id = models.CharField(max_length=63)
    section = models.CharField(max_length=10, choices=Section.choices)
    path = models.CharField(max_length=200)
    repository_url = models.CharField(max_length=500)
    version = models.CharField(max_length=100, default="HEAD")
    type = models.CharField(max_length=20)
    roles = models.JSONField(default=list, blank=True)
    variables = models.JSONField(default=list, blank=True)
    ordered = models.BooleanField(default=True, help_text="named by the environment's latest order")

    port = models.PositiveIntegerField(null=True, blank=True)
    workdir = models.CharField(max_length=500, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    deployed_spec = models.JSONField(default=dict, blank=True)
    deployed_commit = models.CharField(max_length=64, blank=True)
    deployed_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(
        max_length=20, choices=DeploymentStatus.choices, default=DeploymentStatus.PENDING
    )
    status_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["environment", "section", "path"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "service_id"], name="deployment_unique_service"),
            models.UniqueConstraint(
                fields=["port"], condition=models.Q(port__isnull=False), name="deployment_unique_port"
            ),
        ]

    def __str__(self) -> str:
        return f"service {self.service_id} of {self.environment.key if self.environment_id else '?'}"

    def desired_spec(self) -> dict:
        return {
            "path": self.path,
            "repository_url": self.repository_url,
            "version": self.version,
            "type": self.type,
            "variables": list(self.variables),
            "port": self.port,
        }


class VaultVariable(models.Model):
    """A generated secret of one service, encrypted with the vault key (see vault.py). Its value is
    never shown: not in admin, not in the API, not in logs."""

    deployment = models.ForeignKey(ServiceDeployment, on_delete=models.CASCADE, related_name="vault")
    name = models.CharField(max_length=64)
    ciphertext = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deployment", "name"]
        constraints = [models.UniqueConstraint(fields=["deployment", "name"], name="vault_unique_name")]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<VaultVariable {self.name}>"
