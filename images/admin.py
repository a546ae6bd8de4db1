"""Admin for hostmasters: builds and reservations with their status, step and instances. Credentials
of cloud accounts can be set here but are never shown. Every action calls a service."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from images import services
from images.models import CloudAccount, ImageBuild, PublicKey, Reservation, ReservationInstance
from provisioning.services import ServiceError


@admin.register(CloudAccount)
class CloudAccountAdmin(admin.ModelAdmin):
    class Form(forms.ModelForm):
        access_key_id = forms.CharField(required=False, help_text="write-only: leave empty to keep")
        secret_access_key = forms.CharField(
            required=False, widget=forms.PasswordInput, help_text="write-only: leave empty to keep"
        )

        class Meta:
            model = CloudAccount
            fields = [
                "customer",
                "provider",
                "name",
                "account_id",
                "role_arn",
                "profile",
                "external_id",
                "operator_managed",
            ]

        def clean(self) -> dict:
            data = super().clean()
            has_keys = bool(data.get("access_key_id")) or bool(
                self.instance.pk and self.instance.has_credentials
            )
            errors = services.cloud_account_credential_errors(
                provider=data.get("provider") or "",
                role_arn=(data.get("role_arn") or "").strip(),
                profile=(data.get("profile") or "").strip(),
                external_id=(data.get("external_id") or "").strip(),
                has_keys=has_keys,
                operator_managed=bool(data.get("operator_managed")),
            )
            for field, messages_ in errors.items():
                self.add_error(field if field in self.fields else None, messages_)
            return data

    form = Form
    list_display = [
        "name",
        "provider",
        "customer",
        "account_id",
        "has_credentials",
        "operator_managed",
        "created_at",
    ]
    list_filter = ["provider", "operator_managed"]
    search_fields = ["name", "account_id", "customer__name"]
    list_select_related = ["customer"]

    @admin.display(boolean=True)
    def has_credentials(self, obj: CloudAccount) -> bool:
        return obj.has_credentials

    def save_model(self, request, obj, form, change) -> None:
        key, secret = form.cleaned_data.get("access_key_id"), form.cleaned_data.get("secret_access_key")
        if key or secret:
            obj.set_credentials({"access_key_id": key, "secret_access_key": secret})
        super().save_model(request, obj, form, change)


@admin.register(PublicKey)
class PublicKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "customer", "type", "fingerprint", "created_at"]
    list_filter = ["type"]
    search_fields = ["name", "fingerprint", "customer__name"]
    list_select_related = ["customer"]
    readonly_fields = ["type", "fingerprint"]


class ReservationInline(admin.TabularInline):
    model = Reservation
    fields = ["state", "status", "amount", "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(ImageBuild)
class ImageBuildAdmin(admin.ModelAdmin):
    list_display = ["name", "provider", "status", "customer", "one_off", "created_at"]
    list_filter = ["status", "provider"]
    search_fields = ["name", "customer__name"]
    list_select_related = ["customer"]
    readonly_fields = ["image_ids", "error", "status", "created_by", "created_at", "updated_at"]
    raw_id_fields = ["customer"]
    inlines = [ReservationInline]
    date_hierarchy = "created_at"


class InstanceInline(admin.TabularInline):
    model = ReservationInstance
    fields = ["instance_id", "region", "state", "detail", "updated_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    list_display = ["id", "provider", "state", "progress", "customer", "amount", "success", "created_at"]
    list_filter = ["state", "provider", "success"]
    search_fields = ["id", "build__name", "customer__name", "instances__instance_id"]
    list_select_related = ["customer", "build"]
    raw_id_fields = ["customer", "build", "account", "pubkey"]
    readonly_fields = [
        "operation_link",
        "state",
        "status",
        "step",
        "steps",
        "step_titles",
        "error",
        "success",
        "finished_at",
        "detail",
        "status_listener",
        "listener_key",
    ]
    exclude = ["operation"]
    inlines = [InstanceInline]
    actions = ["cancel"]
    date_hierarchy = "created_at"

    @admin.display(description="progress")
    def progress(self, obj: Reservation) -> str:
        return obj.status

    @admin.display(description="operation")
    def operation_link(self, obj: Reservation) -> str:
        if obj.operation_id is None:
            return "-"
        return format_html(
            '<a href="../../../provisioning/operation/{}/change/">{}</a>', obj.operation_id, obj.operation_id
        )

    @admin.action(description="Cancel the launch (terminates what it launched)")
    def cancel(self, request, queryset) -> None:
        for reservation in queryset:
            try:
                services.reservation_cancel(reservation=reservation, user=request.user)
            except ServiceError as exc:
                self.message_user(request, f"{reservation}: {exc.message}", messages.WARNING)
            else:
                self.message_user(request, f"{reservation}: cancelled")
