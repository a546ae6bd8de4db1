"""One error shape for the whole API: {"detail": ...} or field errors, never a 500 for bad input."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from provisioning.ratelimit import refused
from provisioning.services import ServiceError


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return refused(Response({"detail": exc.message}), exc)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response(detail, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    return drf_exception_handler(exc, context)
