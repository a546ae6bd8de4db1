"""The server-rendered decision page."""

from __future__ import annotations

import pytest

from provisioning.applications.models import ApplicationRequest
from tests.applications.conftest import submit

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def plain_static(settings):
    settings.STORAGES = {  # no collectstatic manifest in tests
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def page(request_id: str) -> str:
    return f"/applications/requests/{request_id}/decision/"


def test_the_authorizer_approves_on_the_page(team, requester, authorizer, client):
    request_id = submit(requester[1])["request"]["id"]
    client.force_login(authorizer[0])
    shown = client.get(page(request_id))
    assert shown.status_code == 200
    assert b">Approve</button>" in shown.content and b"eu-west-1" in shown.content
    answer = client.post(page(request_id), {"approved": "true", "region": "eu-west-1", "profile": "default"})
    assert answer.status_code == 302
    row = ApplicationRequest.objects.get(pk=request_id)
    assert (row.decision, row.region, row.profile, row.decided_by) == (
        "approved",
        "eu-west-1",
        "default",
        authorizer[0],
    )
    again = client.post(page(request_id), {"approved": "false"})
    assert again.status_code == 409
    assert b"Approved by ada" in client.get(page(request_id)).content


def test_an_approval_without_a_region_is_shown_again_with_the_error(team, requester, authorizer, client):
    request_id = submit(requester[1])["request"]["id"]
    client.force_login(authorizer[0])
    answer = client.post(page(request_id), {"approved": "true", "profile": "default"})
    assert answer.status_code == 400
    assert b"choose the region" in answer.content
    assert ApplicationRequest.objects.get(pk=request_id).decision == ""


def test_others_may_not_decide_on_the_page(team, requester, colleague, outsider, client):
    request_id = submit(requester[1])["request"]["id"]
    client.force_login(outsider[0])
    assert client.get(page(request_id)).status_code == 404
    client.force_login(colleague[0])
    assert b"Only ada" in client.get(page(request_id)).content
    answer = client.post(page(request_id), {"approved": "false"})
    assert answer.status_code == 403
    assert ApplicationRequest.objects.get(pk=request_id).decision == ""


def test_the_page_asks_for_a_login(team, requester, client):
    request_id = submit(requester[1])["request"]["id"]
    answer = client.get(page(request_id))
    assert answer.status_code == 302 and "/login/" in answer["Location"]
