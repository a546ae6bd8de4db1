"""Structured logs: the operation id on every line about an operation, and no secret on any line."""

import io
import logging

import pytest
from django.conf import settings

from provisioning.logs import ContextFilter, JsonFormatter, KeyValueFormatter, log_context
from tests import sagas
from tests.engine.helpers import start, wait_final
from tests.ops.helpers import json_lines

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def side_effect_table():
    sagas.ensure_table()


@pytest.mark.usefixtures("celery_worker")
def test_it_writes_the_operation_id_on_every_line_of_a_saga_run(celery_worker):
    op = wait_final(start("test_five", {"s2": ["error", "done"]}).pk, sweep=False)
    assert op.state == "succeeded"
    op_id = str(op.pk)

    lines = json_lines(celery_worker.log_path.read_text())
    assert lines, "the worker writes JSON lines (LOG_FORMAT=json by default)"
    ours = [line for line in lines if line.get("operation") == op_id]
    # Every line that mentions the operation carries it as a field.
    mentioning = [line for line in lines if op_id in line["msg"]]
    assert mentioning and all(line.get("operation") == op_id for line in mentioning)
    # The runner's record of each attempt names the step and the attempt; Celery's own task lines
    # (bound when the task starts) carry the operation too.
    recorded = {(line["step"], line["attempt"]) for line in ours if "->" in line["msg"]}
    assert {("s1", "1"), ("s2", "1"), ("s2", "2"), ("s5", "1")} <= recorded
    assert all(line["kind"] == "test_five" for line in ours if "step" in line)
    assert any(line["logger"] == "celery.app.trace" and "succeeded" in line["msg"] for line in ours)
    # The unexpected error of s2's first attempt is recorded on the timeline, and logs name the op.
    assert any("s2" == line.get("step") and "retry" in line["msg"] for line in ours)


@pytest.mark.usefixtures("celery_worker")
def test_it_never_writes_the_secret_key_or_a_password_into_the_worker_log(celery_worker):
    text = celery_worker.log_path.read_text()
    assert settings.SECRET_KEY not in text
    password = settings.DATABASES["default"].get("PASSWORD")
    if password:
        assert password not in text


def _log_through(formatter: logging.Formatter, *args, exc: Exception | None = None) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("tests.ops.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        if exc is None:
            logger.warning(*args)
        else:
            try:
                raise exc
            except RuntimeError:
                logger.exception(*args)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize("formatter", [JsonFormatter(), KeyValueFormatter()], ids=["json", "text"])
def test_it_masks_passwords_in_urls_tokens_and_the_secret_key(formatter):
    with log_context(operation="op-42", step="deploy"):
        line = _log_through(
            formatter,
            "connecting to %s with %s (key %s)",
            "redis://:hunter2-broker-password@redis:6379/0",
            "Authorization: Token 0123456789abcdef0123456789abcdef",
            settings.SECRET_KEY,
        )
        failure = _log_through(
            formatter,
            "deploy failed",
            exc=RuntimeError("postgres://app:s3cret-db-password@db/app refused"),
        )
    for text in (line, failure):
        assert "op-42" in text and "deploy" in text
        for secret in ("hunter2-broker-password", "0123456789abcdef0123456789abcdef", "s3cret-db-password"):
            assert secret not in text
        assert settings.SECRET_KEY not in text
    assert "redis://:***@redis:6379/0" in line and "Token ***" in line
    assert "RuntimeError" in failure and "postgres://app:***@db/app" in failure
