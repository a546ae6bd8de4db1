from django.contrib import admin, messages
from rest_framework.authtoken.models import TokenProxy

from provisioning.models import Customer, IdempotencyKey, Membership, Operation, Signal, StepRun
from provisioning.services import ServiceError, operation_cancel, operation_retry
from provisioning.timeline import timeline_svg

# DRF's token admin shows every API token in its list and page titles. Tokens are made and renewed
# with `manage.py create_api_user`; nobody needs to read them back in the admin.
if admin.site.is_registered(TokenProxy):
    admin.site.unregister(TokenProxy)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    can_delete = False
    fields = [
        "step",
        "kind",
        "attempt",
        "started_at",
        "finished_at",
        "outcome",
        "message",
        "retry_delay",
        "worker",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class SignalInline(admin.TabularInline):
    model = Signal
    extra = 0
    can_delete = False
    fields = ["name", "sent_by", "created_at", "consumed_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "state", "customer", "message", "created_at", "updated_at"]
    list_filter = ["state", "kind", "queue"]
    search_fields = ["id", "subject_id", "customer__name", "message", "error_message"]
    list_select_related = ["customer"]
    date_hierarchy = "created_at"
    actions = ["retry_now", "cancel"]
    inlines = [StepRunInline, SignalInline]
    readonly_fields = [
        "id",
        "kind",
        "customer",
        "subject_type",
        "subject_id",
        "queue",
        "state",
        "position",
        "message",
        "waiting_for",
        "wait_deadline",
        "instructions",
        "end_state",
        "error_message",
        "error_detail",
        "deadline",
        "heartbeat_at",
        "next_run_at",
        "sweep_at",
        "created_at",
        "updated_at",
        "finished_at",
        "timeline",
    ]
    exclude = ["steps", "data"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Timeline")
    def timeline(self, obj: Operation) -> str:
        return timeline_svg(obj) if obj.pk else ""

    @admin.action(description="Retry the waiting or retrying step now")
    def retry_now(self, request, queryset) -> None:
        self._each(request, queryset, lambda op: operation_retry(operation=op, user=request.user), "retried")

    @admin.action(description="Cancel (undo what was finished)")
    def cancel(self, request, queryset) -> None:
        self._each(
            request, queryset, lambda op: operation_cancel(operation=op, user=request.user), "cancelled"
        )

    def _each(self, request, queryset, action, verb: str) -> None:
        done = 0
        for op in queryset:
            try:
                action(op)
                done += 1
            except ServiceError as exc:
                self.message_user(request, f"{op.id}: {exc.message}", messages.WARNING)
        if done:
            self.message_user(request, f"{done} operation(s) {verb}.", messages.SUCCESS)


@admin.register(IdempotencyKey)
class IdempotencyKeyAdmin(admin.ModelAdmin):
    """Read only: what a client's key answered, for a hostmaster who looks into a "sent twice"."""

    list_display = ["key", "scope", "state", "status_code", "created_at", "expires_at"]
    list_filter = ["state"]
    search_fields = ["key", "scope"]
    readonly_fields = [f.name for f in IdempotencyKey._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
