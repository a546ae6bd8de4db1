from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from provisioning.api.idempotency import IdempotentPosts
from provisioning.api.serializers import OperationSerializer
from provisioning.applications import selectors, services
from provisioning.applications.api.serializers import (
    ApplicationRequestInputSerializer,
    ApplicationRequestSerializer,
    CancelInputSerializer,
    DecisionInputSerializer,
    TeamSerializer,
)

_Submitted = inline_serializer(
    "ApplicationRequestSubmitted",
    {"request": ApplicationRequestSerializer(), "operation": OperationSerializer()},
)


class ApplicationRequestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, IdempotentPosts, viewsets.GenericViewSet
):
    """Application resource requests: submitted by a team member, decided by the named authorizer,
    provisioned by a saga. `state`, `waiting`, `decision`, `resources` and `error` show where it stands."""

    serializer_class = ApplicationRequestSerializer

    def get_queryset(self):
        return selectors.requests_visible_to(self.request.user)

    @extend_schema(request=ApplicationRequestInputSerializer, responses={201: _Submitted})
    def create(self, request, *args, **kwargs):
        data = ApplicationRequestInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        customer = services.customer_for(request.user, fields.pop("customer", None))
        submitted = services.application_request_create(requester=request.user, customer=customer, **fields)
        submitted = self.get_queryset().get(pk=submitted.pk)
        return Response(
            {
                "request": self.get_serializer(submitted).data,
                "operation": OperationSerializer(submitted.operation, context={"request": request}).data,
            },
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        request=DecisionInputSerializer,
        responses={200: ApplicationRequestSerializer},
        description="Approve (with `region` and `profile`) or reject (with an optional `comment`). Only the "
        "named authorizer or a hostmaster may decide (403); a second decision, or one after the deadline, "
        "answers 409 with the reason.",
    )
    @action(detail=True, methods=["post"])
    def decision(self, request, pk=None):
        target = self.get_object()
        data = DecisionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.application_request_decide(request=target, user=request.user, **data.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=target.pk)).data)

    @extend_schema(request=CancelInputSerializer, responses={202: ApplicationRequestSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel the request: nothing more is created, and what was created is removed."""
        target = self.get_object()
        data = CancelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.application_request_cancel(request=target, user=request.user, **data.validated_data)
        return Response(
            self.get_serializer(self.get_queryset().get(pk=target.pk)).data, status=status.HTTP_202_ACCEPTED
        )


class TeamViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, IdempotentPosts, viewsets.GenericViewSet):
    """Application teams of your customer (managed by hostmasters in the admin)."""

    serializer_class = TeamSerializer

    def get_queryset(self):
        return selectors.teams_visible_to(self.request.user)
