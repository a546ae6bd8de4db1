"""A "decision" signal sent through the generic signals endpoint by somebody who may not decide (the
requester herself) decides nothing: the request keeps waiting for its authorizer, whose decision
through the decision endpoint still counts."""

from __future__ import annotations

import pytest

from provisioning.applications.models import ApplicationRequest
from provisioning.models import Signal
from tests.applications.conftest import wait_state

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]


def test_a_forged_decision_signal_does_not_approve_a_request(celery_worker, actors, world):
    mia, ada = actors["member"].api, actors["authorizer"].api
    request = world.request
    wait_state(str(request.pk), "awaiting_decision")
    forged = {"name": "decision", "payload": {"approved": True, "region": "local-1", "profile": "standard"}}
    answer = mia.post(f"/api/operations/{request.operation_id}/signals/", forged, format="json")
    assert answer.status_code == 202
    # The step wakes, finds no decision on the request, and waits again.
    from tests.applications.conftest import wait_until

    wait_until(
        lambda: Signal.objects.filter(operation_id=request.operation_id, consumed_at__isnull=False).exists(),
        what="the forged signal consumed",
    )
    wait_state(str(request.pk), "awaiting_decision")
    row = ApplicationRequest.objects.get(pk=request.pk)
    assert row.decision == "" and row.resources in ({}, [], None)
    # Mia may not decide through the decision endpoint either; Ada may.
    no = {"approved": False, "comment": "not now"}
    assert mia.post(f"/api/application-requests/{request.pk}/decision/", no, format="json").status_code == 403
    assert ada.post(f"/api/application-requests/{request.pk}/decision/", no, format="json").status_code == 200
    assert wait_state(str(request.pk), "rejected").decision == "rejected"
