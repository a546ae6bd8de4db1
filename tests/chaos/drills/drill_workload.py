"""A mixed workload under fire. Customers book domains that need a DNS proof, build and launch images on
the local provider and on the moto server, request application buckets that an authorizer approves or
rejects, and order environments deployed with ansible behind nginx; meanwhile the worker is SIGKILLed
at random moments (and started again), Redis is flushed once and is down for a while once (a request
arrives meanwhile), PostgreSQL crashes and restarts once, and beat (the sweeper's clock) stops for
CHAOS_BEAT_PAUSE seconds (60 by default). Nothing here sweeps: beat is the only sweeper.

At the end every operation is final, nothing is lost, no side effect happened twice (instances per
reservation, buckets per request, assets per booking, deployments and processes per service), and
nothing runs that should not once reservations are terminated and environments deleted.
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from bookings.models import BookingItem, HostingAsset, Project
from bookings.validation.domains import txt_value
from images.models import Reservation
from provisioning.applications.models import ApplicationRequest
from provisioning.applications.services import application_request_decide, team_create
from provisioning.choices import TERMINAL_STATES
from provisioning.models import Operation, StepRun
from provisioning.orders import conf as orders_conf
from provisioning.orders.models import Order, ServiceDeployment
from provisioning.orders.services import order_create
from provisioning.providers.base import TAG_RESERVATION
from provisioning.providers.local import LocalProvider
from provisioning.saga.definition import saga_for
from provisioning.services import Conflict, api_user_create_or_update
from tests.applications.conftest import bucket_names, s3
from tests.bookings.conftest import event_of, make_webspace
from tests.chaos.drills.conftest import expect, outlasting
from tests.conftest import BeatProcess, WorkerProcess
from tests.fixtures.actors import client_for
from tests.fixtures.orders import ServiceRepo, stop_deployed_services
from tests.images.conftest import launch_body
from tests.orders.test_environment import order_yaml

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

BEAT_PAUSE = float(os.environ.get("CHAOS_BEAT_PAUSE", "60"))
MIN_KILLS = int(os.environ.get("CHAOS_KILLS", "20"))
# A step that may stay silent longer than this is not killed while it runs: its own heartbeat timeout
# would hold the drill that long before the sweeper takes it as lost. (The orders' ansible steps keep
# alive from a thread and have 30 s: they are killed like any other.)
LONG_HEARTBEAT = 30.0
# Waves of customers during the chaos (the first one comes before it).
WAVES, WAVE_EVERY = 6, 12.0


@pytest.fixture
def chaos_worker(real_services, drill_env, drill_logdir, nginx_proxy):
    env = {**drill_env, **{k: v for k, v in os.environ.items() if k.startswith("ORDERS_")}}
    worker = WorkerProcess(env, drill_logdir, name="chaos").start()
    yield worker
    if worker.proc.poll() is not None:
        worker.start()
    worker.stop()
    stop_deployed_services()


@pytest.fixture
def beat(drill_env, drill_logdir):
    process = BeatProcess(drill_env, drill_logdir, name="beat").start()
    yield process
    process.stop()


# --- The workload --------------------------------------------------------------------------------


@dataclass
class Workload:
    owner: object
    client: object
    authorizer: object
    project: Project
    account: int
    repos: Path
    dns: object
    bookings: dict[int, str] = field(default_factory=dict)  # booking item -> the registrable domain
    proven: set[int] = field(default_factory=set)
    reservations: dict[int, str] = field(default_factory=dict)  # reservation -> provider
    requests: dict[str, bool] = field(default_factory=dict)  # application request -> approve?
    decided: set[str] = field(default_factory=set)
    environments: list[str] = field(default_factory=list)
    answers: collections.Counter = field(default_factory=collections.Counter)

    unanswered: str | None = None  # a domain whose booking got no answer (an outage): it may be stored

    def book_domain(self) -> None:
        """Book a domain, as a careful customer does: after an outage, look for the booking before
        booking again (the 503 says it may have been stored)."""
        index = len(self.bookings)
        if self.unanswered is None:
            self.unanswered = f"chaos{index}-{uuid.uuid4().hex[:6]}.org"
            self.dns.add(self.unanswered, "A", "192.0.2.10")  # it exists: its owner must prove it is theirs
        registrable = self.unanswered
        stored = BookingItem.objects.filter(project=self.project, caption=registrable).first()
        if stored is None:
            answer = self.client.post(
                "/api/booking-items/",
                {
                    "project": self.project.pk,
                    "type": "DOMAIN_SETUP",
                    "caption": registrable,
                    "resources": {"domainName": f"shop.{registrable}"},
                    "hosting_asset": {"webspace": "abc00", "dns": {"TTL": 3600}},
                },
                format="json",
            )
            self.answers[answer.status_code] += 1
            stored = BookingItem.objects.get(pk=expect(answer, 201).json()["id"])
        self.bookings[stored.pk] = registrable
        self.unanswered = None

    def launch(self, provider: str) -> None:
        if provider == "aws":
            body = launch_body(
                f"aws-{len(self.reservations)}",
                provider="aws",
                regions=("eu-west-1",),
                account=self.account,
                instance_type="t3.micro",
                amount=2,
            )
        else:
            body = launch_body(f"local-{len(self.reservations)}", amount=2)
        answer = self.client.post("/api/image-builds/", body, format="json")
        self.answers[answer.status_code] += 1
        expect(answer, 201)
        self.reservations[answer.json()["reservation"]["id"]] = provider

    def request_bucket(self, approve: bool) -> None:
        answer = self.client.post(
            "/api/application-requests/",
            {
                "application": f"shop{len(self.requests)}",
                "team": "web",
                "authorizer": "ada",
                "time_limit_seconds": 900,
            },
            format="json",
        )
        self.answers[answer.status_code] += 1
        expect(answer, 201)
        self.requests[answer.json()["request"]["id"]] = approve

    def order_environment(self) -> None:
        env = f"env-{uuid.uuid4().hex[:6]}"
        repo = ServiceRepo(self.repos / env, f"api-{env}")
        repo.release("v1")
        text = order_yaml(env, f"api.{env}.example.com", "", repo, None, with_front=False)
        order_create(text=text, customer=self.owner.memberships.get().customer)
        self.environments.append(env)

    def act_as_people(self) -> None:
        """The customers add their TXT records and say so; the authorizer decides."""
        for item_id, registrable in self.bookings.items():
            if item_id in self.proven:
                continue
            event = event_of(item_id)
            if event is None or event.status != "waiting":
                continue
            self.dns.add(
                registrable,
                "TXT",
                txt_value(BookingItem.objects.get(pk=item_id).resources["verificationCode"]),
            )
            answer = self.client.post(
                f"/api/operations/{event.operation_id}/signals/", {"name": "record_added"}, format="json"
            )
            expect(answer, 202)
            self.proven.add(item_id)
        for request_id, approve in self.requests.items():
            if request_id in self.decided:
                continue
            request = ApplicationRequest.objects.get(pk=request_id)
            if request.state != "awaiting_decision":
                continue
            try:
                application_request_decide(
                    request=request,
                    user=self.authorizer,
                    approved=approve,
                    region="eu-west-1",
                    profile="sandbox",
                )
            except Conflict:
                pass  # decided by an earlier try whose answer was lost in an outage
            self.decided.add(request_id)


# --- The chaos -----------------------------------------------------------------------------------


class Monkey(threading.Thread):
    """Kills the worker at random moments (starting it again each time), flushes Redis, restarts
    PostgreSQL and stops beat for a while, on a schedule counted from its start."""

    def __init__(self, worker: WorkerProcess, beat: BeatProcess, servers, seed: int) -> None:
        super().__init__(name="chaos-monkey", daemon=True)
        self.worker, self.beat = worker, beat
        self.postgres, self.redis = servers
        self.random = random.Random(seed)
        self.t0 = time.monotonic()
        self.kills = 0
        self.deferred = 0
        self.events: list[tuple[float, str]] = []
        self.error: BaseException | None = None
        self.schedule = [
            (8.0, "flush Redis", self.redis.flush),
            (30.0, "restart PostgreSQL", self.postgres.restart),
        ]
        self.beat_stop_at, self.beat_back_at = 45.0, 45.0 + BEAT_PAUSE
        self.beat_back = self.beat_back_at

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def note(self, what: str) -> None:
        self.events.append((self.elapsed(), what))
        print(f"[chaos {self.elapsed():6.1f}s] {what}", flush=True)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # the test thread reports it
            self.error = exc
        finally:
            connection.close()

    def _run(self) -> None:
        while True:
            now = self.elapsed()
            while self.schedule and self.schedule[0][0] <= now:
                _, what, action = self.schedule.pop(0)
                self.note(what)
                action()
            if self.beat_stop_at is not None and now >= self.beat_stop_at:
                self.beat.stop()
                self.beat_stop_at = None
                self.beat_back_at = self.beat_back = self.elapsed() + BEAT_PAUSE  # a full pause
                self.note(f"beat stopped for {BEAT_PAUSE:.0f}s")
            elif self.beat_stop_at is None and self.beat_back_at is not None and now >= self.beat_back_at:
                self.beat.start()
                self.beat_back_at = None
                self.note("beat started again")
            if self.kills >= MIN_KILLS and not self.schedule and self.beat_back_at is None:
                return
            time.sleep(self.random.uniform(1.0, 5.0))
            if outlasting(long_step_running, what="looking at the running steps"):
                self.deferred += 1
                continue
            self.worker.kill()
            self.kills += 1
            self.note(f"worker SIGKILLed ({self.kills})")
            self.worker.start()


def long_step_running() -> bool:
    for op in Operation.objects.filter(state="running").only("kind", "steps"):
        saga = saga_for(op.kind)
        for name, st in op.steps.items():
            if st.get("status") == "running" and (saga.step(name).heartbeat_timeout or 0) > LONG_HEARTBEAT:
                return True
    return False


# --- Counting ------------------------------------------------------------------------------------


def local_instances(uid: str) -> tuple[int, int]:
    """(instances the local provider ever created for the reservation, their processes alive)."""
    import json

    local = LocalProvider(latency=0)
    created = alive = 0
    for record in local.root.glob("*/instances/*.json"):
        if json.loads(record.read_text()).get("tags", {}).get(TAG_RESERVATION) != uid:
            continue
        created += 1
        alive += local._pid(record.parent, record.stem) is not None
    return created, alive


def aws_instances(uid: str) -> tuple[int, int]:
    """(instances at the moto server tagged with the reservation, in any state; those not terminated)."""
    ec2 = boto3.client("ec2", region_name="eu-west-1", endpoint_url=settings.AWS_ENDPOINT_URL)
    found = [
        i
        for r in ec2.describe_instances(Filters=[{"Name": f"tag:{TAG_RESERVATION}", "Values": [uid]}])[
            "Reservations"
        ]
        for i in r["Instances"]
    ]
    return len(found), sum(i["State"]["Name"] not in ("terminated", "shutting-down") for i in found)


def buckets_by_request() -> collections.Counter:
    counts = collections.Counter()
    for name in bucket_names():
        tags = s3().get_bucket_tagging(Bucket=name)["TagSet"]
        counts.update(t["Value"] for t in tags if t["Key"] == "provisioning:application-request")
    return counts


# The service's folder as its deployment recorded it (the worker's ORDERS_LOCAL_ROOT, which need not
# be this process's), remembered so that it is still known once the environment is deleted.
_SERVICE_FOLDERS: dict[tuple[str, str], str] = {}


def service_processes(env: str, service_id: str) -> int:
    """Processes whose working folder is the service's checkout (alive, not zombies)."""
    from tests.fixtures.orders import running

    if (env, service_id) not in _SERVICE_FOLDERS:
        deployment = ServiceDeployment.objects.filter(environment__key=env, service_id=service_id).first()
        workdir = deployment.workdir if deployment and deployment.workdir else ""
        _SERVICE_FOLDERS[(env, service_id)] = workdir or str(
            orders_conf.environments_dir() / env / service_id
        )
    app = str(Path(_SERVICE_FOLDERS[(env, service_id)]) / "app")
    count = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd").removesuffix(" (deleted)")
        except OSError:
            continue
        count += cwd == app and running(int(proc.name))
    return count


def unfinished() -> list[Operation]:
    return list(Operation.objects.exclude(state__in=TERMINAL_STATES))


def wait_all_final(timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not outlasting(unfinished, what="unfinished operations"):
            return
        time.sleep(1.0)
    left = [(str(op.pk), op.kind, op.state, op.message) for op in unfinished()]
    raise AssertionError(f"operations still unfinished after {timeout}s: {left}")


def table(title: str, rows: list[tuple[str, object, object]]) -> str:
    lines = ["", title, f"  {'':<58}{'expected':>10}{'counted':>10}"]
    lines += [f"  {what:<58}{expected!s:>10}{counted!s:>10}" for what, expected, counted in rows]
    return "\n".join(lines)


# --- The drill -----------------------------------------------------------------------------------


def test_every_operation_ends_once_and_cleanly_under_fire(
    chaos_servers, chaos_worker, beat, dns_records, nginx_proxy, tmp_path
):
    owner, token = api_user_create_or_update(username="olivia", customer_name="Acme")
    requester, _ = api_user_create_or_update(username="mia", customer_name="Acme", role="member")
    authorizer, _ = api_user_create_or_update(username="ada", customer_name="Acme", role="member")
    for user in (requester, authorizer):
        user.email = f"{user.username}@example.com"
        user.save(update_fields=["email"])
    acme = owner.memberships.get().customer
    team_create(customer=acme, name="web", members=[owner, requester], authorizers=[authorizer])
    project = Project.objects.create(customer=acme, caption="Shop")
    make_webspace(project)
    client = client_for(token)
    account = client.post(
        "/api/cloud-accounts/",
        {"provider": "aws", "name": "prod", "access_key_id": "testing", "secret_access_key": "testing"},
        format="json",
    ).json()["id"]
    work = Workload(owner, client, authorizer, project, account, tmp_path / "repos", dns_records)

    started = time.monotonic()
    # First wave, before the chaos starts; the monkey begins at once after it.
    for _ in range(3):
        work.book_domain()
    work.launch("local")
    work.launch("local")
    work.launch("aws")
    for approve in (True, True, False):
        work.request_bucket(approve)
    work.order_environment()
    work.order_environment()
    monkey = Monkey(chaos_worker, beat, chaos_servers, seed=int(os.environ.get("CHAOS_SEED", "0")) or None)
    monkey.start()

    waves, redis_down = 0, False
    while monkey.is_alive():
        if waves < WAVES and monkey.elapsed() > WAVE_EVERY * (waves + 1):
            # More customers arrive while the chaos goes on, so that work is in flight at every blow.
            waves += 1
            outlasting(lambda: [work.book_domain() for _ in range(2)], what="booking")
            outlasting(lambda: work.launch("local"), what="launching")
            outlasting(lambda: work.launch("aws"), what="launching")
            approvals = (True, waves % 2 == 0)
            outlasting(lambda a=approvals: [work.request_bucket(x) for x in a], what="requesting")
        if not redis_down and monkey.elapsed() > 20:
            # Redis goes away; a customer books meanwhile. The booking is stored and answered; its
            # saga starts once Redis is back (the sweeper sends what was never sent).
            redis_down = True
            monkey.note("Redis down")
            chaos_servers[1].stop()
            outlasting(work.book_domain, what="booking while Redis is down")
            outlasting(lambda: work.request_bucket(True), what="requesting while Redis is down")
            time.sleep(2)
            chaos_servers[1].start()
            monkey.note("Redis up again")
        outlasting(work.act_as_people, what="acting as people")
        time.sleep(0.5)
    monkey.join()
    assert monkey.error is None, monkey.error
    chaos_ended = time.monotonic()

    # The people finish what they must do; then everything ends on its own (beat sweeps).
    deadline = time.monotonic() + 240
    while (len(work.proven) < len(work.bookings) or len(work.decided) < len(work.requests)) and (
        time.monotonic() < deadline
    ):
        outlasting(work.act_as_people, what="acting as people")
        time.sleep(0.5)
    wait_all_final(timeout=max(30.0, deadline - time.monotonic()))
    drained = time.monotonic()

    # --- What exists now, per subject.
    rows: list[tuple[str, object, object]] = []
    booking_assets = {
        item: HostingAsset.objects.filter(identifier=f"shop.{domain}").count()
        for item, domain in work.bookings.items()
    }
    rows.append(
        (
            "domain bookings with their assets created",
            len(work.bookings),
            sum(v == 5 for v in booking_assets.values()),
        )
    )
    rows.append(("  hosting assets (5 per booking)", 5 * len(work.bookings), sum(booking_assets.values())))
    rows.append(
        (
            "  events left (deleted once the assets exist)",
            0,
            sum(event_of(i) is not None for i in work.bookings),
        )
    )
    reservations = {r.pk: r for r in Reservation.objects.filter(pk__in=work.reservations)}
    before = {}
    for pk, provider in work.reservations.items():
        uid = str(reservations[pk].uid)
        before[pk] = local_instances(uid) if provider == "local" else aws_instances(uid)
    local_ids = [pk for pk, p in work.reservations.items() if p == "local"]
    aws_ids = [pk for pk, p in work.reservations.items() if p == "aws"]
    rows.append(
        (
            "local launches succeeded",
            len(local_ids),
            sum(reservations[pk].state == "succeeded" for pk in local_ids),
        )
    )
    rows.append(
        (
            "  local instances created (2 per launch)",
            2 * len(local_ids),
            sum(before[pk][0] for pk in local_ids),
        )
    )
    rows.append(
        ("  local instance processes running", 2 * len(local_ids), sum(before[pk][1] for pk in local_ids))
    )
    rows.append(
        (
            "aws (moto) launches succeeded",
            len(aws_ids),
            sum(reservations[pk].state == "succeeded" for pk in aws_ids),
        )
    )
    rows.append(
        (
            "  moto instances created (2 per launch, any state)",
            2 * len(aws_ids),
            sum(before[pk][0] for pk in aws_ids),
        )
    )
    requests = {str(r.pk): r for r in ApplicationRequest.objects.filter(pk__in=work.requests)}
    buckets = buckets_by_request()
    approved = [r for r, a in work.requests.items() if a]
    rejected = [r for r, a in work.requests.items() if not a]
    rows.append(
        (
            "application requests approved and ready",
            len(approved),
            sum(requests[r].state == "ready" for r in approved),
        )
    )
    rows.append(
        ("  buckets at moto (1 per approved request)", len(approved), sum(buckets[r] for r in approved))
    )
    rows.append(
        (
            "application requests rejected",
            len(rejected),
            sum(requests[r].state == "rejected" for r in rejected),
        )
    )
    rows.append(("  buckets of rejected requests", 0, sum(buckets[r] for r in rejected)))
    orders = Order.objects.filter(environment__key__in=work.environments)
    deployments = collections.Counter(
        ServiceDeployment.objects.filter(environment__key__in=work.environments).values_list(
            "environment__key", "service_id"
        )
    )
    rows.append(
        ("environment orders succeeded", len(work.environments), orders.filter(status="succeeded").count())
    )
    rows.append(("  deployments (1 per service)", len(work.environments), sum(deployments.values())))
    rows.append(
        (
            "  service processes running (1 per service)",
            len(work.environments),
            sum(service_processes(e, "6") for e in work.environments),
        )
    )

    # --- Tear down: terminate every reservation, delete every environment.
    for pk in work.reservations:
        answer = client.post(f"/api/reservations/{pk}/terminate/")
        assert answer.status_code == 200, answer.content
    for env in work.environments:
        order_create(text=f'action: delete\nenvironment_id: "{env}"\n', customer=acme)
    wait_all_final(timeout=120)
    after = {}
    for pk, provider in work.reservations.items():
        uid = str(reservations[pk].uid)
        after[pk] = local_instances(uid) if provider == "local" else aws_instances(uid)
    rows.append(
        ("after terminating: local instance processes alive", 0, sum(after[pk][1] for pk in local_ids))
    )
    rows.append(("after terminating: moto instances not terminated", 0, sum(after[pk][1] for pk in aws_ids)))
    rows.append(
        (
            "after deleting: environment orders succeeded",
            2 * len(work.environments),
            Order.objects.filter(environment__key__in=work.environments, status="succeeded").count(),
        )
    )
    rows.append(
        (
            "after deleting: service processes alive",
            0,
            sum(service_processes(e, "6") for e in work.environments),
        )
    )

    # --- The engine's own books.
    ops = list(Operation.objects.all())
    done = collections.Counter(StepRun.objects.filter(outcome="done").values_list("operation_id", "step"))
    rows.append(("operations final", len(ops), sum(op.is_terminal for op in ops)))
    rows.append(
        (
            "created subjects whose operation finished",
            len(work.bookings) + len(work.reservations) + len(work.requests) + 2 * len(work.environments),
            finished_subjects(work),
        )
    )
    rows.append(("steps recorded done more than once", 0, sum(n > 1 for n in done.values())))
    rows.append(("worker kills (SIGKILL)", f">={MIN_KILLS}", monkey.kills))
    rows.append(
        ("step attempts taken for lost (worker killed)", "", StepRun.objects.filter(outcome="lost").count())
    )
    beat_back = timezone.now() - timedelta(seconds=time.monotonic() - (monkey.t0 + monkey.beat_back))
    rows.append(
        ("operations that ended after beat came back", "", sum(op.finished_at > beat_back for op in ops))
    )
    rows.append(("kills deferred while an ansible step ran", "", monkey.deferred))
    rows.append(("answers to the customers' requests", "", dict(work.answers)))
    print(table("chaos drill: a mixed workload under fire", rows))
    print(
        f"  chaos {chaos_ended - started:.0f}s, drained {drained - chaos_ended:.0f}s after it, "
        f"tear-down {time.monotonic() - drained:.0f}s; events: "
        + ", ".join(f"{t:.0f}s {what}" for t, what in monkey.events if "SIGKILL" not in what)
    )
    failed = [
        (what, expected, counted)
        for what, expected, counted in rows
        if expected != "" and not matches(expected, counted)
    ]
    assert not failed, failed


def matches(expected, counted) -> bool:
    if isinstance(expected, str) and expected.startswith(">="):
        return counted >= int(expected[2:])
    return expected == counted


def finished_subjects(work: Workload) -> int:
    """How many of the bookings, reservations, requests and orders the customers created have an
    operation that finished."""
    final = {op.pk for op in Operation.objects.all() if op.is_terminal}
    count = sum(r.operation_id in final for r in Reservation.objects.filter(pk__in=work.reservations))
    count += sum(r.operation_id in final for r in ApplicationRequest.objects.filter(pk__in=work.requests))
    count += sum(
        o.operation_id in final for o in Order.objects.filter(environment__key__in=work.environments)
    )
    items = {
        op.data.get("booking_item_id")
        for op in Operation.objects.filter(pk__in=final, kind__startswith="bookings.")
    }
    return count + len(items & set(work.bookings))
