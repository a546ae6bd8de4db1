"""Projects, booking items, hosting assets and the BookingItemCreatedEvent.

The event holds the asset data that came with a booking until the assets exist (then it is deleted;
the operation keeps the history) and the status of their creation (STORAGE-3 with STATUS-2 of the
seed's ADR): the booking item itself never carries transient data or a creation status.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from bookings.choices import (
    ACTIVE_EVENT_STATUSES,
    TERMINAL_EVENT_STATUSES,
    Actor,
    BookingItemType,
    EventStatus,
    HostingAssetType,
)
from provisioning.models import Customer, Operation


class Project(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="projects")
    caption = models.CharField(max_length=80)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer_id", "caption", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "caption"], name="project_unique_caption_per_customer"
            )
        ]

    def __str__(self) -> str:
        return self.caption


class BookingItem(models.Model):
    """Something a customer booked: a private cloud, a server, a webspace, a domain setup."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="booking_items")
    parent_item = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="sub_items"
    )
    type = models.CharField(max_length=30, choices=BookingItemType.choices)
    caption = models.CharField(max_length=80)
    resources = models.JSONField(default=dict, blank=True)
    valid_from = models.DateField(default=timezone.localdate)
    valid_to = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(type__in=BookingItemType.values), name="booking_item_known_type"
            ),
            models.CheckConstraint(
                condition=models.Q(valid_to__isnull=True) | models.Q(valid_to__gte=models.F("valid_from")),
                name="booking_item_valid_period",
            ),
        ]
        indexes = [models.Index(fields=["project", "-created_at"], name="booking_item_project_recent")]

    def __str__(self) -> str:
        return f"{self.get_type_display()}: {self.caption}"


class HostingAsset(models.Model):
    """A real thing we run for a customer (a server, a webspace, a unix user, a domain's DNS zone).

    Only valid assets are ever stored: parent and assigned-to types are checked by `services` with a
    message per field and by a database trigger (migration 0002) for anything that bypasses them.
    """

    type = models.CharField(max_length=30, choices=HostingAssetType.choices)
    identifier = models.CharField(max_length=253)
    caption = models.CharField(max_length=80, blank=True)
    config = models.JSONField(default=dict, blank=True)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="hosting_assets"
    )
    booking_item = models.ForeignKey(
        BookingItem, null=True, blank=True, on_delete=models.PROTECT, related_name="hosting_assets"
    )
    parent_asset = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="sub_assets"
    )
    assigned_to_asset = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="assigned_assets"
    )
    # The operation that created it: a step that runs again finds its own work instead of a conflict.
    created_by = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["type", "identifier"]
        constraints = [
            models.UniqueConstraint(fields=["type", "identifier"], name="hosting_asset_unique_identifier"),
            models.CheckConstraint(
                condition=models.Q(type__in=HostingAssetType.values), name="hosting_asset_known_type"
            ),
            models.CheckConstraint(condition=~models.Q(identifier=""), name="hosting_asset_identifier_set"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.identifier}"


class BookingItemCreatedEvent(models.Model):
    """The asset data of a new booking item, kept until its hosting assets exist, and their status."""

    booking_item = models.OneToOneField(BookingItem, on_delete=models.CASCADE, related_name="created_event")
    asset_data = models.JSONField()
    status = models.CharField(max_length=20, choices=EventStatus.choices, default=EventStatus.PENDING)
    status_message = models.CharField(max_length=500, blank=True)
    instructions = models.TextField(blank=True)
    waiting_for = models.CharField(max_length=20, choices=Actor.choices, blank=True, default=Actor.NOBODY)
    operation = models.ForeignKey(
        Operation, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # "Absent hosting_asset means no event": never a JSON null or an empty object.
            models.CheckConstraint(
                condition=~models.Q(asset_data=None) & ~models.Q(asset_data={}), name="event_has_asset_data"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=EventStatus.values), name="event_known_status"
            ),
        ]
        indexes = [models.Index(fields=["waiting_for", "status"], name="event_waiting")]

    def __str__(self) -> str:
        return f"event of {self.booking_item_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_EVENT_STATUSES

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_EVENT_STATUSES
