from rest_framework import serializers

from provisioning.models import Operation, StepRun
from provisioning.saga.runner import status_view
from provisioning.saga.versions import saga_view
from provisioning.selectors import operation_steps
from provisioning.services import is_hostmaster


class StepRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = StepRun
        fields = [
            "kind",
            "attempt",
            "started_at",
            "finished_at",
            "outcome",
            "message",
            "retry_delay",
            "worker",
        ]


class OperationSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    steps = serializers.SerializerMethodField()
    waiting = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    class Meta:
        model = Operation
        fields = [
            "id",
            "kind",
            "state",
            "message",
            "progress",
            "steps",
            "waiting",
            "error",
            "subject_type",
            "subject_id",
            "deadline",
            "created_at",
            "updated_at",
            "finished_at",
        ]

    def get_progress(self, op: Operation) -> dict:
        view = status_view(op, saga_view(op))
        return {"step": view.step, "steps": view.steps, "title": view.title, "text": view.progress}

    def get_steps(self, op: Operation) -> list[dict]:
        # step_runs are prefetched by the view: no query per step.
        return [
            {**step, "runs": StepRunSerializer(step["runs"], many=True).data} for step in operation_steps(op)
        ]

    def get_waiting(self, op: Operation) -> dict | None:
        if op.state != "waiting":
            return None
        return {"signal": op.waiting_for, "until": op.wait_deadline, "instructions": op.instructions}

    def get_error(self, op: Operation) -> dict | None:
        if not op.error_message:
            return None
        error = {"message": op.error_message}
        request = self.context.get("request")
        if request is not None and is_hostmaster(request.user):
            error["detail"] = op.error_detail
        return error


class SignalInputSerializer(serializers.Serializer):
    name = serializers.RegexField(r"^[a-z][a-z0-9_]{0,49}$", help_text="e.g. approve, record_added, cancel")
    payload = serializers.DictField(required=False, default=dict)
