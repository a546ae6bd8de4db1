import os

from celery import Celery, signals

from provisioning import logs
from provisioning.heartbeats import WorkerHeartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "provisioning.settings")

app = Celery("provisioning")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every worker keeps a Heartbeat row with the queues it consumes (health, metrics).
app.steps["consumer"].add(WorkerHeartbeat)


@signals.worker_init.connect
def _remove_stale_runs(**kwargs) -> None:
    # A worker killed mid-playbook leaves its run folder behind; the step may never run again.
    # Folders of runs still alive in another worker on this machine hold a lock and are kept.
    from provisioning.orders import ansible

    ansible.remove_stale_runs()


@signals.task_prerun.connect
def _bind_operation(task_id=None, task=None, args=None, **kwargs) -> None:
    # The engine's tasks take the operation id first: every line the task logs names it, Celery's own
    # "succeeded"/"raised" lines included.
    if task is not None and task.name.startswith("provisioning.") and args:
        task.request.log_context_token = logs.bind(operation=args[0])


@signals.task_postrun.connect
def _unbind_operation(task=None, **kwargs) -> None:
    token = getattr(task.request, "log_context_token", None) if task is not None else None
    if token is not None:
        task.request.log_context_token = None
        logs.unbind(token)


@signals.task_prerun.connect
def _fresh_connections(**kwargs) -> None:
    # As Django does before each request: drop a connection that broke (PostgreSQL restarted) or
    # outlived CONN_MAX_AGE, and check the rest once before use (CONN_HEALTH_CHECKS). Celery's own
    # closing around every task is off (CELERY_DB_REUSE_MAX).
    from django.db import close_old_connections

    close_old_connections()
