"""Environment orders: what was ordered (Order), what exists (Environment, ServiceDeployment) and the
secrets the services get (VaultVariable, encrypted at rest)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.validators import RegexValidator
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

# What a hostmaster registers goes into inventories, ssh command lines and nginx: a strict alphabet.
ADDRESS = RegexValidator(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|[0-9a-fA-F:]{2,39})$")
USER = RegexValidator(r"^[a-z_][a-z0-9_-]{0,31}$")
HOST_KEY = RegexValidator(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*\s*$")
ROOT = RegexValidator(r"^/(?:[A-Za-z0-9_.-]+/?)*$")


def _host_key_fernet() -> Fernet:
    key = hashlib.sha256(f"orders.deploy-host:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


class DeployHost(models.Model):
    """A target host that services are deployed onto over SSH, registered by hostmasters. Its host key
    is pinned (no first-use trust); its private key is write-only: stored encrypted, handed to an
    ssh-agent for the length of a run, never shown or logged."""

    name = models.SlugField(max_length=63, unique=True)
    address = models.CharField(
        max_length=253, validators=[ADDRESS], help_text="IP address or host name the worker connects to"
    )
    ssh_port = models.PositiveIntegerField(default=22)
    user = models.CharField(max_length=32, default="deploy", validators=[USER])
    host_key = models.TextField(
        validators=[HOST_KEY],
        help_text="the host's public key as in known_hosts without the name: 'ssh-ed25519 AAAA...'",
    )
    private_key_encrypted = models.TextField(blank=True, editable=False)
    root = models.CharField(
        max_length=300,
        default="/srv/provisioning",
        validators=[ROOT],
        help_text="folder on the host that holds the services",
    )
    capacity = models.PositiveIntegerField(default=10, help_text="services it may run at once")
    labels = models.JSONField(
        default=list, blank=True, help_text="service types it runs ('python'); empty: any type"
    )
    enabled = models.BooleanField(default=True, help_text="new services may be placed on it")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:  # never the key
        return f"<DeployHost {self.name} {self.user}@{self.address}:{self.ssh_port}>"

    @property
    def has_private_key(self) -> bool:
        return bool(self.private_key_encrypted)

    def set_private_key(self, key: str) -> None:
        key = key.strip()
        self.private_key_encrypted = _host_key_fernet().encrypt(f"{key}\n".encode()).decode() if key else ""

    def private_key(self) -> str:
        """The private key in OpenSSH format (a secret: never log it); '' when it cannot be read."""
        if not self.private_key_encrypted:
            return ""
        try:
            return _host_key_fernet().decrypt(self.private_key_encrypted.encode()).decode()
        except InvalidToken:
            return ""  # SECRET_KEY changed: a hostmaster must set the key again

    def runs(self, service_type: str) -> bool:
        return not self.labels or service_type in self.labels


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
    """One service of an environment on its host (or the local target): where it runs and what was
    deployed. The host is chosen once, by "Allocate resources", and kept by every later order.

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

    host = models.ForeignKey(
        DeployHost,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deployments",
        help_text="where it runs; empty: the built-in local target",
    )
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
