"""The "Build and launch" wizard and the reservation status page, through Django's test client.

No worker runs here: the saga is enqueued only when a transaction commits, which these tests never
do, so a launch stays at its first step and the pages show what the service stored."""

from __future__ import annotations

import pytest
from django.test import Client

from images.models import CloudAccount, ImageBuild, PublicKey, Reservation
from images.services import cloud_account_create, image_build_launch, public_key_create
from tests.images.conftest import launch_body
from tests.providers.conftest import ssh_public_key

pytestmark = [pytest.mark.django_db]

KEY = ssh_public_key()


@pytest.fixture
def mia(requester, client) -> Client:
    """Mia of Acme, logged in."""
    client.force_login(requester[0])
    return client


def step(name: str) -> str:
    return f"/images/build/{name}/"


def image_post(users: list[dict] | None = None, files: list[dict] | None = None, **fields) -> dict:
    users = users if users is not None else [{"name": "ops", "ssh_key": KEY, "groups": "wheel"}]
    files = files if files is not None else [{"path": "/etc/motd", "mode": "0644", "content": "hello"}]
    data = {
        "name": "web",
        "distribution": "fedora-41",
        "architecture": "x86_64",
        "packages": "nginx curl",
        "services_enabled": "nginx",
        "services_disabled": "",
        "users-TOTAL_FORMS": str(len(users)),
        "users-INITIAL_FORMS": "0",
        "files-TOTAL_FORMS": str(len(files)),
        "files-INITIAL_FORMS": "0",
        **fields,
    }
    for prefix, rows in (("users", users), ("files", files)):
        for i, row in enumerate(rows):
            data.update({f"{prefix}-{i}-{k}": v for k, v in row.items()})
    return data


def target_post(provider: str = "local", regions=("local-1", "local-2"), **fields) -> dict:
    return {"provider": provider, "shown_provider": provider, "regions": list(regions), **fields}


def launch_post(**fields) -> dict:
    return {"instance_type": "small", "amount": "2", "pubkey": "", "public_key": KEY, **fields}


def through(client: Client, *steps: tuple[str, dict]) -> None:
    for name, data in steps:
        answer = client.post(step(name), data)
        assert answer.status_code == 302, answer.content.decode()[:3000]


def errors_of(answer) -> str:
    return answer.content.decode()


# --- Login, visibility, CSRF ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/images/", "/images/build/", step("image"), step("review"), "/reservations/1/"]
)
def test_it_asks_for_a_login(client, path):
    answer = client.get(path)
    assert answer.status_code == 302 and answer["Location"].startswith("/login/")


def test_it_answers_404_for_another_customers_reservation(requester, outsider, client):
    launched = image_build_launch(customer=outsider.memberships.get().customer, **launch_body())
    client.force_login(requester[0])
    for path in (
        f"/reservations/{launched.reservation.pk}/",
        f"/reservations/{launched.reservation.pk}/live/",
    ):
        assert client.get(path).status_code == 404
    client.force_login(outsider)
    assert client.get(f"/reservations/{launched.reservation.pk}/").status_code == 200


def test_a_post_without_the_csrf_token_is_refused(requester):
    client = Client(enforce_csrf_checks=True)
    client.force_login(requester[0])
    assert client.post(step("image"), image_post()).status_code == 403
    shown = client.get(step("image"))
    assert b"csrfmiddlewaretoken" in shown.content


def test_it_offers_nothing_to_a_user_of_no_customer(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody", password="x-long-password"))
    assert client.get(step("image")).status_code == 403


# --- The wizard ----------------------------------------------------------------------------------


def test_it_builds_and_launches_through_every_step_and_lands_on_the_status_page(mia, acme):
    shown = mia.get(step("image"))
    assert shown.status_code == 200
    page = errors_of(shown)
    for label in ("Image name", "Distribution", "Architecture", "Packages", "User name", "SSH public key"):
        assert f">{label}" in page, label
    assert "Step 1 of 4: Image" in page
    through(mia, ("image", image_post()))
    target = mia.get(step("target"))
    assert b"local-3" in target.content  # the local provider's regions are offered
    through(mia, ("target", target_post()), ("launch", launch_post()))

    review = mia.get(step("review"))
    assert review.status_code == 200
    page = errors_of(review)
    assert "nginx, curl" in page and "local-1, local-2" in page and "2 × small" in page
    answer = mia.post(step("review"))
    reservation = Reservation.objects.get(customer=acme)
    assert answer.status_code == 302 and answer["Location"] == f"/reservations/{reservation.pk}/"
    build = reservation.build
    assert build.name == "web"
    assert build.manifest["packages"] == ["nginx", "curl"]
    assert build.manifest["customizations"]["users"] == [{"name": "ops", "ssh_key": KEY, "groups": ["wheel"]}]
    assert build.manifest["customizations"]["files"] == [
        {"path": "/etc/motd", "content": "hello", "mode": "0644"}
    ]
    assert build.manifest["customizations"]["services"] == {"enabled": ["nginx"], "disabled": []}
    assert build.manifest["target"] == {"provider": "local", "regions": ["local-1", "local-2"]}
    assert (reservation.amount, reservation.instance_type) == (2, "small")
    assert reservation.pubkey.body == " ".join(KEY.split())  # the pasted key is kept among hers

    status = mia.get(answer["Location"])
    page = errors_of(status)
    assert status.status_code == 200
    assert "Step 1 of 6: Building the image" in page
    assert f'href="/operations/{reservation.operation_id}/"' in page
    assert (
        "/static/provisioning/live." in page
        and f'data-live-url="/reservations/{reservation.pk}/live/"' in page
    )
    live = mia.get(f"/reservations/{reservation.pk}/live/")
    assert live.status_code == 200 and b"<html" not in live.content and b"Building the image" in live.content
    # The wizard starts afresh: what was entered is gone.
    assert mia.get("/images/build/")["Location"] == step("image")


def test_the_steps_must_be_taken_in_order(mia):
    assert mia.get(step("launch"))["Location"] == step("image")
    assert mia.post(step("review"))["Location"] == step("image")
    through(mia, ("image", image_post()))
    assert mia.get(step("review"))["Location"] == step("target")
    assert not ImageBuild.objects.exists()


def test_image_step_errors_are_shown_next_to_their_fields(mia):
    data = image_post(
        users=[{"name": "ops", "ssh_key": "ssh-ed25519 not-a-key", "groups": ""}, {"name": "root"}],
        packages="nginx bad/package",
        services_enabled="nginx",
        services_disabled="nginx",
        name="",
    )
    answer = mia.post(step("image"), data)
    assert answer.status_code == 400
    form = answer.context["forms"]
    assert form.form.errors["name"] == ["This field is required."]
    # The manifest's checks run only once the form itself is valid: fill in the name.
    answer = mia.post(step("image"), {**data, "name": "web"})
    assert answer.status_code == 400
    forms = answer.context["forms"]
    assert "'bad/package' is not a valid package name." in forms.form.errors["packages"]
    assert "cannot be enabled and disabled at once" in forms.form.errors["services_enabled"][0]
    assert forms.users.forms[0].errors["ssh_key"]  # the row's own field
    assert forms.users.forms[1].errors["name"] == ["'root' is a system user."]
    assert "&#x27;root&#x27; is a system user." in errors_of(answer)  # next to the row's field
    assert mia.get(step("target"))["Location"] == step("image")  # nothing was kept


def test_an_empty_user_row_is_dropped_and_another_row_can_be_added(mia):
    data = image_post(users=[{"name": "ops", "ssh_key": KEY, "groups": ""}])
    answer = mia.post(step("image"), {**data, "add_user": "1"})
    assert answer.status_code == 200
    forms = answer.context["forms"]
    assert len(forms.users.forms) == 2 and forms.users.forms[0]["name"].value() == "ops"
    assert not forms.form.errors  # nothing is checked yet
    data = image_post(users=[{"name": "ops", "ssh_key": KEY, "groups": ""}, {"name": "", "ssh_key": ""}])
    through(mia, ("image", data))
    assert mia.get(step("target")).status_code == 200


def test_target_step_errors_are_shown_next_to_their_fields(mia, acme):
    through(mia, ("image", image_post()))
    answer = mia.post(step("target"), target_post(regions=()))
    assert answer.status_code == 400
    assert answer.context["forms"].form.errors["regions"] == ["This field is required."]
    # aws wants one of the customer's aws accounts; Globex's are not offered.
    answer = mia.post(step("target"), target_post(provider="aws", regions=("eu-west-1",)))
    assert answer.status_code == 400
    assert answer.context["forms"].form.errors["account"][0].startswith("Choose one of your aws accounts")


def test_choosing_another_provider_shows_its_regions_and_the_customers_accounts_for_it(mia, acme, outsider):
    ours = cloud_account_create(
        customer=acme, provider="aws", name="prod", access_key_id="AKIA", secret_access_key="s3cr3t"
    )
    cloud_account_create(
        customer=outsider.memberships.get().customer,
        provider="aws",
        name="theirs",
        access_key_id="AKIB",
        secret_access_key="x",
    )
    cloud_account_create(customer=acme, provider="local", name="bench")
    through(mia, ("image", image_post()))
    answer = mia.post(step("target"), {"provider": "aws", "shown_provider": "local", "regions": ["local-1"]})
    assert answer.status_code == 200
    page = errors_of(answer)
    assert "eu-west-1" in page and "local-3" not in page
    assert "prod (aws)" in page and "theirs" not in page and "bench" not in page
    assert "s3cr3t" not in page
    through(mia, ("target", target_post(provider="aws", regions=("eu-west-1",), account=str(ours.pk))))
    # The launch step offers aws's instance types now.
    assert b"t3.micro" in mia.get(step("launch")).content
    foreign = CloudAccount.objects.get(name="theirs")
    answer = mia.post(
        step("target"), target_post(provider="aws", regions=("eu-west-1",), account=str(foreign.pk))
    )
    assert answer.status_code == 400 and "account" in answer.context["forms"].form.errors


def test_launch_step_errors_are_shown_next_to_their_fields(mia):
    through(mia, ("image", image_post()), ("target", target_post()))
    answer = mia.post(step("launch"), launch_post(amount="1"))
    assert answer.status_code == 400
    assert answer.context["forms"].form.errors["amount"] == ["must be at least the number of regions (2)."]
    answer = mia.post(step("launch"), launch_post(public_key=""))
    assert answer.context["forms"].form.errors["pubkey"] == [
        "Pick one of your keys or paste a new public key."
    ]
    answer = mia.post(step("launch"), launch_post(public_key="-----BEGIN OPENSSH PRIVATE KEY-----\nabc"))
    assert answer.status_code == 400 and answer.context["forms"].form.errors["public_key"]
    answer = mia.post(step("launch"), launch_post(instance_type="t3.micro"))
    assert answer.status_code == 400 and answer.context["forms"].form.errors["instance_type"]


def test_one_of_the_customers_keys_can_be_picked(mia, acme, outsider):
    key = public_key_create(customer=acme, name="laptop", body=KEY)
    theirs = public_key_create(
        customer=outsider.memberships.get().customer, name="theirs", body=ssh_public_key()
    )
    through(mia, ("image", image_post()), ("target", target_post()))
    page = errors_of(mia.get(step("launch")))
    assert "laptop" in page and "theirs" not in page
    answer = mia.post(step("launch"), launch_post(pubkey=str(theirs.pk), public_key=""))
    assert answer.status_code == 400 and "pubkey" in answer.context["forms"].form.errors
    through(mia, ("launch", launch_post(pubkey=str(key.pk), public_key="")))
    mia.post(step("review"))
    assert Reservation.objects.get().pubkey == key
    assert PublicKey.objects.filter(customer=acme).count() == 1


def test_a_change_to_an_earlier_step_that_breaks_a_later_one_sends_the_user_back_there(mia):
    through(mia, ("image", image_post()), ("target", target_post()), ("launch", launch_post()))
    # Three regions want at least three instances: the target step is kept, the launch step is shown.
    answer = mia.post(step("target"), target_post(regions=("local-1", "local-2", "local-3")))
    assert answer["Location"] == step("launch")
    shown = mia.get(step("launch"))
    assert shown.context["forms"].form.errors["amount"] == ["must be at least the number of regions (3)."]
    assert mia.get(step("review"))["Location"] == step("launch")


def test_too_many_unfinished_launches_are_refused_on_the_review_page(mia, acme, settings):
    settings.IMAGES_PENDING_RESERVATIONS_LIMIT = 1
    image_build_launch(customer=acme, **launch_body())
    through(mia, ("image", image_post()), ("target", target_post()), ("launch", launch_post()))
    answer = mia.post(step("review"))
    assert answer.status_code == 429
    assert "at most 1 may run at once" in errors_of(answer)
    assert Reservation.objects.count() == 1


# --- The status page -----------------------------------------------------------------------------


def test_the_status_page_shows_a_failure_with_its_message_and_what_to_do(mia, acme):
    launched = image_build_launch(customer=acme, **launch_body())
    Reservation.objects.filter(pk=launched.reservation.pk).update(
        state="failed",
        step=5,
        success=False,
        error="Launching instances in local-1 failed: quota exceeded. Correct the request and submit it again.",
        status="Failed at step 5 of 6 (Launching instances): quota exceeded",
        finished_at="2030-01-01T00:00:00Z",
    )
    page = errors_of(mia.get(f"/reservations/{launched.reservation.pk}/live/"))
    assert "data-final" in page
    assert "Failed at step 5 of 6: Launching instances" in page
    assert "quota exceeded" in page and "What to do:" in page


def test_the_status_page_shows_the_instances_with_their_addresses_when_done(mia, acme):
    launched = image_build_launch(customer=acme, **launch_body())
    reservation = launched.reservation
    titles = reservation.step_titles
    Reservation.objects.filter(pk=reservation.pk).update(
        state="succeeded",
        step=len(titles),
        steps=len(titles),
        success=True,
        status="Done: 3 instances launched (local-1: 2, local-2: 1).",
        finished_at="2030-01-01T00:00:00Z",
    )
    reservation.instances.create(
        region="local-1",
        instance_id="i-local-1",
        state="running",
        detail={"public_ip": "127.0.0.1", "port": 41234, "dns_name": "localhost:41234"},
    )
    page = errors_of(mia.get(f"/reservations/{reservation.pk}/"))
    assert "Done: 3 instances launched" in page and "127.0.0.1:41234" in page and "i-local-1" in page
    assert f'value="{len(titles)}"' in page  # the progress bar is full
    listed = errors_of(mia.get("/images/"))
    assert f'href="/reservations/{reservation.pk}/"' in listed
