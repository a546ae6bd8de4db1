from __future__ import annotations

from rest_framework import serializers

from images.choices import ProviderName
from images.models import CloudAccount, ImageBuild, PublicKey, Reservation, ReservationInstance
from provisioning.models import Customer
from provisioning.validators import single_line


class BuildLaunchInputSerializer(serializers.Serializer):
    """Build and launch. The manifest and the launch details are checked by the service, which names
    every bad field (`manifest.target.regions[1]`, `launch.amount`, ...)."""

    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all(), required=False)
    name = serializers.CharField(max_length=80, validators=[single_line])
    manifest = serializers.JSONField(
        help_text="distribution, architecture, packages, customizations (users with ssh_key, files, "
        "services), target (provider, regions)"
    )
    launch = serializers.JSONField(
        help_text="amount (spread over the regions), instance_type, account, pubkey or public_key, "
        "one_off_image, inject_fault (only with IMAGES_FAULT_INJECTION)"
    )


class ReservationInstanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReservationInstance
        fields = ["instance_id", "region", "state", "detail", "updated_at"]


class ReservationSerializer(serializers.ModelSerializer):
    instances = ReservationInstanceSerializer(many=True, read_only=True)
    instances_per_region = serializers.SerializerMethodField()
    build = serializers.PrimaryKeyRelatedField(read_only=True)
    operation = serializers.UUIDField(source="operation_id", read_only=True, allow_null=True)
    account = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    pubkey = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Reservation
        fields = [
            "id",
            "uid",
            "build",
            "provider",
            "account",
            "pubkey",
            "amount",
            "instance_type",
            "instances_per_region",
            "state",
            "status",
            "step",
            "steps",
            "step_titles",
            "error",
            "success",
            "finished_at",
            "instances",
            "operation",
            "created_at",
            "updated_at",
        ]

    def get_instances_per_region(self, reservation: Reservation) -> dict[str, int]:
        return reservation.regions


class ImageBuildSerializer(serializers.ModelSerializer):
    reservations = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = ImageBuild
        fields = [
            "id",
            "name",
            "provider",
            "regions",
            "manifest",
            "status",
            "image_ids",
            "error",
            "one_off",
            "reservations",
            "created_at",
            "updated_at",
        ]


class PublicKeySerializer(serializers.ModelSerializer):
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all(), required=False)

    class Meta:
        model = PublicKey
        fields = ["id", "customer", "name", "body", "type", "fingerprint", "created_at"]
        read_only_fields = ["id", "type", "fingerprint", "created_at"]
        extra_kwargs = {"name": {"validators": [single_line]}}
        validators: list = []  # the service checks the key and returns the one already stored


class CloudAccountSerializer(serializers.ModelSerializer):
    """A provider account. The credentials are write-only: accepted, stored encrypted, never shown."""

    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all(), required=False)
    provider = serializers.ChoiceField(choices=ProviderName.choices)
    access_key_id = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=128, validators=[single_line]
    )
    secret_access_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=256, style={"input_type": "password"}
    )
    has_credentials = serializers.BooleanField(read_only=True)

    class Meta:
        model = CloudAccount
        fields = [
            "id",
            "customer",
            "provider",
            "name",
            "account_id",
            "role_arn",
            "profile",
            "external_id",
            "access_key_id",
            "secret_access_key",
            "has_credentials",
            "operator_managed",
            "created_at",
        ]
        read_only_fields = ["id", "operator_managed", "created_at"]
        extra_kwargs = {
            name: {"validators": [single_line]}
            for name in ("name", "account_id", "role_arn", "profile", "external_id")
        }
        validators: list = []
