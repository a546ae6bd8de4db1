from __future__ import annotations

from rest_framework import serializers

from provisioning.orders.models import Order, ServiceDeployment


class ServiceDeploymentSerializer(serializers.ModelSerializer):
    """A service's status; its vault variables are named, never shown."""

    class Meta:
        model = ServiceDeployment
        fields = [
            "service_id",
            "section",
            "path",
            "type",
            "version",
            "repository_url",
            "variables",
            "ordered",
            "status",
            "status_message",
            "port",
            "deployed_commit",
            "deployed_at",
        ]


class OrderSerializer(serializers.ModelSerializer):
    environment_id = serializers.CharField(source="environment.key")
    services = ServiceDeploymentSerializer(source="environment.deployments", many=True)
    operation = serializers.UUIDField(source="operation_id", allow_null=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "action",
            "environment_id",
            "status",
            "progress",
            "message",
            "error",
            "changes",
            "tasks",
            "services",
            "operation",
            "created_at",
            "finished_at",
        ]
