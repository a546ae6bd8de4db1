"""Local images: a root folder built from the image's cloud-config, as cloud-init would apply it.

    <image>/user-data   the cloud-config the image was built from
    <image>/root/       the machine's files: write_files with their modes, each user's
                        ~/.ssh/authorized_keys, and under /var/lib/provisioning the records of what
                        cannot be done on this host (packages.txt: what would be installed,
                        users.json, services.json) and build-finished, the builder's final mark
    <image>/SHA256SUMS  `<sha256>  <mode>  <path>` for user-data and every file of root/

Nothing of the config is executed: runcmd is read only for the services it enables and disables.
`write_image` needs PyYAML; the rest is standard library, because a local instance
(`local_instance.py`, which does not start Django) verifies and copies an image with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

CHECKSUMS = "SHA256SUMS"
RECORDS = "var/lib/provisioning"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inside(root: Path, path: str) -> Path:
    """`path` of the machine as a file under `root`; never outside it, whatever the path says."""
    target = (root / path.lstrip("/")).resolve()
    if target == root or root not in target.parents:
        raise ValueError(f"{path!r} is not a file path inside the image")
    return target


def _write(root: Path, path: str, data: bytes, mode: int, folder_mode: int = 0o755) -> None:
    target = _inside(root, path)
    for parent in reversed(target.parents):
        if parent == root or root in parent.parents:
            if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
                raise ValueError(f"{path!r}: {parent.relative_to(root)} is a file, not a folder")
            if not parent.exists():
                parent.mkdir(mode=folder_mode)
    if target.is_symlink() or target.is_dir():
        raise ValueError(f"{path!r} is a folder in the image")
    target.write_bytes(data)
    os.chmod(target, mode)


def _apply(root: Path, config: dict) -> None:
    """What cloud-init would do of `config` on first boot, in its order: users, packages, files,
    services, then the final mark."""
    users = [u for u in config.get("users", []) if isinstance(u, dict)]
    for user in users:
        keys = "".join(f"{key}\n" for key in user.get("ssh_authorized_keys", []))
        if keys:
            _write(root, f"/home/{user['name']}/.ssh/authorized_keys", keys.encode(), 0o600, 0o700)
    records = [
        {"name": u["name"], "groups": list(u.get("groups", [])), "shell": u.get("shell", "")} for u in users
    ]
    _write(root, f"/{RECORDS}/users.json", json.dumps(records, indent=2).encode(), 0o644)
    packages = "".join(f"{p}\n" for p in config.get("packages", []))
    _write(root, f"/{RECORDS}/packages.txt", packages.encode(), 0o644)
    for item in config.get("write_files", []):
        _write(root, item["path"], item.get("content", "").encode(), int(item.get("permissions", "0644"), 8))
    services: dict[str, list[str]] = {"enabled": [], "disabled": []}
    for command in config.get("runcmd", []):
        if isinstance(command, list) and command[:1] == ["systemctl"] and command[1] in ("enable", "disable"):
            services[f"{command[1]}d"].append(command[-1])
    _write(root, f"/{RECORDS}/services.json", json.dumps(services, indent=2).encode(), 0o644)
    _write(root, f"/{RECORDS}/build-finished", f"{config.get('final_message', '')}\n".encode(), 0o644)


def write_image(folder: Path, *, user_data: str) -> str:
    """Build the image folder from its cloud-config, atomically (a reader never sees half of it);
    return the sha256 of its SHA256SUMS. Raises ValueError if the config cannot be applied."""
    import yaml

    config = yaml.safe_load(user_data)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "root").mkdir(parents=True)
    try:
        (tmp / "user-data").write_text(user_data, encoding="utf-8")
        _apply((tmp / "root").resolve(), config)
        (tmp / CHECKSUMS).write_text(_sums(tmp))
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():  # not a concurrent build of the same image that won
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return _sha256(folder / CHECKSUMS)


def _entries(folder: Path) -> list[tuple[str, str, str]]:
    found = [("user-data", folder / "user-data")]
    root = folder / "root"
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            found.append(("/" + str(path.relative_to(root)), path))
    return [(_sha256(path), f"{stat.S_IMODE(path.lstat().st_mode):04o}", name) for name, path in found]


def _sums(folder: Path) -> str:
    return "".join(f"{digest}  {mode}  {name}\n" for digest, mode, name in _entries(folder))


def verify_image(folder: Path) -> None:
    """Raise ValueError unless every file of the image is there, unaltered, with its mode."""
    try:
        expected = (folder / CHECKSUMS).read_text()
        actual = _sums(folder)
    except OSError as exc:
        raise ValueError(f"{folder.name} is not a complete image: {exc}") from None
    if expected != actual:
        raise ValueError(f"{folder.name}: the image's files do not match its {CHECKSUMS}")


def describe_root(root: Path) -> dict:
    """What a machine's root folder carries: every file with its checksum and mode, the users with
    their authorized keys, the packages and services its image recorded."""
    files = [
        {"path": name, "sha256": digest, "mode": mode}
        for digest, mode, name in _entries(root.parent)
        if name != "user-data"
    ]
    records = root / RECORDS

    def read(name: str, default):
        try:
            text = (records / name).read_text()
        except OSError:
            return default
        return json.loads(text) if name.endswith(".json") else text

    users = []
    for user in read("users.json", []):
        keys_file = root / "home" / user["name"] / ".ssh" / "authorized_keys"
        keys = keys_file.read_text().splitlines() if keys_file.is_file() else []
        users.append({**user, "authorized_keys": keys})
    return {
        "files": files,
        "users": users,
        "packages": read("packages.txt", "").split(),
        "services": read("services.json", {"enabled": [], "disabled": []}),
        "build_finished": read("build-finished", "").strip(),
    }
