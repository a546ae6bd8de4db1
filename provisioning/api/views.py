from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from provisioning.api.idempotency import IdempotentPosts
from provisioning.api.serializers import OperationSerializer, SignalInputSerializer
from provisioning.selectors import operations_visible_to
from provisioning.services import operation_signal


class OperationViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, IdempotentPosts, viewsets.GenericViewSet
):
    """Operations (saga runs) serving the caller's objects: state, steps with attempts and errors,
    and what it waits for."""

    serializer_class = OperationSerializer

    def get_queryset(self):
        return operations_visible_to(self.request.user).prefetch_related("step_runs")

    @extend_schema(request=SignalInputSerializer, responses={202: OperationSerializer})
    @action(detail=True, methods=["post"])
    def signals(self, request, pk=None):
        """Send a signal (`approve`, `record_added`, `server_assigned`, `cancel`, ...) to the operation."""
        operation = self.get_object()
        data = SignalInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        operation_signal(operation=operation, user=request.user, **data.validated_data)
        operation.refresh_from_db()
        return Response(self.get_serializer(operation).data, status=status.HTTP_202_ACCEPTED)
