"""Target hosts of environment orders: which one a service goes to, and how to reach it. Hostmasters
register hosts in the admin (`DeployHost`); without any, services run on the built-in local target."""

from __future__ import annotations

import hashlib
from pathlib import Path

from django.conf import settings
from django.db import transaction

from provisioning.orders import ansible, conf, targets
from provisioning.orders.choices import DeploymentStatus
from provisioning.orders.models import DeployHost, ServiceDeployment
from provisioning.services import ServiceError


def target_of(deployment: ServiceDeployment) -> targets.Target:
    """Where the deployment runs: its registered host, or the built-in local target."""
    host = deployment.host
    if host is None:
        return targets.Target(name=ansible.LOCAL.name, service_user=local_user_of(deployment))
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


def local_user_of(deployment: ServiceDeployment) -> str:
    """The system user a service runs as on the local target: one per service, so that no service
    reads another's files, env file or process environment."""
    key = f"{deployment.environment.key}/{deployment.service_id}".encode()
    return f"{conf.local_user_prefix()}{hashlib.sha256(key).hexdigest()[:12]}"


def local_user_ensure(*, deployment: ServiceDeployment) -> None:
    """Make the service's user on the local target; ServiceError says what to set up when it cannot.
    DATA_DIR (secret key, database, vault key material) is closed to everybody but the worker's user
    first: an older install may have made it readable."""
    data_dir = Path(settings.DATA_DIR)
    if data_dir.stat().st_mode & 0o077:
        data_dir.chmod(0o700)
    if Path(deployment.workdir).resolve().is_relative_to(data_dir.resolve()):
        raise ServiceError(
            f"Service {deployment.service_id} cannot run on the local target: its folder "
            f"{deployment.workdir} is inside DATA_DIR, which its user must not reach. Set ORDERS_LOCAL_ROOT "
            "to a folder outside DATA_DIR."
        )
    try:
        targets.ensure_service_user(local_user_of(deployment), Path(deployment.workdir) / "home")
    except targets.TargetUnavailable as exc:
        raise ServiceError(
            f"Service {deployment.service_id} cannot run on the local target: {exc.message}"
        ) from exc


def local_user_remove(*, deployment: ServiceDeployment) -> None:
    if deployment.host_id is None:
        targets.remove_service_user(local_user_of(deployment))


def deploy_host_set_private_key(*, host: DeployHost, private_key: str) -> None:
    """Store a host's SSH private key (encrypted; write-only from here on)."""
    host.set_private_key(private_key)
    DeployHost.objects.filter(pk=host.pk).update(private_key_encrypted=host.private_key_encrypted)
