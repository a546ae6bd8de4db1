"""Reads of the bookings app: what a user may see (hostmasters see everything)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Value, When

from bookings.choices import Actor, BookingItemType, EventStatus
from bookings.models import BookingItem, BookingItemCreatedEvent, HostingAsset, Project
from bookings.verification import txt_record, verification_code
from provisioning.models import Operation
from provisioning.saga.definition import StatusView
from provisioning.saga.runner import status_view
from provisioning.saga.versions import saga_view
from provisioning.selectors import customer_ids_of
from provisioning.services import is_hostmaster


def projects_visible_to(user) -> QuerySet[Project]:
    qs = Project.objects.select_related("customer")
    return qs if is_hostmaster(user) else qs.filter(customer_id__in=customer_ids_of(user))


def booking_items_visible_to(user) -> QuerySet[BookingItem]:
    # select_related of the reverse one-to-one: the creation status comes in the same query.
    qs = BookingItem.objects.select_related("project", "created_event")
    return qs if is_hostmaster(user) else qs.filter(project__customer_id__in=customer_ids_of(user))


def booking_items_for_overview(user) -> QuerySet[BookingItem]:
    """Newest first, each with its creation status (the event) and whether any asset exists yet."""
    has_assets = Exists(HostingAsset.objects.filter(booking_item_id=OuterRef("pk")))
    return booking_items_visible_to(user).annotate(has_assets=has_assets).order_by("-created_at", "-id")


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


def events_waiting_for_hostmasters() -> QuerySet[BookingItemCreatedEvent]:
    """Events a hostmaster must act on: a target server to assign, a manual setup, a failure."""
    return events_for_hostmasters().filter(waiting_for=Actor.HOSTMASTER)


@dataclass(frozen=True)
class CreationStatus:
    """What a booking item's page shows about the creation of its hosting assets."""

    event: BookingItemCreatedEvent | None  # gone once the assets exist
    operation: Operation | None
    view: StatusView | None  # "step k of n: title" of the operation
    assets: list[HostingAsset]
    txt_record: str  # the DNS record to add, while a domain waits for it

    @property
    def final(self) -> bool:
        """Nothing will change by itself any more: the page may stop looking."""
        return self.event is None or self.event.is_terminal

    @property
    def version(self) -> str:
        """Changes whenever what the page shows changes."""
        return ":".join(
            [
                self.event.status if self.event else "-",
                str(self.event.updated_at.timestamp()) if self.event else "-",
                str(self.operation.version) if self.operation else "-",
                str(len(self.assets)),
            ]
        )


def booking_item_creation(item: BookingItem) -> CreationStatus:
    event = BookingItemCreatedEvent.objects.select_related("operation").filter(booking_item=item).first()
    assets = list(
        HostingAsset.objects.filter(Q(booking_item=item) | Q(parent_asset__booking_item=item))
        .select_related("parent_asset", "assigned_to_asset")
        .order_by("id")
    )
    operation = event.operation if event is not None else None
    if operation is None and assets:
        operation = Operation.objects.filter(pk=assets[0].created_by_id).first()
    view = None
    if operation is not None:
        try:
            view = status_view(operation, saga_view(operation))
        except LookupError:
            view = None
    record = ""
    if (
        event is not None
        and event.is_active
        and event.waiting_for == Actor.CUSTOMER
        and item.type == BookingItemType.DOMAIN_SETUP
    ):
        domain = item.resources["domainName"]
        record = txt_record(domain, verification_code(customer_id=item.project.customer_id, domain=domain))
    return CreationStatus(event=event, operation=operation, view=view, assets=assets, txt_record=record)
