from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from provisioning.api.idempotency import IdempotentPosts
from provisioning.orders import selectors, services
from provisioning.orders.api.serializers import OrderSerializer
from provisioning.orders.spec import MAX_BYTES, OrderInvalid


class YamlBody(bytes):
    """The raw order, at most MAX_BYTES + 1 bytes read (one more tells that it was too long)."""


class YamlParser(BaseParser):
    """Hands the raw text to the order spec, which loads it safely; reads no more than it accepts."""

    media_type = "application/yaml"

    def parse(self, stream, media_type=None, parser_context=None) -> YamlBody:
        return YamlBody(stream.read(MAX_BYTES + 1) if stream is not None else b"")


class _YamlAliases(YamlParser):
    media_type = "text/yaml"


class _YamlAliasesX(YamlParser):
    media_type = "application/x-yaml"


class OrderViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, IdempotentPosts, viewsets.GenericViewSet
):
    """Environment orders: POST an `order.yml`, follow its workflow, task by task and service by
    service. Vault values never appear here."""

    serializer_class = OrderSerializer
    parser_classes = [YamlParser, _YamlAliases, _YamlAliasesX]

    def get_queryset(self):
        return selectors.orders_visible_to(self.request.user)

    @extend_schema(
        request={"application/yaml": OpenApiTypes.STR},
        responses={201: OrderSerializer, 400: OpenApiTypes.OBJECT, 409: OpenApiTypes.OBJECT},
        examples=[
            OpenApiExample(
                "order.yml",
                request_only=True,
                media_type="application/yaml",
                value="action: update\nenvironment_id: '3'\napi:\n  domains: [api.example.com]\n"
                "  services:\n    - id: '6'\n      path: /\n      repository: {url: 'https://git.example.com/api'}\n"
                "      type: python\n",
            )
        ],
    )
    def create(self, request, *args, **kwargs):
        body = request.data
        if not isinstance(body, bytes):
            raise OrderInvalid({"order": ["send the order as YAML with Content-Type: application/yaml."]})
        order = services.order_create_from_api(text=bytes(body), user=request.user)
        order = self.get_queryset().get(pk=order.pk)
        return Response(self.get_serializer(order).data, status=status.HTTP_201_CREATED)
