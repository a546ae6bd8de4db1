"""Load test: post bookings in a burst against a running service and check every event ends.

    python manage.py bench_bookings --url http://127.0.0.1:8000 --count 1000 --concurrency 20

Posts MANAGED_WEBSPACE bookings under a managed server that is set up, so that each one runs its whole
asset-creation saga on the workers; prints posts/s and the POST latency (p50/p99), then waits until
every event is gone (assets created) or final, and checks that none was lost or duplicated. Last, the
same clients read GET /api/projects/ as often: the floor any request meets on this machine. It uses
the same database as the service (DATABASE_URL) to set up its user and to check the outcome. Start the
service with RATE_LIMIT_BOOKING_ITEMS=off (one customer's burst is what the limit stops), or use
`python -m provisioning.bench bookings`, which starts it so.
"""

from __future__ import annotations

import random
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from bookings.choices import BookingItemType, HostingAssetType
from bookings.models import BookingItem, BookingItemCreatedEvent, HostingAsset, Project
from bookings.services import hosting_asset_create
from provisioning.models import Operation
from provisioning.services import api_user_create_or_update


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def _summary(latencies: list[float]) -> str:
    return (
        f"p50 {_percentile(latencies, 50) * 1000:.0f} ms, p99 {_percentile(latencies, 99) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )


def _burst(
    token: str, concurrency: int, names: list[str], send
) -> tuple[list, list[float], list[str], float]:
    """`send(session, name)` for every name from `concurrency` client threads, each with its own
    keep-alive session: (the answers, their latencies in seconds, transport errors, seconds taken)."""
    local = threading.local()
    answers: list[requests.Response] = []
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def one(name: str) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
        started = time.perf_counter()
        try:
            answer = send(session, name)
        except requests.RequestException as exc:
            with lock:
                failures.append(str(exc))
            return
        elapsed = time.perf_counter() - started
        with lock:
            latencies.append(elapsed)
            answers.append(answer)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, names))
    return answers, latencies, failures, time.perf_counter() - started


class Command(BaseCommand):
    help = "Post bookings in a burst (N clients) and report posts/s and POST latency p50/p99."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument("--count", type=int, default=1000)
        parser.add_argument("--concurrency", type=int, default=20)
        parser.add_argument("--wait", type=float, default=300.0, help="seconds to wait for the sagas")

    def handle(self, *args, url: str, count: int, concurrency: int, wait: float, **options) -> None:
        # A prefix no webspace or unix user has yet: names of earlier runs stay taken in this database.
        used = {name[:2] for name in HostingAsset.objects.values_list("identifier", flat=True)}
        prefixes = [a + b for a in string.ascii_lowercase for b in string.ascii_lowercase + string.digits]
        free = [prefix for prefix in prefixes if prefix not in used]
        if not free:
            raise CommandError("every run prefix is taken in this database: use a fresh one")
        run = random.choice(free)
        _, token = api_user_create_or_update(username="bench", customer_name="Bench")
        user_customer = Project._meta.get_field("customer").related_model.objects.get(name="Bench")
        project, _ = Project.objects.get_or_create(customer=user_customer, caption=f"bench {run}")
        server_item = BookingItem.objects.create(
            project=project,
            type=BookingItemType.MANAGED_SERVER,
            caption=f"bench server {run}",
            resources={"CPU": 8, "RAM": 32, "SSD": 1000},
        )
        taken = set(
            HostingAsset.objects.filter(type=HostingAssetType.MANAGED_SERVER).values_list(
                "identifier", flat=True
            )
        )
        server_id = next(f"vm{n:04d}" for n in range(9999, 0, -1) if f"vm{n:04d}" not in taken)
        hosting_asset_create(
            type=HostingAssetType.MANAGED_SERVER, identifier=server_id, booking_item=server_item
        )
        alphabet = string.ascii_lowercase + string.digits
        names = [f"{run}{alphabet[i // 100 % 36]}{i % 100:02d}" for i in range(count)]
        if count > 3600:
            raise CommandError("at most 3600 bookings per run (identifier space of one run prefix)")

        def body(name: str) -> dict:
            return {
                "parent_item": server_item.pk,
                "type": "MANAGED_WEBSPACE",
                "caption": f"bench {name}",
                "resources": {"SSD": 1},
                "hosting_asset": {"identifier": name},
            }

        # The cheapest authenticated write, side by side: a project of the same customer, posted by
        # the same clients just before the bookings (the ratio of the two is the booking's cost).
        answers, project_latencies, failures, _ = _burst(
            token,
            concurrency,
            names,
            lambda s, name: s.post(f"{url}/api/projects/", json={"caption": f"bench {name}"}, timeout=30),
        )
        failures += [f"{a.status_code} {a.text[:200]}" for a in answers if a.status_code != 201]
        if failures:
            raise CommandError(f"POST /api/projects/ failed: {failures[:3]}")

        started = time.perf_counter()
        answers, latencies, failures, duration = _burst(
            token,
            concurrency,
            names,
            lambda s, name: s.post(f"{url}/api/booking-items/", json=body(name), timeout=30),
        )
        ids = [answer.json()["id"] for answer in answers if answer.status_code == 201]
        failures += [f"{a.status_code} {a.text[:200]}" for a in answers if a.status_code != 201]
        self.stdout.write(
            f"posted {len(ids)} of {count} in {duration:.1f} s with {concurrency} clients: "
            f"{len(ids) / duration:.1f} posts/s; POST latency {_summary(latencies)}; {len(failures)} failed"
        )
        for failure in failures[:5]:
            self.stdout.write(f"  failure: {failure}")
        ratio = _percentile(latencies, 50) / _percentile(project_latencies, 50)
        self.stdout.write(
            f"cheapest write: POST /api/projects/ {count} times: latency {_summary(project_latencies)}; "
            f"booking POST p50 / project POST p50 = {ratio:.2f} (target 2.5)"
        )

        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            active = BookingItemCreatedEvent.objects.filter(
                booking_item_id__in=ids, status__in=["pending", "running", "retrying", "compensating"]
            ).count()
            if not active:
                break
            time.sleep(1.0)
        drained = time.perf_counter() - started
        events = dict(
            BookingItemCreatedEvent.objects.filter(booking_item_id__in=ids)
            .values_list("status")
            .annotate(n=Count("id"))
        )
        ops = Operation.objects.filter(kind="bookings.webspace", data__booking_item_id__in=ids)
        per_item = ops.values("data__booking_item_id").annotate(n=Count("id"))
        duplicated = sum(1 for row in per_item if row["n"] != 1)
        missing = len(ids) - per_item.count()
        webspaces = HostingAsset.objects.filter(
            type=HostingAssetType.MANAGED_WEBSPACE, booking_item_id__in=ids
        ).count()
        succeeded = ops.filter(state="succeeded").count()
        self.stdout.write(
            f"after {drained:.1f} s: {succeeded} operations succeeded, {webspaces} webspaces created, "
            f"events left by status {events or '{}'}, operations missing {missing}, duplicated {duplicated}"
        )
        if missing or duplicated or succeeded != len(ids) or webspaces != len(ids) or failures:
            raise CommandError("not every booking reached its assets exactly once")

        # The yardstick: the same clients reading the caller's projects (token check and two small
        # queries, no write): what the web tier answers on this machine for the least a request does.
        answers, latencies, failures, duration = _burst(
            token, concurrency, names, lambda s, name: s.get(f"{url}/api/projects/", timeout=30)
        )
        self.stdout.write(
            f"floor: GET /api/projects/ {count} times with {concurrency} clients: "
            f"{count / duration:.1f} requests/s; latency {_summary(latencies)}; "
            f"{len(failures) + sum(1 for a in answers if a.status_code != 200)} failed"
        )
