"""Target hosts of environment orders: which one a service goes to, and how to reach it. Hostmasters
register hosts in the admin (`DeployHost`); without any, services run on the built-in local target."""

from __future__ import annotations

from django.db import transaction

from provisioning.orders import ansible, targets
from provisioning.orders.choices import DeploymentStatus
from provisioning.orders.models import DeployHost, ServiceDeployment
from provisioning.services import ServiceError


def target_of(deployment: ServiceDeployment) -> targets.Target:
    """Where the deployment runs: its registered host, or the built-in local target."""
    host = deployment.host
    if host is None:
        return ansible.LOCAL
    return targets.Target(
        name=host.name,
        address=host.address,
        port=host.ssh_port,
        user=host.user,
        host_key=host.host_key,
        private_key=host.private_key(),
        root=host.root,
        bind="0.0.0.0",
    )


def host_choose(*, deployment: ServiceDeployment) -> DeployHost | None:
    """The enabled host that runs the service's type with the most room left (then by name), chosen
    under a lock on the hosts so that two environments never both take a host's last place. None:
    no host is registered, the built-in local target runs it."""
    with transaction.atomic():
        hosts = list(DeployHost.objects.select_for_update().order_by("name"))
        if not hosts:
            return None
        live = ServiceDeployment.objects.exclude(status=DeploymentStatus.REMOVED).exclude(pk=deployment.pk)
        room = {
            h.pk: h.capacity - live.filter(host=h).count()
            for h in hosts
            if h.enabled and h.runs(deployment.type)
        }
        best = max(room, key=lambda pk: (room[pk], -[h.pk for h in hosts].index(pk)), default=None)
        if best is None or room[best] <= 0:
            raise ServiceError(
                f"no deploy host has room for service {deployment.service_id} (type {deployment.type}): "
                f"{len(hosts)} registered, {len(room)} enabled for that type, none with a free place. "
                "A hostmaster adds a host or raises a capacity in the admin; then send the order again."
            )
        ServiceDeployment.objects.filter(pk=deployment.pk).update(host_id=best)
        deployment.host = next(h for h in hosts if h.pk == best)
        return deployment.host


def deploy_host_set_private_key(*, host: DeployHost, private_key: str) -> None:
    """Store a host's SSH private key (encrypted; write-only from here on)."""
    host.set_private_key(private_key)
    DeployHost.objects.filter(pk=host.pk).update(private_key_encrypted=host.private_key_encrypted)
