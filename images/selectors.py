"""Reads of the images app: what a user may see."""

from django.db.models import QuerySet

from images.choices import ProviderName
from images.models import CloudAccount, ImageBuild, PublicKey, Reservation
from provisioning.selectors import customer_ids_of
from provisioning.services import is_hostmaster


def _visible(qs: QuerySet, user) -> QuerySet:
    return qs if is_hostmaster(user) else qs.filter(customer_id__in=customer_ids_of(user))


def builds_visible_to(user) -> QuerySet[ImageBuild]:
    return _visible(ImageBuild.objects.select_related("customer"), user).prefetch_related("reservations")


def reservations_visible_to(user) -> QuerySet[Reservation]:
    qs = Reservation.objects.select_related("customer", "build", "account", "pubkey")
    return _visible(qs, user).prefetch_related("instances")


def public_keys_visible_to(user) -> QuerySet[PublicKey]:
    return _visible(PublicKey.objects.all(), user)


def cloud_accounts_visible_to(user, provider: str | None = None) -> QuerySet[CloudAccount]:
    """The accounts the wizard offers for `provider` (all of them without it; none for a provider that
    does not exist: such a name never reaches the database, which refuses some characters outright)."""
    qs = _visible(CloudAccount.objects.all(), user)
    if not provider:
        return qs
    return qs.filter(provider=provider) if provider in ProviderName.values else qs.none()
