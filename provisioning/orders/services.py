"""Business actions of environment orders. The API, the admin, the command and the saga steps call
these; nothing else holds logic. Ansible and nginx I/O happen outside any transaction."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from provisioning.choices import OperationState
from provisioning.models import Customer, Operation
from provisioning.orders import ansible, conf, hosts, proxy, targets, vault
from provisioning.orders.choices import (
    DeploymentStatus,
    EnvironmentState,
    OrderAction,
    OrderStatus,
    ServiceType,
)
from provisioning.orders.models import Environment, Order, ServiceDeployment, VaultVariable
from provisioning.orders.spec import OrderInvalid, OrderSpec, ServiceSpec, parse_order
from provisioning.saga import runner
from provisioning.saga.definition import StatusView
from provisioning.services import Conflict, ServiceError

SAGA_KINDS = {
    OrderAction.UPDATE: "orders.update_environment",
    OrderAction.DELETE: "orders.delete_environment",
}
COMMANDS = {ServiceType.PYTHON: ["python3", "app.py"]}
LIVE = [s for s in DeploymentStatus.values if s != DeploymentStatus.REMOVED]


# --- Reading the host ---------------------------------------------------------------------------


def process_alive(deployment: ServiceDeployment) -> bool:
    """The tracked pid runs, and from this service's checkout (a pid reused by another process after
    a reboot does not count). On a remote host the records are taken as they are here (no network
    I/O: this runs inside transactions); the deploy step looks over SSH."""
    if not deployment.pid or not deployment.workdir:
        return False
    if deployment.host_id is not None:
        return deployment.status == DeploymentStatus.DEPLOYED
    try:
        cwd = os.readlink(f"/proc/{deployment.pid}/cwd")
    except OSError:
        return False
    return Path(cwd) == Path(deployment.workdir) / "app"


def needs_deploy(deployment: ServiceDeployment) -> bool:
    return (
        deployment.status != DeploymentStatus.DEPLOYED
        or deployment.deployed_spec != deployment.desired_spec()
        or not process_alive(deployment)
    )


def routes_of(environment: Environment) -> list[proxy.Route]:
    deployments = (
        environment.deployments.filter(ordered=True, port__isnull=False)
        .exclude(status=DeploymentStatus.REMOVED)
        .select_related("host")
    )
    return [
        proxy.Route(
            service_id=d.service_id,
            domains=tuple(environment.domains.get(d.section, [])),
            path=d.path,
            port=d.port,
            address=d.host.address if d.host_id else "127.0.0.1",
        )
        for d in deployments
        if environment.domains.get(d.section)
    ]


# --- Orders -------------------------------------------------------------------------------------


def _describe(service: ServiceSpec) -> str:
    return f"service {service.id} ({service.section} {service.path})"


def order_plan(*, spec: OrderSpec, environment: Environment | None) -> list[str]:
    """What processing the order would change, one line per change, for people. Empty: nothing."""
    exists = environment is not None and environment.state == EnvironmentState.ACTIVE
    if spec.action == OrderAction.DELETE:
        if not exists:
            return []
        live = environment.deployments.filter(status__in=LIVE)
        return [f"stop and remove service {d.service_id} ({d.section} {d.path})" for d in live] + [
            f"remove the proxy routes of {', '.join(environment.all_domains()) or 'no domain'}",
            f"delete environment {environment.key}",
        ]
    changes: list[str] = []
    current = {}
    if not exists:
        changes.append(f"create environment {spec.environment_id}")
    else:
        current = {d.service_id: d for d in environment.deployments.filter(status__in=LIVE)}
        for section in sorted(set(spec.domains) | set(environment.domains)):
            before, after = environment.domains.get(section, []), spec.domains.get(section, [])
            if before != after:
                changes.append(
                    f"domains of {section}: {', '.join(before) or '-'} -> {', '.join(after) or '-'}"
                )
    for service in spec.services:
        d = current.get(service.id)
        if d is None:
            changes.append(f"deploy {_describe(service)} at version {service.version}")
            continue
        was = d.deployed_spec or {}
        diffs = []
        for key, label in (("version", "version"), ("repository_url", "repository"), ("type", "type")):
            if was.get(key) != getattr(service, key):
                diffs.append(f"{label} {was.get(key, '-')} -> {getattr(service, key)}")
        if was.get("variables", []) != list(service.variables):
            diffs.append("vault variables " + ", ".join(service.variables))
        if d.path != service.path or d.section != service.section:
            diffs.append(f"route {d.section} {d.path} -> {service.section} {service.path}")
        if not diffs and (d.status != DeploymentStatus.DEPLOYED or not process_alive(d)):
            diffs.append(f"it is not running ({d.get_status_display().lower()})")
        if diffs:
            changes.append(f"redeploy {_describe(service)}: {'; '.join(diffs)}")
    ordered = {s.id for s in spec.services}
    for sid, d in current.items():
        if sid not in ordered:
            changes.append(f"stop service {sid} ({d.section} {d.path}) and remove its route")
    if exists and not changes:
        # Everything matches the database; the routes on disk must match too.
        if proxy.current_site(environment.key) != proxy.render_site(environment.key, routes_of(environment)):
            changes.append(f"rewrite the proxy routes of environment {environment.key}")
    return changes


def _check_domains_free(spec: OrderSpec, environment: Environment | None) -> None:
    others = Environment.objects.filter(state=EnvironmentState.ACTIVE)
    if environment is not None:
        others = others.exclude(pk=environment.pk)
    taken = {d: env.key for env in others for d in env.all_domains()}
    errors = {}
    for section, domains in spec.domains.items():
        for i, domain in enumerate(domains):
            if domain in taken:
                errors[f"{section}.domains[{i}]"] = [f"{domain} is served by environment {taken[domain]}."]
    if errors:
        raise OrderInvalid(errors)


def order_create(*, text: bytes | str, customer: Customer, user=None, dry_run: bool = False) -> Order:
    """Validate and store an order of `customer` and start its workflow (on commit). A new
    environment belongs to the customer who ordered it; only that customer orders it again. With
    `dry_run`, answer an unsaved Order whose `changes` say what would happen. Raises OrderInvalid
    naming every bad field, Conflict while another order of the environment runs."""
    if customer is None or customer.pk is None:
        raise ServiceError("An order is placed for a customer: name the customer it is for.")
    spec = parse_order(text)
    with transaction.atomic():
        environment = Environment.objects.select_for_update().filter(key=spec.environment_id).first()
        if environment is not None and environment.customer_id != customer.pk:
            raise OrderInvalid({"environment_id": ["belongs to another customer."]})
        if spec.action == OrderAction.UPDATE:
            _check_domains_free(spec, environment)
        changes = order_plan(spec=spec, environment=environment)
        order = Order(
            customer=customer,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            environment=environment,
            action=spec.action,
            spec=spec.to_dict(),
            changes=changes,
        )
        if dry_run:
            return order
        if environment is None:
            if spec.action == OrderAction.DELETE:
                raise OrderInvalid({"environment_id": [f"there is no environment {spec.environment_id}."]})
            environment = Environment.objects.create(key=spec.environment_id, customer=customer)
            order.environment = environment
        running = environment.orders.filter(
            status__in=[OrderStatus.PENDING, OrderStatus.RUNNING, OrderStatus.WAITING]
        ).first()
        if running is not None:
            raise Conflict(
                f"order {running.pk} of environment {environment.key} is still running; "
                "wait for it to end, then send this order again."
            )
        if environment.state == EnvironmentState.DELETED and spec.action == OrderAction.UPDATE:
            Environment.objects.filter(pk=environment.pk).update(state=EnvironmentState.ACTIVE)
        if not changes:
            order.status = OrderStatus.SUCCEEDED
            order.message = "Nothing to change: the environment is what the order says."
            order.finished_at = timezone.now()
            order.save()
            return order
        order.save()
        op = runner.start(
            kind=SAGA_KINDS[spec.action],
            subject=order,
            customer=order.customer,
            data={"order_id": order.pk, "environment_id": environment.pk},
            queue="local",
            timeout=timedelta(hours=1),
        )
        Order.objects.filter(pk=order.pk).update(operation=op)
        order.operation = op
    return order


def order_create_from_api(*, text: bytes, user) -> Order:
    from provisioning.selectors import customers_of

    customer = customers_of(user).first()
    if customer is None:
        raise ServiceError("You belong to no customer: ask an owner to add you first.", code=403)
    return order_create(text=text, customer=customer, user=user)


_STATES = {
    OperationState.PENDING: OrderStatus.PENDING,
    OperationState.RUNNING: OrderStatus.RUNNING,
    OperationState.RETRYING: OrderStatus.WAITING,
    OperationState.WAITING: OrderStatus.WAITING,
    OperationState.COMPENSATING: OrderStatus.RUNNING,
    OperationState.SUCCEEDED: OrderStatus.SUCCEEDED,
    OperationState.FAILED: OrderStatus.FAILED,
    OperationState.CANCELLED: OrderStatus.CANCELLED,
    OperationState.TIMED_OUT: OrderStatus.TIMED_OUT,
}


def order_write_status(*, operation: Operation, view: StatusView, titles: dict[str, str]) -> None:
    """The saga's status hook: runs in the transaction that changes the operation row, from the first
    write (all pending) to the final state, failure included."""
    status = _STATES.get(view.state, OrderStatus.RUNNING)
    # A list, not a mapping: jsonb does not keep key order, and the order of the tasks is the story.
    tasks = [
        {"name": name, "title": title, "status": operation.steps.get(name, {}).get("status", "pending")}
        for name, title in titles.items()
    ]
    Order.objects.filter(pk=operation.subject_id).update(
        status=status,
        progress=view.progress[:200],
        message=(view.error or view.message)[:500],
        error=view.error,
        tasks=tasks,
        finished_at=timezone.now()
        if status in (OrderStatus.SUCCEEDED, OrderStatus.FAILED, OrderStatus.CANCELLED, OrderStatus.TIMED_OUT)
        else None,
    )


# --- The tasks of the workflows ------------------------------------------------------------------


def environment_configure(*, order: Order) -> list[str]:
    """Task 1: the environment's domains and its list of services, as the order says."""
    spec = OrderSpec.from_dict(order.spec)
    with transaction.atomic():
        environment = Environment.objects.select_for_update().get(pk=order.environment_id)
        environment.domains = spec.domains
        environment.state = EnvironmentState.ACTIVE
        environment.save(update_fields=["domains", "state", "updated_at"])
        ordered = set()
        for service in spec.services:
            ordered.add(service.id)
            d, _ = ServiceDeployment.objects.get_or_create(
                environment=environment, service_id=service.id, defaults={"section": service.section}
            )
            d.section, d.path, d.type = service.section, service.path, service.type
            d.repository_url, d.version = service.repository_url, service.version
            d.roles, d.variables, d.ordered = list(service.roles), list(service.variables), True
            if needs_deploy(d):
                d.status, d.status_message = DeploymentStatus.PENDING, "waits for the deploy task"
            d.save()
        for d in environment.deployments.exclude(service_id__in=ordered).exclude(
            status=DeploymentStatus.REMOVED
        ):
            d.ordered, d.status, d.status_message = False, DeploymentStatus.REMOVING, "no longer ordered"
            d.save(update_fields=["ordered", "status", "status_message", "updated_at"])
    return sorted(ordered)


def _free_port(taken: set[int]) -> int:
    low, high = conf.port_range()
    for port in range(low, high + 1):
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # something outside our books listens there
        return port
    raise ServiceError(f"no free port left in {low}-{high}.")


def _under(path: str, root: Path) -> bool:
    return Path(path).resolve().is_relative_to(root.resolve())


def deployment_allocate(*, deployment: ServiceDeployment) -> bool:
    """Task 2: a host, a port and a working folder, only what is missing: a re-run keeps what was
    chosen. Answers whether anything was allocated. Two environments allocating at once collide on
    the unique port; the loser retries."""
    changed = False
    if (
        deployment.host_id is None
        and deployment.workdir
        and not _under(deployment.workdir, conf.environments_dir())
    ):
        # Deployed before the local target ran services as users of their own, inside DATA_DIR: stop
        # it there and remove that folder (its env file included); it is deployed again in its place.
        ansible.stop_service(ident=f"move-{deployment.pk}", workdir=deployment.workdir)
        _set_status(
            deployment, DeploymentStatus.PENDING, "moves to the local target's folder", pid=None, workdir=""
        )
    if not deployment.workdir:
        host = deployment.host if deployment.host_id else hosts.host_choose(deployment=deployment)
        if host is None:
            root = conf.environments_dir()
        else:
            root = Path(host.root)
        deployment.workdir = str(root / deployment.environment.key / deployment.service_id)
        changed = True
    if deployment.host_id is None:
        hosts.local_user_ensure(deployment=deployment)
    while deployment.port is None:
        taken = set(ServiceDeployment.objects.exclude(port=None).values_list("port", flat=True))
        deployment.port = _free_port(taken)
        try:
            with transaction.atomic():
                deployment.save(update_fields=["port", "workdir", "updated_at"])
        except IntegrityError:
            deployment.port = None
            continue
        return True
    if changed:
        deployment.save(update_fields=["workdir", "updated_at"])
    return changed


def vault_ensure(*, deployment: ServiceDeployment) -> int:
    """Task 3: create the missing vault variables of a service; existing ones are kept. Answers how
    many were created (never what)."""
    existing = set(deployment.vault.values_list("name", flat=True))
    created = 0
    for name in [*vault.STANDARD_VARIABLES, *deployment.variables]:
        if name in existing:
            continue
        value = vault.generate(name, environment=deployment.environment.key, service_id=deployment.service_id)
        _, made = VaultVariable.objects.get_or_create(
            deployment=deployment, name=name, defaults={"ciphertext": vault.encrypt(value)}
        )
        created += int(made)
    return created


def _env_file(deployment: ServiceDeployment) -> tuple[str, list[str]]:
    # Values are generated by vault.generate (url-safe characters), so single quotes are enough.
    lines = {
        "HOST": hosts.target_of(deployment).bind,
        "PORT": str(deployment.port),
        "SERVICE_ID": deployment.service_id,
        "SERVICE_PATH": deployment.path,
        "SERVICE_VERSION": deployment.version,
    }
    wanted = {*vault.STANDARD_VARIABLES, *deployment.variables}
    secrets = []
    for variable in deployment.vault.filter(name__in=wanted):
        lines[variable.name] = vault.decrypt(variable.ciphertext)
        secrets.append(lines[variable.name])
    return "".join(f"{name}='{value}'\n" for name, value in lines.items()), secrets


def _set_status(deployment: ServiceDeployment, status: str, message: str, **fields) -> None:
    fields.update(status=status, status_message=message[:500], updated_at=timezone.now())
    ServiceDeployment.objects.filter(pk=deployment.pk).update(**fields)
    for name, value in fields.items():
        setattr(deployment, name, value)


def deployment_deploy(*, deployment: ServiceDeployment, ident: str) -> bool:
    """Task 4 for one service: deploy it when what runs differs from what is ordered. Answers whether
    it was deployed; raises ansible.PlaybookFailed after marking the service failed."""
    target = hosts.target_of(deployment)
    if not needs_deploy(deployment):
        if target.is_local or ansible.process_runs(
            ident=ident, target=target, pid=deployment.pid, workdir=deployment.workdir
        ):
            return False
    where = "" if target.is_local else f" on {target.describe()}"
    _set_status(deployment, DeploymentStatus.DEPLOYING, f"deploying version {deployment.version}{where}")
    env_file, secrets = _env_file(deployment)
    try:
        result = ansible.deploy_service(
            ident=ident,
            target=target,
            workdir=deployment.workdir,
            repository_url=deployment.repository_url,
            version=deployment.version,
            port=deployment.port,
            health_path=deployment.path,
            command=COMMANDS[deployment.type],
            env_file=env_file,
            secrets=secrets,
        )
    except ansible.PlaybookFailed as exc:
        _set_status(deployment, DeploymentStatus.FAILED, exc.message)
        raise
    except targets.HostUnreachable as exc:
        _set_status(deployment, DeploymentStatus.FAILED, exc.message)
        raise
    _set_status(
        deployment,
        DeploymentStatus.DEPLOYED,
        f"version {deployment.version} ({result['commit'][:12]}) answers on port {deployment.port}{where}",
        pid=result["pid"],
        deployed_commit=result["commit"],
        deployed_spec=deployment.desired_spec(),
        deployed_at=timezone.now(),
    )
    return True


def proxy_update(*, environment: Environment, remove: bool = False) -> bool:
    """Task 5: render the environment's routes, test, swap, reload, and check that every route
    reaches its service. Answers whether the routes changed."""
    routes = [] if remove else routes_of(environment)
    content = None if remove else proxy.render_site(environment.key, routes)
    changed = proxy.apply_site(environment.key, content)
    problems = proxy.check_routes(routes)
    if problems:
        raise proxy.ProxyError("routes do not reach their services: " + "; ".join(problems))
    return changed


def deployment_undo(*, deployment: ServiceDeployment, ident: str, reason: str) -> None:
    """Compensation of a deploy that failed for good: a service this order put on a host is stopped
    and its folder removed there, so that nothing is left half deployed. A host that cannot be
    reached has nothing of it running (its deploy is what failed)."""
    if deployment.workdir and deployment.pid:
        try:
            ansible.stop_service(ident=ident, workdir=deployment.workdir, target=hosts.target_of(deployment))
        except targets.HostUnreachable:
            pass
    _set_status(deployment, DeploymentStatus.FAILED, reason, pid=None, deployed_spec={})


def deployment_retire(*, deployment: ServiceDeployment, ident: str) -> None:
    """Stop a service that is no longer ordered, remove its folder and its secrets, free its port."""
    if deployment.workdir:
        ansible.stop_service(ident=ident, workdir=deployment.workdir, target=hosts.target_of(deployment))
    hosts.local_user_remove(deployment=deployment)
    deployment.vault.all().delete()
    _set_status(
        deployment,
        DeploymentStatus.REMOVED,
        "stopped; its route and folder are removed",
        pid=None,
        port=None,
        deployed_spec={},
        ordered=False,
    )


def environment_mark_deleted(*, environment: Environment) -> None:
    Environment.objects.filter(pk=environment.pk).update(
        state=EnvironmentState.DELETED, domains={}, updated_at=timezone.now()
    )
