"""The API's door to the per-customer rate limits (`provisioning.ratelimit`): a DRF throttle for the
actions that start work. It asks the view which customer a request acts for (`rate_limit_customer`),
so the count is the customer's, whichever of its users asks."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from provisioning.models import Customer
from provisioning.ratelimit import rate_for, rate_limit_consume
from provisioning.selectors import customer_ids_of
from provisioning.services import is_hostmaster


class CustomerRateThrottle(BaseThrottle):
    """Counts one `action` for the request's customer; past the rate it raises RateLimited, which the
    API answers 429 with Retry-After and a message that says the limit and when to come back."""

    def __init__(self, action: str) -> None:
        self.action = action

    def allow_request(self, request: Request, view) -> bool:
        if rate_for(self.action) is None:
            return True  # no limit set: no need to know the customer
        customer = view.rate_limit_customer(request)
        if customer is not None:
            rate_limit_consume(customer=customer, action=self.action)
        return True


def named_or_own_customer(request: Request, named=None) -> Customer | None:
    """The customer named in the body if the caller may act for it, else the caller's first one. Only
    for counting: the service still checks (and answers 400 for) a customer the caller may not name."""
    ids = customer_ids_of(request.user)
    if isinstance(named, int) or (isinstance(named, str) and named.isdigit()):
        named = int(named)
        if named in ids or is_hostmaster(request.user):
            customer = Customer.objects.filter(pk=named).first()
            if customer is not None:
                return customer
    return Customer.objects.filter(pk__in=ids).order_by("pk").first()


def body_field(request: Request, name: str):
    data = request.data
    return data.get(name) if isinstance(data, dict) else None


class RateLimitedCreate:
    """A viewset mixin: `create` is throttled per customer for `rate_limit_action`."""

    rate_limit_action = ""

    def get_throttles(self):
        if getattr(self, "action", None) == "create":
            return [CustomerRateThrottle(self.rate_limit_action)]
        return super().get_throttles()

    def rate_limit_customer(self, request: Request) -> Customer | None:
        return named_or_own_customer(request, body_field(request, "customer"))
