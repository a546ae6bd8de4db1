"""The images app has no Celery task of its own: its saga's steps run through the engine's tasks.
What is here ties the local provider's instances to the worker's life, as a host ties its machines to
its own: a worker that shuts down stops them (not one that is killed: they go on without it), and the
next worker to start starts them again. Their rows are brought in line with what runs each time."""

import logging

from celery.signals import worker_ready, worker_shutdown

from images import conf, services
from provisioning.providers.local import LocalProvider

log = logging.getLogger("images")


@worker_shutdown.connect
def stop_local_instances(**_kwargs) -> None:
    if not conf.stop_local_instances_on_shutdown():
        return
    stopped = LocalProvider(latency=0).stop_running()
    if stopped:
        log.info("stopped %s local instances on shutdown; the next worker starts them again", len(stopped))
    services.local_instances_reconcile()


@worker_ready.connect
def start_local_instances(**_kwargs) -> None:
    if not conf.stop_local_instances_on_shutdown():
        return
    started = LocalProvider(latency=0).start_stopped()
    if started:
        log.info("started %s local instances stopped at the last shutdown", len(started))
    changed = services.local_instances_reconcile()
    if changed:
        log.info("brought %s local instance rows in line with what runs", changed)
