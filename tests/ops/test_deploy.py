"""The production files in deploy/: checked by the tools that will read them (Django's deploy check,
nginx -t, systemd-analyze verify) or parsed (compose), and kept in step with the settings."""

import re
import secrets
import shutil
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.exceptions import ImproperlyConfigured

from provisioning.env import env_port_range
from provisioning.orders import conf as orders_conf
from provisioning.orders import proxy
from tests import conftest
from tests.conftest import ROOT
from tests.ops.helpers import DEPLOY

PROVIDER_QUEUES = ["default", "local", "aws"]


def env_example() -> dict[str, str]:
    values = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def documented_names(text: str) -> set[str]:
    return set(re.findall(r"\b([A-Z][A-Z0-9_]+)\b", text))


def names_the_service_reads() -> set[str]:
    """Every environment variable read through the strict helpers or the apps' setting readers."""
    pattern = re.compile(r"\b(?:env_\w+|_get|_setting|_value)\(\s*\"([A-Z][A-Z0-9_]+)\"")
    names = set()
    for package in ("provisioning", "bookings", "images"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(pattern.findall(path.read_text()))
    names |= set(re.findall(r"os\.environ\.get\(\"([A-Z_]+)\"", (DEPLOY / "gunicorn.conf.py").read_text()))
    names |= set(re.findall(r"os\.environ\.get\('([A-Z_]+)'", (DEPLOY / "gunicorn.conf.py").read_text()))
    return names


def test_it_lists_every_setting_in_the_env_example_and_the_readme():
    names = names_the_service_reads()
    assert {"SECRET_KEY", "DATABASE_URL", "METRICS_TOKEN", "LOG_FORMAT", "WEB_CONCURRENCY"} <= names
    example = (DEPLOY / "env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    assert sorted(names - documented_names(example)) == []
    assert sorted(names - documented_names(readme)) == []


def test_it_passes_the_django_deploy_check_with_the_production_environment(tmp_path, django_db_setup):
    env = {
        **env_example(),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DATABASE_URL": conftest.test_database_url(),
        "DATA_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    env.pop("FLOWER_BASIC_AUTH")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    # Without the production values the same check complains: it really looks.
    env.update(SECURE_SSL_REDIRECT="false", SECURE_HSTS_SECONDS="0")
    loose = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert "security.W004" in loose.stderr + loose.stdout and "security.W008" in loose.stderr + loose.stdout


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SECURE_HSTS_PRELOAD", "yess", "SECURE_HSTS_PRELOAD='yess' is not a boolean"),
        ("ORDERS_PORT_RANGE", "21000:21999", "ORDERS_PORT_RANGE='21000:21999' is not a range of ports"),
    ],
)
def test_it_stops_on_a_misspelt_setting_with_a_message_naming_it(tmp_path, name, value, message):
    env = {"DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", name: value}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("raw", ["21000", "21000-", "high-low", "900-1000", "22000-21000", "21000-70000"])
def test_port_ranges_are_read_strictly(monkeypatch, raw):
    monkeypatch.setenv("PORTS_TEST", raw)
    with pytest.raises(ImproperlyConfigured, match="PORTS_TEST"):
        env_port_range("PORTS_TEST", (21000, 21999))
    monkeypatch.setenv("PORTS_TEST", " 30000 - 30099 ")
    assert env_port_range("PORTS_TEST", (21000, 21999)) == (30000, 30099)


# --- compose ---------------------------------------------------------------------------------------


def test_it_describes_every_service_in_the_compose_file():
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "migrate",
        "web",
        "worker-default",
        "worker-local",
        "worker-aws",
        "beat",
        "flower",
    }
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on a service that is not there: {dependency}"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    # One worker per queue the service routes to, each consuming exactly its queue.
    for queue in PROVIDER_QUEUES:
        command = services[f"worker-{queue}"]["command"]
        assert command[:4] == ["celery", "-A", "provisioning", "worker"]
        assert command[command.index("-Q") + 1] == queue
    beats = [name for name, s in services.items() if "beat" in s.get("command", [])]
    assert beats == ["beat"]
    assert "flower" in services["flower"]["command"]
    assert services["flower"]["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert services["web"]["command"][-2:] == ["-c", "deploy/gunicorn.conf.py"]
    app_env = services["worker-aws"]["environment"]
    assert app_env["DATABASE_URL"].startswith("postgres://") and "@postgres:5432/" in app_env["DATABASE_URL"]
    assert app_env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
    assert (DEPLOY / services["web"]["build"]["dockerfile"].removeprefix("deploy/")).exists()


def test_it_queues_match_the_settings():
    from django.conf import settings

    assert [q.name for q in settings.CELERY_TASK_QUEUES] == PROVIDER_QUEUES


def test_it_offers_flower_in_the_ops_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(req.startswith("flower") for req in project["optional-dependencies"]["ops"])
    assert not any(req.startswith("flower") for req in project["dependencies"])


# --- nginx -----------------------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "provisioning.example.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_it_ships_an_nginx_site_that_nginx_accepts(tmp_path):
    binary = orders_conf.nginx_binary()
    prefix = tmp_path / "nginx"
    main = proxy.ensure_layout(prefix)  # a private instance: its own prefix, pid file and logs
    cert, key = _self_signed(tmp_path)
    site = (DEPLOY / "nginx" / "provisioning.conf").read_text()
    assert "/etc/ssl/provisioning/fullchain.pem" in site and "/etc/ssl/provisioning/privkey.pem" in site
    site = site.replace("/etc/ssl/provisioning/fullchain.pem", str(cert))
    site = site.replace("/etc/ssl/provisioning/privkey.pem", str(key))
    (prefix / "sites" / "provisioning.conf").write_text(site)
    result = subprocess.run(
        [binary, "-t", "-p", str(prefix), "-c", str(main), "-e", str(prefix / "logs" / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_it_keeps_metrics_and_the_health_details_off_the_internet():
    site = (DEPLOY / "nginx" / "provisioning.conf").read_text()
    metrics = re.search(r"location = /metrics \{(.*?)\}", site, re.S)
    assert metrics and "return 404;" in metrics.group(1)
    health = re.search(r"location = /health/ \{(.*?)\}", site, re.S)
    assert health and "deny all;" in health.group(1)
    assert "proxy_pass http://provisioning_web;" in site and "server 127.0.0.1:8000" in site
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site


# --- systemd ---------------------------------------------------------------------------------------


def test_it_ships_systemd_units_that_systemd_accepts(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("This test needs systemd-analyze (Debian's systemd package).")
    units = sorted((DEPLOY / "systemd").iterdir())
    assert {u.name for u in units} == {
        "provisioning.target",
        "provisioning-web.service",
        "provisioning-worker@.service",
        "provisioning-beat.service",
        "provisioning-flower.service",
    }
    # systemd checks that every command exists: point the units at this checkout's virtualenv.
    for unit in units:
        text = unit.read_text().replace("/opt/provisioning/.venv", str(Path(sys.executable).parent.parent))
        (tmp_path / unit.name).write_text(text.replace("/opt/provisioning", str(ROOT)))
    worker = (tmp_path / "provisioning-worker@.service").read_text()
    for queue in PROVIDER_QUEUES:
        (tmp_path / f"provisioning-worker@{queue}.service").write_text(worker)
    checked = [u.name for u in units if "@." not in u.name] + [
        f"provisioning-worker@{q}.service" for q in PROVIDER_QUEUES
    ]
    result = subprocess.run(
        [analyze, "verify", "--man=no", *[f"./{name}" for name in checked]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr
    assert "-Q %i -n %i@%H" in worker
    beat = (DEPLOY / "systemd" / "provisioning-beat.service").read_text()
    assert "EXACTLY ONE" in beat
