"""Admin for hostmasters: teams, and application requests with their state, decision, resources and
error. Every action calls a service."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from provisioning.applications import services
from provisioning.applications.models import ApplicationRequest, Team
from provisioning.services import ServiceError


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "customer", "created_at"]
    list_filter = ["customer"]
    search_fields = ["name", "customer__name", "members__username"]
    list_select_related = ["customer"]
    filter_horizontal = ["members", "authorizers"]


@admin.register(ApplicationRequest)
class ApplicationRequestAdmin(admin.ModelAdmin):
    list_display = [
        "application",
        "team_name",
        "customer",
        "provider",
        "state",
        "authorizer_username",
        "decision",
        "region",
        "decision_deadline",
        "created_at",
    ]
    list_filter = ["state", "provider", "decision"]
    search_fields = ["id", "application", "team_name", "customer__name", "authorizer_username"]
    list_select_related = ["customer", "requester", "authorizer"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "customer",
        "team",
        "team_name",
        "application",
        "requested_resources",
        "provider",
        "requester",
        "authorizer",
        "authorizer_username",
        "time_limit_seconds",
        "decision_deadline",
        "notified_at",
        "inject_fault",
        "decision",
        "decided_by",
        "decided_at",
        "region",
        "profile",
        "comment",
        "operation_link",
        "state",
        "status",
        "instructions",
        "resources",
        "error",
        "created_at",
        "updated_at",
        "finished_at",
    ]
    exclude = ["operation"]
    actions = ["cancel"]

    def has_add_permission(self, request) -> bool:
        return False  # requests are submitted by teams, through the API or the wizard

    @admin.display(description="operation")
    def operation_link(self, obj: ApplicationRequest) -> str:
        if obj.operation_id is None:
            return "-"
        return format_html(
            '<a href="../../../provisioning/operation/{}/change/">{}</a>', obj.operation_id, obj.operation_id
        )

    @admin.action(description="Cancel the request (removes what it created)")
    def cancel(self, request, queryset) -> None:
        for target in queryset.select_related("operation"):
            try:
                services.application_request_cancel(
                    request=target, user=request.user, reason="from the admin"
                )
            except ServiceError as exc:
                self.message_user(request, f"{target}: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"{target}: cancelled")
