"""No vault value on disk outside the services' own env files: after a normal run, and after a worker
SIGKILLed in the middle of a deploy (its run folder is removed when a worker starts again)."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from provisioning.models import Customer
from provisioning.orders import conf, services, vault
from provisioning.orders.choices import DeploymentStatus, OrderStatus
from provisioning.orders.models import Order, ServiceDeployment, VaultVariable
from tests.fixtures.orders import APP, _git
from tests.orders.conftest import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(300)]

ORDER = """\
action: update
environment_id: "{env}"
api:
  domains: [api.{env}.example.com]
  services:
    - id: "6"
      path: /
      repository: {{url: '{url}', version: {version}}}
      variables: [JWT_SECRET, PAYMENT_KEY]
      type: python
"""
# v2 takes its time to listen: the deploy is still in its health check when the worker is killed.
SLOW = "import time\ntime.sleep(15)\n"


def files_to_search(since: float) -> list[Path]:
    """Every file of the data folder (the run folders are in it), and every file of the temporary
    folders and ~/.ansible written since the test began."""
    found = []
    roots = {Path(tempfile.gettempdir()), Path("/tmp"), Path("/var/tmp"), Path.home() / ".ansible"}
    for root in [Path(settings.DATA_DIR), *roots]:
        # os.walk, not rglob: folders of other runs come and go while it walks.
        every = (Path(top) / name for top, _, names in os.walk(root) for name in names)
        for path in every:
            if (
                path.name == "service.env"
                or path.parts[2:3]
                and path.parts[1] == "tmp"
                and path.parts[2].startswith("bash_jobs")
            ):
                continue  # the services' own files; the machinery running this session
            try:
                info = path.lstat()
            except OSError:
                continue  # gone meanwhile
            recent = info.st_mtime >= since or root == Path(settings.DATA_DIR)
            if path.is_file() and not path.is_symlink() and recent and info.st_size < 20_000_000:
                found.append(path)
    return found


def assert_no_vault_value_on_disk(since: float) -> int:
    values = [vault.decrypt(v.ciphertext) for v in VaultVariable.objects.all()]
    assert len(values) == 5
    searched = 0
    for path in files_to_search(since):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        searched += 1
        for value in values:
            assert value.encode() not in data, f"a vault value is in {path}"
    env_file = Path(ServiceDeployment.objects.get().workdir) / "home" / "service.env"
    assert all(value in env_file.read_text() for value in values)
    assert env_file.stat().st_mode & 0o777 == 0o600
    return searched


def test_no_vault_value_is_left_on_disk_after_a_run_or_a_worker_killed_mid_deploy(
    orders_worker, service_repo, tmp_path
):
    since = time.time()
    repo = service_repo("api", "v1")
    (repo.path / "app.py").write_text(SLOW + APP.format(name="api", version="v2"))
    _git(repo.path, "commit", "-qam", "slow v2")
    _git(repo.path, "tag", "v2")
    customer = Customer.objects.create(name=f"acme-{uuid.uuid4().hex[:6]}")
    env = f"env-{uuid.uuid4().hex[:6]}"

    first = services.order_create(text=ORDER.format(env=env, url=repo.url, version="v1"), customer=customer)
    wait_until(lambda: Order.objects.get(pk=first.pk).is_terminal, timeout=120, what="the first order to end")
    assert Order.objects.get(pk=first.pk).status == OrderStatus.SUCCEEDED
    assert not any(conf.runs_dir().iterdir())
    assert assert_no_vault_value_on_disk(since) > 10

    second = services.order_create(text=ORDER.format(env=env, url=repo.url, version="v2"), customer=customer)
    wait_until(
        lambda: (
            ServiceDeployment.objects.get().status == DeploymentStatus.DEPLOYING
            and any(conf.runs_dir().iterdir())
        ),
        timeout=60,
        what="the deploy to run",
    )
    time.sleep(3)  # into the playbook's health check
    orders_worker.kill()
    stale = list(conf.runs_dir().iterdir())
    assert stale, "the killed worker's run folder"
    assert assert_no_vault_value_on_disk(since) > 10

    orders_worker.start()
    assert not any(path.exists() for path in stale), "a worker removes stale run folders when it starts"
    assert Order.objects.get(pk=second.pk).is_active  # the sweeper re-drives it; no beat runs here
    assert_no_vault_value_on_disk(since)
