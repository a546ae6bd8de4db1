"""Rate limits per customer on what starts work (booking items, build and launch), whoever of the
customer's users asks and through whichever door: the API throttles and the wizards call
`rate_limit_consume` before the service that creates.

A fixed window per customer and action, counted in the cache (Redis when configured, so every web
process shares the counts): `add` then `incr`, both atomic in Redis, so two requests at once never both
take the last place.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse

from provisioning.models import Customer
from provisioning.services import ServiceError

log = logging.getLogger("provisioning.ratelimit")

# action → (the setting with its rate, what is counted, in words)
ACTIONS = {
    "booking_items": ("RATE_LIMIT_BOOKING_ITEMS", "booking items"),
    "image_builds": ("RATE_LIMIT_IMAGE_BUILDS", "builds and launches"),
}
_PERIOD_WORDS = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}


class RateLimited(ServiceError):
    """The customer started too much of this in the current period; `retry_after` in whole seconds."""

    code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int

    def __str__(self) -> str:
        period = _PERIOD_WORDS.get(self.seconds, f"{self.seconds} seconds")
        return f"{self.count} per {period}"


def rate_for(action: str) -> Rate | None:
    setting, _ = ACTIONS[action]
    value = getattr(settings, setting, None)
    return Rate(*value) if value else None


def _key(action: str, customer: Customer, window: int) -> str:
    # Ids repeat across databases that share a Redis (test runs, a restored backup): the creation time
    # tells two customers with one id apart.
    born = int(customer.created_at.timestamp() * 1_000_000)
    return f"ratelimit:{action}:{customer.pk}.{born}:{window}"


def rate_limit_consume(*, customer: Customer, action: str) -> None:
    """Count one `action` for `customer`; raise RateLimited (429, with the seconds to wait) when the
    customer has used up its rate for the current period. Call it before creating."""
    rate = rate_for(action)
    if rate is None:
        return
    now = time.time()
    window = int(now // rate.seconds)
    key = _key(action, customer, window)
    try:
        used = _count(key, rate)
    except Exception:
        # The counters are a guard, not the record: with the cache (Redis) down, the order is still
        # stored in the database and its saga starts once the broker is back; refusing it would turn
        # an outage of the cache into an outage of the service.
        log.warning(
            "rate limit of %s for customer %s not counted: the cache is unreachable", action, customer.pk
        )
        return
    if used > rate.count:
        retry_after = max(1, math.ceil((window + 1) * rate.seconds - now))
        raise RateLimited(
            f"Too many {ACTIONS[action][1]} for {customer}: at most {rate} per customer. "
            f"Try again in {retry_after} seconds.",
            retry_after=retry_after,
        )


def _count(key: str, rate: Rate) -> int:
    cache.add(key, 0, timeout=rate.seconds + 5)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr: the window just turned
        cache.add(key, 1, timeout=rate.seconds + 5)
        return 1


def rate_limit_reset(*, customer: Customer, action: str) -> None:
    """Forget what `customer` used of `action` in the current period (a hostmaster's relief, tests)."""
    rate = rate_for(action)
    if rate is not None:
        cache.delete(_key(action, customer, int(time.time() // rate.seconds)))


def refused(response: HttpResponse, exc: ServiceError) -> HttpResponse:
    """`response` as the answer to a request a service refused, API or page: the error's status and,
    past a rate limit, the seconds to wait in Retry-After."""
    response.status_code = exc.code
    if getattr(exc, "retry_after", None):
        response["Retry-After"] = str(exc.retry_after)
    return response
