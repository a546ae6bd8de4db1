import json
import urllib.error
import urllib.request

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get_json(url: str) -> tuple[int, dict]:
    status, body = http_get(url)
    return status, json.loads(body)


def json_lines(text: str) -> list[dict]:
    """The JSON log lines of a log file (the worker's banner and tracebacks are not JSON)."""
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines
