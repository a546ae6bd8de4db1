"""The OpenAPI schema's view of every operation: drf-spectacular's, plus the `Idempotency-Key` header
that every POST accepts (`provisioning.api.idempotency`)."""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiParameter

from provisioning.services import IDEMPOTENCY_HEADER, IDEMPOTENCY_REPLAYED_HEADER

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[\x21\x23-\x7e]+$"},
    OpenApiParameter.HEADER,
    required=False,
    description=(
        'Makes the request safe to repeat (IETF httpapi draft "The Idempotency-Key HTTP Header Field"): '
        "a unique value per request, a UUID is best. The same key with the same request answers the "
        f"first answer again (status and body, with `{IDEMPOTENCY_REPLAYED_HEADER}: true`) and creates "
        "nothing; with another request 422; while the first request is still being handled 409. Keys "
        "are per customer and kept for 24 hours (IDEMPOTENCY_KEY_TTL)."
    ),
)


class AutoSchema(openapi.AutoSchema):
    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if self.method == "POST":
            parameters.append(IDEMPOTENCY_PARAMETER)
        return parameters
