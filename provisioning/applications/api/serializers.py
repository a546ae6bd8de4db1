from rest_framework import serializers

from provisioning.applications.choices import Provider, RequestState
from provisioning.applications.models import NAME_PATTERN, ApplicationRequest, Team
from provisioning.models import Customer
from provisioning.validators import single_line


class ApplicationRequestInputSerializer(serializers.Serializer):
    application = serializers.RegexField(
        NAME_PATTERN,
        max_length=40,
        help_text="lowercase letters, digits and hyphens (it names the resources)",
    )
    team = serializers.RegexField(
        NAME_PATTERN, max_length=40, help_text="the name of a team of your customer"
    )
    authorizer = serializers.CharField(
        max_length=150, validators=[single_line], help_text="the username of the person who decides"
    )
    requested_resources = serializers.JSONField(
        required=False, help_text='resources by kind; default {"bucket": {}} (optional "index_html")'
    )
    provider = serializers.ChoiceField(choices=Provider.choices, default=Provider.AWS)
    time_limit_seconds = serializers.IntegerField(
        required=False, help_text="how long the authorizer has (default: APPLICATIONS_DECISION_TIMEOUT)"
    )
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all(), required=False)
    inject_fault = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="only with APPLICATIONS_FAULT_INJECTION"
    )


class DecisionInputSerializer(serializers.Serializer):
    approved = serializers.BooleanField()
    region = serializers.CharField(required=False, allow_blank=True, default="", max_length=40)
    profile = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class CancelInputSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class ApplicationRequestSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.name")
    team = serializers.CharField(source="team_name")
    requester = serializers.CharField(source="requester.username", default=None, allow_null=True)
    authorizer = serializers.CharField(source="authorizer_username")
    waiting = serializers.SerializerMethodField()
    decision = serializers.SerializerMethodField()

    class Meta:
        model = ApplicationRequest
        fields = [
            "id",
            "customer",
            "team",
            "application",
            "requested_resources",
            "provider",
            "requester",
            "authorizer",
            "time_limit_seconds",
            "decision_deadline",
            "state",
            "status",
            "instructions",
            "waiting",
            "decision",
            "resources",
            "error",
            "operation",
            "created_at",
            "updated_at",
            "finished_at",
        ]

    def get_waiting(self, obj: ApplicationRequest) -> dict | None:
        """Whom the request waits for and until when (null when it waits for nobody)."""
        if obj.state != RequestState.AWAITING_DECISION or obj.decision:
            return None
        return {
            "for": obj.authorizer_username,
            "until": obj.decision_deadline,
            "notified_at": obj.notified_at,
        }

    def get_decision(self, obj: ApplicationRequest) -> dict | None:
        if not obj.decision:
            return None
        return {
            "decision": obj.decision,
            "by": obj.decided_by.username if obj.decided_by else None,
            "at": obj.decided_at,
            "region": obj.region,
            "profile": obj.profile,
            "comment": obj.comment,
        }


class TeamSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(source="customer.name")
    members = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)
    authorizers = serializers.SlugRelatedField(slug_field="username", many=True, read_only=True)

    class Meta:
        model = Team
        fields = ["id", "customer", "name", "members", "authorizers", "created_at"]
