from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from bookings import selectors, services
from bookings.api.serializers import (
    BookingItemInputSerializer,
    BookingItemSerializer,
    HostingAssetSerializer,
    ProjectSerializer,
)
from provisioning.api.idempotency import IdempotentPosts
from provisioning.api.throttling import RateLimitedCreate, body_field, named_or_own_customer


class ProjectViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    IdempotentPosts,
    viewsets.GenericViewSet,
):
    """The caller's projects; a project belongs to one customer."""

    serializer_class = ProjectSerializer

    def get_queryset(self):
        return selectors.projects_visible_to(self.request.user)

    def perform_create(self, serializer) -> None:
        serializer.instance = services.project_create(
            user=self.request.user,
            caption=serializer.validated_data["caption"],
            customer=serializer.validated_data.get("customer"),
        )


class BookingItemViewSet(
    RateLimitedCreate,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    IdempotentPosts,
    viewsets.GenericViewSet,
):
    """Booking items. A POST with `hosting_asset` also starts the creation of the hosting assets:
    the answer is 201 even when it must wait (see `hosting_asset_creation`)."""

    serializer_class = BookingItemSerializer
    rate_limit_action = "booking_items"

    def get_queryset(self):
        return selectors.booking_items_visible_to(self.request.user)

    def rate_limit_customer(self, request):
        project = body_field(request, "project")
        if isinstance(project, int):
            found = selectors.projects_visible_to(request.user).filter(pk=project).first()
            if found is not None:
                return found.customer
        return named_or_own_customer(request)

    @extend_schema(request=BookingItemInputSerializer, responses={201: BookingItemSerializer})
    def create(self, request, *args, **kwargs):
        data = BookingItemInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        project_id, parent_id = fields.pop("project", None), fields.pop("parent_item", None)
        project = parent = None
        errors = {}
        if project_id is not None:
            project = selectors.projects_visible_to(request.user).filter(pk=project_id).first()
            if project is None:
                errors["project"] = ["Unknown project."]
        if parent_id is not None:
            parent = self.get_queryset().select_related("project__customer").filter(pk=parent_id).first()
            if parent is None:
                errors["parent_item"] = ["Unknown booking item."]
        if errors:
            raise ValidationError(errors)
        item = services.booking_item_create(user=request.user, project=project, parent_item=parent, **fields)
        item = self.get_queryset().get(pk=item.pk)
        return Response(self.get_serializer(item).data, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[OpenApiParameter("booking_item", int, description="only the assets of this item")])
class HostingAssetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = HostingAssetSerializer

    def get_queryset(self):
        qs = selectors.hosting_assets_visible_to(self.request.user)
        item = self.request.query_params.get("booking_item")
        if item is not None:
            if not item.isdigit():
                raise ValidationError({"booking_item": ["must be a booking item's id."]})
            qs = qs.filter(booking_item_id=int(item)) | qs.filter(parent_asset__booking_item_id=int(item))
        return qs.order_by("id")
