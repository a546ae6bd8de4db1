"""The workflows of environment orders, one per action. Each task is a step that looks at the
database and at the host before it acts, so running it again (after a crash, or the same order twice)
does only what is still missing. Status per service is written on ServiceDeployment as each acts."""

from __future__ import annotations

import shutil

from provisioning.orders import ansible, conf, proxy, services, targets
from provisioning.orders.choices import DeploymentStatus
from provisioning.orders.models import Environment, Order, ServiceDeployment
from provisioning.saga import Done, RetryPolicy, Saga, Step, StepFailed
from provisioning.services import ServiceError


def _order(ctx) -> Order:
    order = Order.objects.select_related("environment").filter(pk=ctx.data["order_id"]).first()
    if order is None:
        raise StepFailed("The order is gone: nothing to process.")
    return order


def _deployments(environment: Environment, *, ordered: bool):
    qs = environment.deployments.select_related("environment", "host").exclude(
        status=DeploymentStatus.REMOVED
    )
    return list(qs.filter(ordered=ordered).order_by("section", "path"))


def _ident(ctx, deployment: ServiceDeployment) -> str:
    return f"{ctx.operation_id}-{ctx.step.name}-{deployment.service_id}"


def _retire(ctx, deployments: list) -> list[str]:
    """Stop each service and remove its working folder; the ids of those stopped."""
    for d in deployments:
        try:
            with ctx.keep_alive():
                services.deployment_retire(deployment=d, ident=_ident(ctx, d))
        except (ansible.PlaybookFailed, targets.HostUnreachable) as exc:
            raise StepFailed(f"Service {d.service_id} could not be stopped: {exc.message}") from exc
    return [d.service_id for d in deployments]


class ConfigureEnvironment(Step):
    name = "domains"
    title = "Update the environment's domains"
    weight = 1

    def run(self, ctx) -> Done:
        return Done({"services": services.environment_configure(order=_order(ctx))})


class AllocateResources(Step):
    name = "resources"
    title = "Allocate resources"
    weight = 2

    def run(self, ctx) -> Done:
        environment = _order(ctx).environment
        try:
            allocated = [
                d.service_id
                for d in _deployments(environment, ordered=True)
                if services.deployment_allocate(deployment=d)
            ]
        except ServiceError as exc:
            raise StepFailed(exc.message) from exc
        return Done({"allocated": allocated})


class CreateVaultVariables(Step):
    name = "vault"
    title = "Create missing vault variables"
    weight = 3

    def run(self, ctx) -> Done:
        environment = _order(ctx).environment
        created = sum(services.vault_ensure(deployment=d) for d in _deployments(environment, ordered=True))
        return Done({"vault_variables_created": created})


class DeployServices(Step):
    name = "deploy"
    title = "Deploy services"
    weight = 4
    heartbeat_timeout = 30.0  # keep_alive beats every 5 s while ansible runs
    # A host that does not answer is tried again (it may be rebooting); a playbook that fails is not.
    retry = RetryPolicy(max_attempts=3, backoff=2.0)

    def run(self, ctx) -> Done:
        environment = _order(ctx).environment
        ordered = _deployments(environment, ordered=True)
        if "running_before" not in ctx.data:
            # What ran before this order: the rest is this order's to undo if the step fails for good.
            ctx.save(running_before=[d.service_id for d in ordered if d.status == DeploymentStatus.DEPLOYED])
        deployed, failures, unreachable = [], [], []
        for d in ordered:
            try:
                with ctx.keep_alive():
                    if services.deployment_deploy(deployment=d, ident=_ident(ctx, d)):
                        deployed.append(d.service_id)
            except ansible.PlaybookFailed as exc:
                failures.append(f"service {d.service_id}: {exc.message}")
            except targets.HostUnreachable as exc:
                unreachable.append(f"service {d.service_id}: {exc.message}")
        if unreachable and not failures and ctx.attempt < self.retry.max_attempts:
            raise targets.HostUnreachable("; ".join(unreachable))  # the engine retries after a backoff
        failures += unreachable
        if failures:
            self._undo(ctx, environment, "; ".join(failures))
            raise StepFailed(
                "Deploying failed for " + "; ".join(failures) + ". Fix the service or the order and send "
                "the order again: services already deployed are kept.",
                detail="\n".join(failures),
            )
        return Done({"deployed": deployed})

    def _undo(self, ctx, environment: Environment, reason: str) -> None:
        """Stop what this order deployed before the step fails for good (the engine compensates the
        finished steps only, and this one will not have finished)."""
        before = set(ctx.data.get("running_before", []))
        for d in _deployments(environment, ordered=True):
            if d.service_id not in before:
                with ctx.keep_alive():
                    services.deployment_undo(
                        deployment=d, ident=f"{_ident(ctx, d)}-undo", reason=f"not deployed: {reason}"[:500]
                    )


class UpdateProxyRoutes(Step):
    name = "proxy"
    title = "Update proxy routes"
    weight = 5
    heartbeat_timeout = 30.0

    def run(self, ctx) -> Done:
        try:
            with ctx.keep_alive():
                changed = services.proxy_update(environment=_order(ctx).environment)
        except proxy.ProxyError as exc:
            raise StepFailed(f"The proxy routes were not updated: {exc.message}", detail=exc.message) from exc
        return Done({"routes_changed": changed})


class RetireServices(Step):
    name = "retire"
    title = "Stop services no longer ordered"
    weight = 6
    heartbeat_timeout = 30.0  # keep_alive beats every 5 s while ansible runs

    def run(self, ctx) -> Done:
        environment = _order(ctx).environment
        return Done({"retired": _retire(ctx, _deployments(environment, ordered=False))})


class _OrderSaga(Saga):
    def write_status(self, operation, view) -> None:
        titles = {s.name: s.title for s in self.steps}
        services.order_write_status(operation=operation, view=view, titles=titles)


class UpdateEnvironmentSaga(_OrderSaga):
    kind = "orders.update_environment"
    steps = [
        ConfigureEnvironment(),
        AllocateResources(),
        CreateVaultVariables(),
        DeployServices(),
        UpdateProxyRoutes(),
        RetireServices(),
    ]


class RemoveRoutes(Step):
    name = "routes"
    title = "Remove proxy routes"
    weight = 1
    heartbeat_timeout = 30.0

    def run(self, ctx) -> Done:
        try:
            with ctx.keep_alive():
                changed = services.proxy_update(environment=_order(ctx).environment, remove=True)
        except proxy.ProxyError as exc:
            raise StepFailed(f"The proxy routes were not removed: {exc.message}", detail=exc.message) from exc
        return Done({"routes_changed": changed})


class StopServices(Step):
    name = "stop"
    title = "Stop and remove services"
    weight = 2
    heartbeat_timeout = 30.0  # keep_alive beats every 5 s while ansible runs

    def run(self, ctx) -> Done:
        environment = _order(ctx).environment
        everything = _deployments(environment, ordered=True) + _deployments(environment, ordered=False)
        return Done({"stopped": _retire(ctx, everything)})


class DeleteEnvironment(Step):
    name = "environment"
    title = "Delete the environment"
    weight = 3

    def run(self, ctx) -> Done:
        environment = _order(ctx).environment
        shutil.rmtree(conf.environments_dir() / environment.key, ignore_errors=True)
        services.environment_mark_deleted(environment=environment)
        return Done()


class DeleteEnvironmentSaga(_OrderSaga):
    kind = "orders.delete_environment"
    steps = [RemoveRoutes(), StopServices(), DeleteEnvironment()]
