"""gunicorn settings for the web process: `gunicorn provisioning.wsgi:application -c deploy/gunicorn.conf.py`.

HOST/PORT: where it listens (127.0.0.1:8000: nginx in front, on the same machine; 0.0.0.0 in a
container). WEB_CONCURRENCY processes of WEB_THREADS threads each serve requests: requests only read
and write rows and enqueue, so threads suffice; the slow work happens in the Celery workers.
"""

import multiprocessing
import os
from pathlib import Path

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count())))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
proc_name = "provisioning-web"
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 2000
max_requests_jitter = 200
# The workers' heartbeat files: in memory, not on a container's overlay filesystem.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None
# No gunicorn control socket (gunicorn >= 24 opens one in $HOME, which the units make read-only).
control_socket_disable = True
# X-Forwarded-Proto is trusted from nginx on this machine only (Django's SECURE_PROXY_SSL_HEADER).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

accesslog = "-"
errorlog = "-"
# Never log request headers: they carry API tokens.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
# gunicorn's own lines in the same format as the service's (LOG_FORMAT), secrets masked.
_format = "text" if os.environ.get("LOG_FORMAT", "json").strip().lower() == "text" else "json"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "provisioning.logs.JsonFormatter"},
        "text": {"()": "provisioning.logs.KeyValueFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": _format, "stream": "ext://sys.stdout"}
    },
    "loggers": {
        "gunicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
