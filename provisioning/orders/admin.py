"""Admin for operators and hostmasters: orders, environments and their services. Vault values are
never shown: a service lists the names of its variables only."""

from __future__ import annotations

from django.contrib import admin

from provisioning.orders.models import Environment, Order, ServiceDeployment


class ServiceDeploymentInline(admin.TabularInline):
    model = ServiceDeployment
    extra = 0
    can_delete = False
    fields = ["service_id", "section", "path", "version", "status", "status_message", "port"]
    readonly_fields = fields
    show_change_link = True


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    list_display = ["key", "customer", "state", "updated_at"]
    list_filter = ["state"]
    search_fields = ["key", "customer__name"]
    list_select_related = ["customer"]
    readonly_fields = ["key", "customer", "domains", "state", "created_at", "updated_at"]
    inlines = [ServiceDeploymentInline]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "action", "environment", "status", "progress", "created_at", "finished_at"]
    list_filter = ["status", "action"]
    search_fields = ["environment__key", "customer__name", "message"]
    list_select_related = ["environment", "customer"]
    readonly_fields = [
        "customer",
        "created_by",
        "environment",
        "action",
        "spec",
        "changes",
        "status",
        "progress",
        "message",
        "error",
        "tasks",
        "operation",
        "created_at",
        "finished_at",
    ]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False  # orders come in through the API or process_order, validated


@admin.register(ServiceDeployment)
class ServiceDeploymentAdmin(admin.ModelAdmin):
    list_display = ["service_id", "environment", "section", "path", "version", "status", "port", "ordered"]
    list_filter = ["status", "section", "type", "ordered"]
    search_fields = ["service_id", "environment__key", "repository_url"]
    list_select_related = ["environment"]
    readonly_fields = [
        "environment",
        "service_id",
        "section",
        "path",
        "repository_url",
        "version",
        "type",
        "roles",
        "variables",
        "vault_names",
        "ordered",
        "port",
        "workdir",
        "pid",
        "deployed_spec",
        "deployed_commit",
        "deployed_at",
        "status",
        "status_message",
    ]
    exclude = []

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="vault variables (names only)")
    def vault_names(self, obj: ServiceDeployment) -> str:
        return ", ".join(obj.vault.values_list("name", flat=True)) or "-"
