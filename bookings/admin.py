"""Admin for hostmasters: events that wait for a hostmaster come first; every action calls a service."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from bookings import selectors, services
from bookings.models import BookingItem, BookingItemCreatedEvent, HostingAsset, Project
from provisioning.services import ServiceError


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["caption", "customer", "created_at"]
    search_fields = ["caption", "customer__name"]
    list_select_related = ["customer"]


@admin.register(BookingItem)
class BookingItemAdmin(admin.ModelAdmin):
    list_display = ["caption", "type", "project", "parent_item", "valid_from", "valid_to", "created_at"]
    list_filter = ["type"]
    search_fields = [
        "caption",
        "project__caption",
        "project__customer__name",
        "resources__domainName",
        "hosting_assets__identifier",
    ]
    list_select_related = ["project", "parent_item"]
    raw_id_fields = ["project", "parent_item"]
    date_hierarchy = "created_at"


@admin.register(HostingAsset)
class HostingAssetAdmin(admin.ModelAdmin):
    list_display = ["identifier", "type", "customer", "parent_asset", "assigned_to_asset", "booking_item"]
    list_filter = ["type"]
    search_fields = ["identifier", "caption", "customer__name"]
    list_select_related = ["customer", "parent_asset", "assigned_to_asset", "booking_item"]
    raw_id_fields = ["booking_item", "parent_asset", "assigned_to_asset", "created_by"]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)  # the database trigger still guards it
            return
        created = services.hosting_asset_create(
            type=obj.type,
            identifier=obj.identifier,
            caption=obj.caption,
            config=obj.config,
            customer=obj.customer,
            booking_item=obj.booking_item,
            parent_asset=obj.parent_asset,
            assigned_to_asset=obj.assigned_to_asset,
        )
        obj.pk = created.pk


class EventActionForm(ActionForm):
    value = forms.CharField(
        required=False,
        label="Server / identifier",
        help_text="the target server (vm1234) to assign, or the identifier of the server set up by hand",
    )


@admin.register(BookingItemCreatedEvent)
class BookingItemCreatedEventAdmin(admin.ModelAdmin):
    list_display = [
        "booking_item",
        "type",
        "customer",
        "status",
        "waiting_for",
        "message",
        "operation_link",
        "updated_at",
    ]
    list_filter = ["waiting_for", "status", "booking_item__type"]
    search_fields = [
        "booking_item__caption",
        "booking_item__project__customer__name",
        "booking_item__resources__domainName",
        "asset_data__identifier",
        "status_message",
    ]
    list_select_related = ["booking_item__project__customer", "operation"]
    readonly_fields = [
        "booking_item",
        "asset_data",
        "status",
        "status_message",
        "instructions",
        "waiting_for",
        "operation",
        "created_at",
        "updated_at",
    ]
    action_form = EventActionForm
    actions = ["assign_target_server", "mark_setup_done", "retry", "cancel"]

    def get_queryset(self, request):
        return selectors.events_for_hostmasters()

    def get_ordering(self, request):
        return ["attention", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="type", ordering="booking_item__type")
    def type(self, event: BookingItemCreatedEvent) -> str:
        return event.booking_item.type

    @admin.display(description="customer")
    def customer(self, event: BookingItemCreatedEvent) -> str:
        return event.booking_item.project.customer.name

    @admin.display(description="message")
    def message(self, event: BookingItemCreatedEvent) -> str:
        return event.status_message[:120]

    @admin.display(description="operation")
    def operation_link(self, event: BookingItemCreatedEvent) -> str:
        if event.operation_id is None:
            return "-"
        return format_html('<a href="{}">timeline</a>', reverse("operation", args=[event.operation_id]))

    def _each(self, request, queryset, action, done: str) -> None:
        ok = 0
        for event in queryset:
            try:
                action(event)
                ok += 1
            except (ServiceError, ValidationError) as exc:
                text = getattr(exc, "message", None) or "; ".join(getattr(exc, "messages", [str(exc)]))
                self.message_user(request, f"{event.booking_item}: {text}", messages.ERROR)
        if ok:
            self.message_user(request, f"{done}: {ok} event(s).", messages.SUCCESS)

    @admin.action(description="Assign target server (give it in the field)")
    def assign_target_server(self, request, queryset) -> None:
        server = request.POST.get("value", "")
        self._each(
            request,
            queryset,
            lambda e: services.event_assign_target_server(
                event=e, server_identifier=server, user=request.user
            ),
            f"Assigned {server}",
        )

    @admin.action(description="Mark manual setup done (server identifier in the field)")
    def mark_setup_done(self, request, queryset) -> None:
        identifier = request.POST.get("value", "")
        self._each(
            request,
            queryset,
            lambda e: services.event_mark_setup_done(event=e, identifier=identifier, user=request.user),
            "Marked done",
        )

    @admin.action(description="Retry now")
    def retry(self, request, queryset) -> None:
        self._each(request, queryset, lambda e: services.event_retry(event=e, user=request.user), "Retried")

    @admin.action(description="Cancel")
    def cancel(self, request, queryset) -> None:
        self._each(
            request, queryset, lambda e: services.event_cancel(event=e, user=request.user), "Cancelled"
        )
