import uuid

from django.conf import settings
from django.db import models

from provisioning.applications.choices import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    Decision,
    Provider,
    RequestState,
)
from provisioning.models import Customer, Operation

# Application and team names name the resources at the provider: lowercase letters, digits, hyphens.
NAME_PATTERN = r"^[a-z0-9][a-z0-9-]*$"


class Team(models.Model):
    """An application team of a customer: its members may request resources for it, its authorizers
    (or the customer's owners) may approve them."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="teams")
    name = models.SlugField(max_length=40)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="application_teams", blank=True)
    authorizers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="authorized_teams", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer", "name"]
        constraints = [models.UniqueConstraint(fields=["customer", "name"], name="team_unique_customer_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.customer})"


class ApplicationRequest(models.Model):
    """A team's request for cloud resources for one application, decided by a named authorizer.

    Its status fields (`state`, `status`, `instructions`, `resources`, `error`) are written by the
    saga's status hook in the same transaction as the operation row, so they always agree with it.
    The decision fields are written by `application_request_decide`, with the signal that wakes the
    saga, in one transaction.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="application_requests")
    # SET_NULL: a team deleted before the checks run fails the "team exists" check by name.
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="application_requests"
    )
    team_name = models.CharField(max_length=40)
    application = models.CharField(max_length=40)
    # What was asked for, keyed by resource kind: {"bucket": {"index_html": "..."}}.
    requested_resources = models.JSONField(default=dict)
    provider = models.CharField(max_length=10, choices=Provider.choices, default=Provider.AWS)
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="application_requests"
    )
    authorizer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="application_requests_to_authorize",
    )
    authorizer_username = models.CharField(max_length=150)
    time_limit_seconds = models.PositiveIntegerField()
    decision_deadline = models.DateTimeField()
    notified_at = models.DateTimeField(null=True, blank=True)
    # A fault asked for on purpose (only with APPLICATIONS_FAULT_INJECTION on): a provider call that
    # fails on every attempt, to prove that the saga cleans up.
    inject_fault = models.CharField(max_length=30, blank=True)

    decision = models.CharField(max_length=10, choices=Decision.choices, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    region = models.CharField(max_length=40, blank=True)
    profile = models.CharField(max_length=64, blank=True)
    comment = models.TextField(blank=True)

    operation = models.OneToOneField(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="application_request"
    )
    state = models.CharField(max_length=20, choices=RequestState.choices, default=RequestState.CHECKING)
    status = models.CharField(max_length=500, blank=True)
    instructions = models.TextField(blank=True)
    # What exists at the provider: [{"kind", "name", "provider", "region", "address", ...}].
    resources = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer", "-created_at"], name="apprequest_customer_recent"),
            models.Index(fields=["authorizer", "state"], name="apprequest_authorizer_state"),
            models.Index(fields=["state"], name="apprequest_state"),
        ]

    def __str__(self) -> str:
        return f"{self.application} for {self.team_name} ({self.state})"

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def reference(self) -> str:
        """The short id that names the request's resources at the provider."""
        return self.id.hex[:12]

    @property
    def bucket_name(self) -> str:
        return f"{self.application}-{self.team_name}-{self.reference}".lower()
