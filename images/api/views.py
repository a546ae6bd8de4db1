from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from images import selectors, services
from images.api.serializers import (
    BuildLaunchInputSerializer,
    CloudAccountSerializer,
    ImageBuildSerializer,
    PublicKeySerializer,
    ReservationSerializer,
)
from provisioning.api.idempotency import IdempotentPosts
from provisioning.api.serializers import OperationSerializer
from provisioning.api.throttling import RateLimitedCreate

_Launched = inline_serializer(
    "BuildLaunchAnswer",
    {
        "build": ImageBuildSerializer(),
        "reservation": ReservationSerializer(),
        "operation": OperationSerializer(),
    },
)


class ImageBuildViewSet(
    RateLimitedCreate,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    IdempotentPosts,
    viewsets.GenericViewSet,
):
    """Image builds. POST is "Build and launch": the build, its reservation and the operation that
    builds the image and launches it when it is ready."""

    serializer_class = ImageBuildSerializer
    rate_limit_action = "image_builds"

    def get_queryset(self):
        return selectors.builds_visible_to(self.request.user)

    @extend_schema(request=BuildLaunchInputSerializer, responses={201: _Launched})
    def create(self, request, *args, **kwargs):
        data = BuildLaunchInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        customer = services.customer_for(request.user, fields.pop("customer", None))
        launched = services.image_build_launch(customer=customer, user=request.user, **fields)
        reservation = selectors.reservations_visible_to(request.user).get(pk=launched.reservation.pk)
        return Response(
            {
                "build": ImageBuildSerializer(reservation.build).data,
                "reservation": ReservationSerializer(reservation).data,
                "operation": OperationSerializer(launched.operation, context={"request": request}).data,
            },
            status=status.HTTP_201_CREATED,
        )


class ReservationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, IdempotentPosts, viewsets.GenericViewSet
):
    """Launch reservations: `status` says "step k of n: title" while it runs and the outcome after."""

    serializer_class = ReservationSerializer

    def get_queryset(self):
        return selectors.reservations_visible_to(self.request.user)

    @extend_schema(request=None, responses={202: ReservationSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel the launch: the saga stops and terminates what it launched."""
        reservation = self.get_object()
        services.reservation_cancel(reservation=reservation, user=request.user)
        reservation = self.get_queryset().get(pk=reservation.pk)
        return Response(self.get_serializer(reservation).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: ReservationSerializer})
    @action(detail=True, methods=["post"])
    def terminate(self, request, pk=None):
        """Terminate the instances of a finished launch."""
        reservation = self.get_object()
        services.reservation_terminate(reservation=reservation, user=request.user)
        reservation = self.get_queryset().get(pk=reservation.pk)
        return Response(self.get_serializer(reservation).data)


class PublicKeyViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    IdempotentPosts,
    viewsets.GenericViewSet,
):
    """SSH public keys put on launched instances. A private key is refused, never stored."""

    serializer_class = PublicKeySerializer

    def get_queryset(self):
        return selectors.public_keys_visible_to(self.request.user)

    def perform_create(self, serializer) -> None:
        data = serializer.validated_data
        serializer.instance = services.public_key_create(
            customer=services.customer_for(self.request.user, data.get("customer")),
            name=data["name"],
            body=data["body"],
        )


@extend_schema(parameters=[OpenApiParameter("provider", str, description="only accounts of this provider")])
class CloudAccountViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    IdempotentPosts,
    viewsets.GenericViewSet,
):
    """The provider accounts a customer launches into; credentials are write-only."""

    serializer_class = CloudAccountSerializer

    def get_queryset(self):
        return selectors.cloud_accounts_visible_to(
            self.request.user, self.request.query_params.get("provider")
        )

    def perform_create(self, serializer) -> None:
        data = dict(serializer.validated_data)
        customer = services.customer_for(self.request.user, data.pop("customer", None))
        serializer.instance = services.cloud_account_create(customer=customer, **data)
