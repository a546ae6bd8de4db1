"""The images app has no Celery task of its own: its saga's steps run through the engine's tasks.
What is here ties the local provider's instances to the worker's life."""

import logging

from celery.signals import worker_shutdown

from images import conf
from provisioning.providers.local import LocalProvider

log = logging.getLogger("images")


@worker_shutdown.connect
def stop_local_instances(**_kwargs) -> None:
    """The embedded service's local instances live no longer than the service: a worker that shuts
    down (not one that is killed: its instances wait for the next worker's saga) terminates them."""
    if not conf.stop_local_instances_on_shutdown():
        return
    stopped = LocalProvider(latency=0).stop_all()
    if stopped:
        log.info("stopped %s local instances on shutdown", stopped)
