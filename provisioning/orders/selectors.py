"""Reads of environment orders: what a user may see (hostmasters see everything)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from provisioning.orders.models import Environment, Order, ServiceDeployment
from provisioning.selectors import customer_ids_of
from provisioning.services import is_hostmaster


def orders_visible_to(user) -> QuerySet[Order]:
    deployments = ServiceDeployment.objects.order_by("section", "path")
    qs = Order.objects.select_related("environment").prefetch_related(
        Prefetch("environment__deployments", queryset=deployments)
    )
    return qs if is_hostmaster(user) else qs.filter(customer_id__in=customer_ids_of(user))


def environments_visible_to(user) -> QuerySet[Environment]:
    qs = Environment.objects.select_related("customer")
    return qs if is_hostmaster(user) else qs.filter(customer_id__in=customer_ids_of(user))
