"""Celery tasks of the saga engine: each loads the row and calls the runner; no logic of their own."""

from celery import shared_task

from provisioning import heartbeats, services
from provisioning.saga import runner


@shared_task(name="provisioning.run_step", bind=True)
def run_step(self, operation_id: str, position: int, step: str) -> bool:
    go_on = runner.execute_step(operation_id, position, step)
    if not go_on:
        # The row says what happens next (a retry, a wait, compensation): the chain stops here.
        self.request.chain = None
    return go_on


@shared_task(name="provisioning.run_steps", bind=True)
def run_steps(self, operation_id: str, kind: str, positions: list[int]) -> bool:
    go_on = runner.execute_segment(operation_id, kind, positions)
    if not go_on:
        self.request.chain = None
    return go_on


@shared_task(name="provisioning.join_group", bind=True)
def join_group(self, operation_id: str, position: int) -> bool:
    go_on = runner.join_group(operation_id, position)
    if not go_on:
        self.request.chain = None
    return go_on


@shared_task(name="provisioning.compensate", ignore_result=True)
def compensate(operation_id: str) -> None:
    while runner.compensate_next(operation_id) == 0:
        pass


@shared_task(name="provisioning.sweep", ignore_result=True)
def sweep() -> int | None:
    # Any number of beats send this; it ticks only if no other machine ticks right now (the lock) and
    # none ticked within the interval (the claim, which is also the heartbeat /health/ reads).
    with runner.tick_lock() as mine:
        if not mine or not heartbeats.sweeper_tick_claim():
            return None
        return runner.sweep()


@shared_task(name="provisioning.idempotency_keys_purge", ignore_result=True)
def idempotency_keys_purge() -> int:
    return services.idempotency_keys_purge()
