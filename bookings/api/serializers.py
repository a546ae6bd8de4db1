from __future__ import annotations

from rest_framework import serializers

from bookings.choices import BookingItemType
from bookings.models import BookingItem, BookingItemCreatedEvent, HostingAsset, Project
from provisioning.models import Customer
from provisioning.validators import single_line


class ProjectSerializer(serializers.ModelSerializer):
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all(), required=False)

    class Meta:
        model = Project
        fields = ["id", "customer", "caption", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"caption": {"validators": [single_line]}}
        validators: list = []  # the service defaults the customer and checks the caption is free


class HostingAssetCreationSerializer(serializers.ModelSerializer):
    """The status of the assets' creation while it goes on (the event); null once they exist."""

    status = serializers.CharField()
    message = serializers.CharField(source="status_message")
    instructions = serializers.CharField()
    waiting_for = serializers.CharField()
    operation = serializers.UUIDField(source="operation_id", allow_null=True)

    class Meta:
        model = BookingItemCreatedEvent
        fields = ["status", "message", "instructions", "waiting_for", "operation", "updated_at"]


class BookingItemSerializer(serializers.ModelSerializer):
    hosting_asset_creation = serializers.SerializerMethodField()

    class Meta:
        model = BookingItem
        fields = [
            "id",
            "project",
            "parent_item",
            "type",
            "caption",
            "resources",
            "valid_from",
            "valid_to",
            "created_at",
            "hosting_asset_creation",
        ]

    def get_hosting_asset_creation(self, item: BookingItem) -> dict | None:
        # `created_event` comes with the item (select_related): no query here.
        try:
            event = item.created_event
        except BookingItemCreatedEvent.DoesNotExist:
            return None
        return HostingAssetCreationSerializer(event).data


class BookingItemInputSerializer(serializers.Serializer):
    """The shape only; the service validates resources and asset data per type, naming each field."""

    project = serializers.IntegerField(required=False, allow_null=True)
    parent_item = serializers.IntegerField(required=False, allow_null=True)
    type = serializers.ChoiceField(choices=BookingItemType.choices)
    caption = serializers.CharField(max_length=80, validators=[single_line])
    resources = serializers.JSONField(required=False, default=dict)
    valid_from = serializers.DateField(required=False, allow_null=True)
    valid_to = serializers.DateField(required=False, allow_null=True)
    hosting_asset = serializers.JSONField(required=False, allow_null=True)

    def validate_resources(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object.")
        return value


class HostingAssetSerializer(serializers.ModelSerializer):
    parent_asset = serializers.SlugRelatedField(slug_field="identifier", read_only=True, allow_null=True)
    assigned_to_asset = serializers.SlugRelatedField(slug_field="identifier", read_only=True, allow_null=True)

    class Meta:
        model = HostingAsset
        fields = [
            "id",
            "type",
            "identifier",
            "caption",
            "config",
            "booking_item",
            "parent_asset",
            "assigned_to_asset",
            "created_at",
        ]
