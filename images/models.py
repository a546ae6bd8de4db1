"""Build manifests become ImageBuilds; a build-and-launch is a Reservation with its instances.

A Reservation is the subject of the build→launch operation: the saga writes its state, "step k of n:
title" and its final outcome onto it in the same transaction as the operation row.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models

from images.choices import (
    ACTIVE_RESERVATION_STATES,
    TERMINAL_RESERVATION_STATES,
    BuildStatus,
    ProviderName,
    ReservationState,
)
from provisioning.models import Customer, Operation


def _fernet() -> Fernet:
    key = hashlib.sha256(f"images.cloud-account:{settings.SECRET_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


class CloudAccount(models.Model):
    """A provider account a customer launches into (the seed's "source"). Credentials are
    write-only: stored encrypted, handed to the provider, never shown or logged."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="cloud_accounts")
    provider = models.CharField(max_length=20, choices=ProviderName.choices)
    name = models.CharField(max_length=80)
    account_id = models.CharField(max_length=64, blank=True, help_text="e.g. the AWS account number")
    role_arn = models.CharField(max_length=255, blank=True, help_text="a role to assume for every call")
    profile = models.CharField(
        max_length=64,
        blank=True,
        help_text="a profile of the service's machine (operator-managed accounts only)",
    )
    external_id = models.CharField(max_length=255, blank=True)
    credentials_encrypted = models.TextField(blank=True, editable=False)
    # Set by a hostmaster in the admin only: the account may act through the worker machine's own
    # credentials (a profile, or a role assumed with them). A customer's account never does.
    operator_managed = models.BooleanField(
        default=False,
        help_text="a hostmaster vouches for it: it may use a profile or a role without keys of its own",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer_id", "provider", "name"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "provider", "name"], name="cloud_account_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider})"

    def __repr__(self) -> str:  # never the credentials
        return f"<CloudAccount {self.pk} {self.provider}:{self.name}>"

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)

    def set_credentials(self, credentials: dict[str, str]) -> None:
        clean = {k: v for k, v in credentials.items() if v}
        self.credentials_encrypted = _fernet().encrypt(json.dumps(clean).encode()).decode() if clean else ""

    def provider_account(self) -> dict[str, str | bool]:
        """What the provider adapter acts as (plain data, secrets included: never log it)."""
        secret: dict[str, str] = {}
        if self.credentials_encrypted:
            try:
                secret = json.loads(_fernet().decrypt(self.credentials_encrypted.encode()))
            except InvalidToken:
                secret = {}  # SECRET_KEY changed: the customer must send the credentials again
        return {
            **secret,
            "account_id": self.account_id,
            "role_arn": self.role_arn,
            "profile": self.profile,
            "external_id": self.external_id,
            "operator_managed": self.operator_managed,
            "label": f"'{self.name}' (#{self.pk})",
        }


class PublicKey(models.Model):
    """An SSH public key of a customer, put on the instances it launches. Private keys are refused."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="public_keys")
    name = models.CharField(max_length=80)
    body = models.TextField()
    type = models.CharField(max_length=10)
    fingerprint = models.CharField(max_length=80, help_text="SHA256, as ssh-keygen -l shows it")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "fingerprint"], name="public_key_unique_fingerprint"),
            models.UniqueConstraint(fields=["customer", "name"], name="public_key_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"


class ImageBuild(models.Model):
    """An image built from a validated manifest in every target region of one provider."""

    # Names the build at the provider (image names, tags): unique beyond this database's ids, which a
    # new database would hand out again while the provider account still holds the old images.
    uid = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="image_builds")
    name = models.CharField(max_length=80)
    provider = models.CharField(max_length=20, choices=ProviderName.choices)
    regions = models.JSONField(default=list)
    manifest = models.JSONField(default=dict)
    status = models.CharField(max_length=20, choices=BuildStatus.choices, default=BuildStatus.PENDING)
    image_ids = models.JSONField(default=dict, blank=True, help_text="the provider's image id per region")
    error = models.TextField(blank=True)
    one_off = models.BooleanField(default=False, help_text="deleted again if the launch fails")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["customer", "-created_at"], name="build_customer_recent")]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider}, {self.status})"

    @property
    def build_ref(self) -> str:
        """The provider-side idempotency reference of this build."""
        return f"build-{self.uid}"


class Reservation(models.Model):
    """One launch of a build's image: its state is the build→launch operation's, shown for people
    as "step k of n: title", and its final outcome (success, error, finished_at) explicitly."""

    # The value of the provisioning:reservation tag on every instance it launches (see ImageBuild.uid).
    uid = models.UUIDField(default=uuid.uuid4, editable=False, db_index=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="reservations")
    build = models.ForeignKey(ImageBuild, on_delete=models.PROTECT, related_name="reservations")
    provider = models.CharField(max_length=20, choices=ProviderName.choices)
    account = models.ForeignKey(
        CloudAccount, null=True, blank=True, on_delete=models.PROTECT, related_name="reservations"
    )
    pubkey = models.ForeignKey(
        PublicKey, null=True, blank=True, on_delete=models.PROTECT, related_name="reservations"
    )
    amount = models.PositiveIntegerField(default=1)
    instance_type = models.CharField(max_length=40)
    # Per provider: instances per region, one-off image, injected fault, the key's name per region.
    detail = models.JSONField(default=dict, blank=True)
    operation = models.OneToOneField(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    state = models.CharField(
        max_length=20, choices=ReservationState.choices, default=ReservationState.PENDING
    )
    status = models.CharField(max_length=500, blank=True)
    step = models.PositiveSmallIntegerField(default=0)
    steps = models.PositiveSmallIntegerField(default=0)
    step_titles = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    success = models.BooleanField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Another app told of every status change (a dotted path to a function called in the same
    # transaction with reservation= and view=), and the key it knows the launch by.
    status_listener = models.CharField(max_length=200, blank=True)
    listener_key = models.CharField(max_length=64, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-created_at"], name="reservation_customer_recent"),
            models.Index(
                fields=["customer", "provider"],
                condition=models.Q(finished_at__isnull=True),
                name="reservation_unfinished",
            ),
        ]

    def __str__(self) -> str:
        return f"reservation {self.pk} ({self.provider}, {self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_RESERVATION_STATES

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_RESERVATION_STATES

    @property
    def regions(self) -> dict[str, int]:
        return dict(self.detail.get("instances_per_region", {}))


class ReservationInstance(models.Model):
    """An instance a reservation launched, with what the provider tells of it."""

    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="instances")
    region = models.CharField(max_length=40)
    instance_id = models.CharField(max_length=64)
    state = models.CharField(max_length=20, blank=True)
    detail = models.JSONField(default=dict, blank=True, help_text="addresses, dns name, port, type")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["reservation_id", "region", "instance_id"]
        constraints = [
            models.UniqueConstraint(fields=["reservation", "instance_id"], name="reservation_instance_unique")
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} ({self.region}, {self.state})"
