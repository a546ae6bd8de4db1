"""Image artifacts: a gzip tar holding the manifest, the packages list, the customizations and a
SHA256SUMS file over them. The local provider keeps one per image; an instance verifies it on start."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

MEMBERS = ("manifest.json", "packages.txt", "customizations.json")
CHECKSUMS = "SHA256SUMS"


def _contents(image_id: str, name: str, manifest: dict) -> dict[str, bytes]:
    packages = "".join(f"{p}\n" for p in manifest.get("packages", []))
    return {
        "manifest.json": json.dumps(
            {"image_id": image_id, "name": name, **manifest}, indent=2, sort_keys=True
        ).encode(),
        "packages.txt": packages.encode(),
        "customizations.json": json.dumps(
            manifest.get("customizations", {}), indent=2, sort_keys=True
        ).encode(),
    }


def write_archive(path: Path, *, image_id: str, name: str, manifest: dict) -> str:
    """Write the artifact atomically (a reader never sees half of it); return its sha256."""
    files = _contents(image_id, name, manifest)
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {member}\n" for member, data in files.items())
    files[CHECKSUMS] = sums.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for member, data in files.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_archive(path: Path) -> dict:
    """The manifest of a verified artifact. Raises ValueError if a member is missing or altered."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            files = {m: tar.extractfile(m).read() for m in (*MEMBERS, CHECKSUMS)}
    except (OSError, EOFError, KeyError, tarfile.TarError, AttributeError) as exc:
        raise ValueError(f"{path.name} is not a complete image artifact: {exc}") from None
    expected = dict(
        reversed(line.split("  ", 1)) for line in files[CHECKSUMS].decode().splitlines() if line.strip()
    )
    for member in MEMBERS:
        if expected.get(member) != hashlib.sha256(files[member]).hexdigest():
            raise ValueError(f"{path.name}: {member} does not match its checksum")
    return json.loads(files["manifest.json"])
