"""`/metrics`: Prometheus text format, computed from the database at scrape time.

The rows are the truth on every machine, so any web process answers for the whole service, however
many worker machines there are, and nothing is counted in worker memory that a restart would lose.
Each family is one indexed query over what is active now or what finished within METRICS_WINDOW
seconds (partial indexes `op_active`, `op_finished`, and `steprun_finished`), so a scrape costs
O(active + recent), not O(history).

Who may read it: a scraper from METRICS_ALLOWED_NETWORKS that did not come through the proxy (no
X-Forwarded-For), a request with `Authorization: Bearer <METRICS_TOKEN>`, or a logged-in hostmaster.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import timedelta
from ipaddress import ip_address

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric

from provisioning import heartbeats
from provisioning.choices import ACTIVE_STATES, Outcome
from provisioning.models import Operation, StepRun
from provisioning.services import is_hostmaster

# Seconds: a local step takes milliseconds, a cloud build many minutes.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# The classic text format, which every Prometheus version reads (the names need no escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# A lost attempt ends when the sweeper noticed the silence: its "duration" says nothing about the step.
_TIMED_OUTCOMES = [Outcome.DONE, Outcome.RETRY, Outcome.LOOK, Outcome.WAIT, Outcome.FAILED]


class ServiceCollector:
    """Every family of the service, read from the database when Prometheus scrapes."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.now = timezone.now()
        self.since = self.now - timedelta(seconds=window)

    def collect(self) -> Iterator[Metric]:
        yield from (
            self.operations_active(),
            self.operations_finished(),
            *self.steps(),
            self.workers(),
            *self.sweeper(),
        )
        window = GaugeMetricFamily(
            "provisioning_metrics_window_seconds", "The window the *_recent families count over."
        )
        window.add_metric([], self.window)
        yield window

    def operations_active(self) -> Metric:
        return _by_kind_and_state(
            "provisioning_operations",
            "Operations not finished yet, by kind and state.",
            Operation.objects.filter(state__in=sorted(ACTIVE_STATES)),
        )

    def operations_finished(self) -> Metric:
        return _by_kind_and_state(
            "provisioning_operations_finished_recent",
            "Operations that ended within the window, by kind and final state.",
            Operation.objects.filter(finished_at__gte=self.since),
        )

    def steps(self) -> Iterator[Metric]:
        """Durations, retries and failures of the step attempts that ended within the window: one
        query (the join that names each attempt's kind is the costly part, so it is done once)."""
        durations = GaugeHistogramMetricFamily(
            "provisioning_step_duration_seconds",
            "How long step attempts that ended within the window took (done, retry, wait, failed).",
            labels=["kind", "step"],
        )
        attempts = GaugeMetricFamily(
            "provisioning_step_attempts_recent",
            "Step attempts (and undo attempts) that ended within the window, by outcome: retry and lost "
            "are retries, failed and compensation_failed are failures.",
            labels=["kind", "step", "outcome"],
        )
        timed = Q(kind=StepRun.Kind.RUN, outcome__in=_TIMED_OUTCOMES)
        duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        buckets = {
            f"le_{i}": Count("pk", filter=timed & Q(duration__lte=timedelta(seconds=bound)))
            for i, bound in enumerate(DURATION_BUCKETS)
        }
        rows = (
            StepRun.objects.filter(finished_at__gte=self.since)
            .annotate(duration=duration)
            .values("operation__kind", "step", "outcome")
            .annotate(
                n=Count("pk"),
                timed=Count("pk", filter=timed),
                seconds=Sum("duration", filter=timed),
                **buckets,
            )
            .order_by()
        )
        histograms: dict[tuple[str, str], list[float]] = {}
        for row in rows:
            key = (row["operation__kind"], row["step"])
            attempts.add_metric([*key, row["outcome"] or "running"], row["n"])
            if row["timed"]:
                sums = histograms.setdefault(key, [0.0] * (len(DURATION_BUCKETS) + 2))
                for i in range(len(DURATION_BUCKETS)):
                    sums[i] += row[f"le_{i}"]
                sums[-2] += row["timed"]
                sums[-1] += row["seconds"].total_seconds() if row["seconds"] else 0.0
        for key, sums in sorted(histograms.items()):
            counts = [(str(bound), sums[i]) for i, bound in enumerate(DURATION_BUCKETS)]
            durations.add_metric(list(key), [*counts, ("+Inf", sums[-2])], sums[-1])
        yield durations
        yield attempts

    def workers(self) -> Metric:
        family = GaugeMetricFamily(
            "provisioning_queue_workers",
            "Live workers consuming each queue (by heartbeat).",
            labels=["queue"],
        )
        consumers = heartbeats.consumers_by_queue(
            heartbeats.live_workers(self.now), heartbeats.service_queues()
        )
        for queue, names in consumers.items():
            family.add_metric([queue], len(names))
        return family

    def sweeper(self) -> Iterator[Metric]:
        seen_at = heartbeats.sweeper_seen_at()
        if seen_at is None:
            return
        family = GaugeMetricFamily(
            "provisioning_sweeper_last_tick_age_seconds", "Seconds since the sweeper (beat) last ticked."
        )
        family.add_metric([], max(0.0, (self.now - seen_at).total_seconds()))
        yield family


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(settings.METRICS_WINDOW))
    return generate_latest(registry)


def may_scrape(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    # Behind nginx every request comes from loopback: one that came through the proxy is from outside.
    if "X-Forwarded-For" not in request.headers:
        try:
            address = ip_address(request.META.get("REMOTE_ADDR", ""))
        except ValueError:
            address = None
        if address is not None and any(address in network for network in settings.METRICS_ALLOWED_NETWORKS):
            return True
    return is_hostmaster(request.user)


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    if not may_scrape(request):
        return HttpResponse("Forbidden: see README, Running in production, Metrics.\n", status=403)
    return HttpResponse(render(), content_type=CONTENT_TYPE)


def _by_kind_and_state(name: str, documentation: str, operations) -> Metric:
    family = GaugeMetricFamily(name, documentation, labels=["kind", "state"])
    rows = operations.values_list("kind", "state").annotate(n=Count("pk")).order_by()
    for kind, state, count in rows:
        family.add_metric([kind, state], count)
    return family
