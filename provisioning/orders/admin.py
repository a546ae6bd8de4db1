"""Admin for operators and hostmasters: orders, environments and their services. Vault values are
never shown: a service lists the names of its variables only."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from provisioning.orders import hosts
from provisioning.orders.models import DeployHost, Environment, Order, ServiceDeployment


@admin.register(DeployHost)
class DeployHostAdmin(admin.ModelAdmin):
    """Target hosts. The private key is write-only: pasted once, stored encrypted, never shown."""

    class Form(forms.ModelForm):
        private_key = forms.CharField(
            required=False,
            widget=forms.PasswordInput(render_value=False),
            strip=False,
            help_text="write-only: the OpenSSH private key the worker logs in with; leave empty to keep",
        )

        class Meta:
            model = DeployHost
            fields = [
                "name",
                "address",
                "ssh_port",
                "user",
                "host_key",
                "root",
                "capacity",
                "labels",
                "enabled",
            ]

        def clean_private_key(self) -> str:
            key = self.cleaned_data.get("private_key", "").replace("\r\n", "\n").strip()
            if key and not (key.startswith("-----BEGIN ") and "PRIVATE KEY-----" in key):
                raise forms.ValidationError("not an OpenSSH or PEM private key.")
            return key

    form = Form
    list_display = ["name", "address", "ssh_port", "user", "capacity", "enabled", "has_private_key"]
    list_filter = ["enabled"]
    search_fields = ["name", "address"]

    @admin.display(boolean=True)
    def has_private_key(self, obj: DeployHost) -> bool:
        return obj.has_private_key

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("private_key"):
            hosts.deploy_host_set_private_key(host=obj, private_key=form.cleaned_data["private_key"])


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
    list_display = [
        "service_id",
        "environment",
        "section",
        "path",
        "version",
        "status",
        "host",
        "port",
        "ordered",
    ]
    list_filter = ["status", "section", "type", "ordered", "host"]
    search_fields = ["service_id", "environment__key", "repository_url"]
    list_select_related = ["environment", "host"]
    readonly_fields = [
        "environment",
        "host",
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
