"""Reads of the bookings app: what a user may see (hostmasters see everything)."""

from __future__ import annotations

from django.db.models import Case, IntegerField, QuerySet, Value, When

from bookings.choices import Actor, EventStatus
from bookings.models import BookingItem, BookingItemCreatedEvent, HostingAsset, Project
from provisioning.selectors import customer_ids_of
from provisioning.services import is_hostmaster


def projects_visible_to(user) -> QuerySet[Project]:
    qs = Project.objects.select_related("customer")
    return qs if is_hostmaster(user) else qs.filter(customer_id__in=customer_ids_of(user))


def booking_items_visible_to(user) -> QuerySet[BookingItem]:
    # select_related of the reverse one-to-one: the creation status comes in the same query.
    qs = BookingItem.objects.select_related("project", "created_event")
    return qs if is_hostmaster(user) else qs.filter(project__customer_id__in=customer_ids_of(user))


def hosting_assets_visible_to(user) -> QuerySet[HostingAsset]:
    qs = HostingAsset.objects.select_related("parent_asset", "assigned_to_asset")
    return qs if is_hostmaster(user) else qs.filter(customer_id__in=customer_ids_of(user))


def events_for_hostmasters() -> QuerySet[BookingItemCreatedEvent]:
    """What waits for a hostmaster first, then what failed, then the rest; oldest first within each."""
    rank = Case(
        When(waiting_for=Actor.HOSTMASTER, status=EventStatus.WAITING, then=Value(0)),
        When(waiting_for=Actor.HOSTMASTER, then=Value(1)),
        When(status=EventStatus.WAITING, then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )
    return (
        BookingItemCreatedEvent.objects.select_related("booking_item__project__customer", "operation")
        .annotate(attention=rank)
        .order_by("attention", "created_at")
    )
