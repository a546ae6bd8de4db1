"""gunicorn settings for the web process: `gunicorn provisioning.wsgi:application -c deploy/gunicorn.conf.py`."""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", max(2, multiprocessing.cpu_count())))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 2000
max_requests_jitter = 200
accesslog = "-"
errorlog = "-"
# Never log request headers: they carry API tokens.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
