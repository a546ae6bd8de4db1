"""Reads of application requests and teams: what a user may see."""

from django.db.models import QuerySet

from provisioning.applications.models import ApplicationRequest, Team
from provisioning.selectors import customer_ids_of
from provisioning.services import is_hostmaster


def requests_visible_to(user) -> QuerySet[ApplicationRequest]:
    """Hostmasters see every request; a customer's users see the customer's requests."""
    qs = ApplicationRequest.objects.select_related(
        "customer", "requester", "authorizer", "decided_by", "operation"
    )
    if is_hostmaster(user):
        return qs
    return qs.filter(customer_id__in=customer_ids_of(user))


def requests_awaiting(user) -> QuerySet[ApplicationRequest]:
    """What waits for this user's decision."""
    from provisioning.applications.choices import RequestState

    return requests_visible_to(user).filter(
        authorizer=user, state=RequestState.AWAITING_DECISION, decision=""
    )


def teams_visible_to(user) -> QuerySet[Team]:
    qs = Team.objects.select_related("customer").prefetch_related("members", "authorizers")
    if is_hostmaster(user):
        return qs
    return qs.filter(customer_id__in=customer_ids_of(user))


def authorizer_candidates(customers, requester) -> QuerySet:
    """Who may be named as the authorizer of a request: the active users of the customers, but the
    requester (the pre-flight checks decide whether the one named may authorize for the team)."""
    from django.contrib.auth import get_user_model

    return (
        get_user_model()
        .objects.filter(is_active=True, memberships__customer__in=customers)
        .exclude(pk=requester.pk)
        .distinct()
        .order_by("username")
    )
