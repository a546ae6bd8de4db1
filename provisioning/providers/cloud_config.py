"""One description of the machine: the build manifest as a cloud-init `#cloud-config`.

Every provider builds from what `cloud_config` makes of a manifest: AWS hands it to the builder
instance as user data, the local provider applies it to the image's root folder. `problems` checks it
against cloud-init's own schema (`cloud_config_schema.json`, Debian's cloud-init 22.4.2, the file
`cloud-init schema` validates with) before anything is started, and names the manifest's field to
correct.

What a manifest says never reaches a shell: services are started through runcmd's list form (cloud-init
quotes every argument), and file contents and keys are YAML scalars written by `yaml.safe_dump`.
"""

from __future__ import annotations

import functools
import json
import posixpath
from pathlib import Path
from typing import Any

import yaml

HEADER = "#cloud-config\n"
# What the builder writes once every module before it has run; the AWS provider looks for it in the
# builder's console output (cloud-init prints final_message there), the local one writes it into root.
FINISHED = "provisioning-build-finished"
RECORDS = "/var/lib/provisioning"
FINISHED_FILE = f"{RECORDS}/build-finished"
SCHEMA = Path(__file__).with_name("cloud_config_schema.json")

Errors = dict[str, list[str]]


def finished_marker(build_ref: str) -> str:
    return f"{FINISHED} {build_ref}".strip()


def cloud_config(manifest: dict, *, build_ref: str = "") -> dict[str, Any]:
    """The cloud-config of a validated manifest (the output of `images.manifest.validate_manifest`)."""
    custom = manifest.get("customizations", {})
    config: dict[str, Any] = {}
    packages = list(manifest.get("packages", []))
    if packages:
        config["packages"] = packages
    users = []
    for user in custom.get("users", []):
        entry: dict[str, Any] = {"name": user["name"], "shell": "/bin/bash", "lock_passwd": True}
        if user.get("groups"):
            entry["groups"] = list(user["groups"])
        if user.get("ssh_key"):
            entry["ssh_authorized_keys"] = [user["ssh_key"]]
        users.append(entry)
    groups = sorted({g for user in custom.get("users", []) for g in user.get("groups", [])})
    if groups:
        config["groups"] = groups  # useradd -G fails on a group that does not exist
    if users:
        config["users"] = ["default", *users]
    files = [
        {
            "path": item["path"],
            "content": item.get("content", ""),
            "permissions": file_mode(item.get("mode", "0644")),
            "owner": "root:root",
            # After users and packages: a package's own config file must not overwrite the manifest's.
            "defer": True,
        }
        for item in custom.get("files", [])
    ]
    if files:
        config["write_files"] = files
    services = custom.get("services", {})
    runcmd: list[list[str]] = [["systemctl", "enable", "--now", s] for s in services.get("enabled", [])]
    runcmd += [["systemctl", "disable", "--now", s] for s in services.get("disabled", [])]
    runcmd.append(["sh", "-c", f"mkdir -p {posixpath.dirname(FINISHED_FILE)} && date -u > {FINISHED_FILE}"])
    config["runcmd"] = runcmd
    config["final_message"] = finished_marker(build_ref)
    return config


def file_mode(mode: str) -> str:
    """A manifest's mode ("644", "0644") as cloud-init's four-digit octal string."""
    return "0" + mode[-3:]


def render(config: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=4096)


def user_data(manifest: dict, *, build_ref: str = "") -> str:
    return render(cloud_config(manifest, build_ref=build_ref))


@functools.cache
def _validator():
    from jsonschema import Draft4Validator

    return Draft4Validator(json.loads(SCHEMA.read_text()))


def _field(path: list, config: dict) -> str:
    """The manifest field a cloud-config path comes from."""
    head = path[0] if path else ""
    index = path[1] if len(path) > 1 and isinstance(path[1], int) else None
    if head == "packages":
        return "packages" if index is None else f"packages[{index}]"
    if head == "users" and index is not None:
        return f"customizations.users[{index - 1}]"  # the first entry is cloud-init's "default"
    if head == "groups":
        return "customizations.users"
    if head == "write_files" and index is not None:
        key = {"permissions": "mode"}.get(path[2], path[2]) if len(path) > 2 else ""
        return f"customizations.files[{index}]" + (f".{key}" if key else "")
    if head == "runcmd":
        return "customizations.services"
    return "customizations"


def problems(manifest: dict) -> Errors:
    """What keeps the manifest from making a valid cloud-config, keyed by manifest field (without the
    leading `manifest.`). Empty: the config validates against cloud-init's schema."""
    errors: Errors = {}

    def add(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    custom = manifest.get("customizations", {})
    _check_paths(custom.get("files", []), custom.get("users", []), add)
    for i, item in enumerate(custom.get("files", [])):
        try:
            item.get("content", "").encode("utf-8")
        except UnicodeEncodeError:
            add(f"customizations.files[{i}].content", "must be text (it holds a lone surrogate).")
    if errors:
        return errors
    config = cloud_config(manifest, build_ref="check")
    for error in sorted(_validator().iter_errors(config), key=lambda e: list(e.absolute_path)):
        add(
            _field(list(error.absolute_path), config), f"makes an invalid cloud-config: {error.message[:200]}"
        )
    text = render(config)
    try:
        if yaml.safe_load(text) != config:
            add("customizations", "does not survive YAML: the cloud-config reads back differently.")
    except yaml.YAMLError as exc:
        add("customizations", f"makes a cloud-config that is not YAML: {exc}")
    return errors


def _check_paths(files: list[dict], users: list[dict], add) -> None:
    """Paths cloud-init could not write as asked: the same file twice, a file where another file
    needs a folder, a path that names a folder, or a user's authorized_keys that its key writes."""
    seen: dict[str, int] = {}
    for i, item in enumerate(files):
        path = item.get("path") or ""
        normal = posixpath.normpath(path)
        if normal != path or "//" in path or path.endswith("/") or normal in ("/", "."):
            add(f"customizations.files[{i}].path", "must be a plain absolute path to a file (no '.', '//').")
            continue
        if normal in seen:
            add(f"customizations.files[{i}].path", f"names the same file as files[{seen[normal]}].")
        seen.setdefault(normal, i)
    for path, i in seen.items():
        for other, j in seen.items():
            if other.startswith(path + "/"):
                add(f"customizations.files[{i}].path", f"is the folder of files[{j}] ({other}).")
    for path, i in seen.items():
        if path.startswith(RECORDS + "/") or (RECORDS + "/").startswith(path + "/"):
            add(f"customizations.files[{i}].path", f"is where the build keeps its own records ({RECORDS}).")
        for user in users:
            ssh = f"/home/{user['name']}/.ssh"
            if user.get("ssh_key") and (path.startswith(ssh + "/") or (ssh + "/").startswith(path + "/")):
                add(f"customizations.files[{i}].path", f"is where {user['name']}'s ssh_key goes.")


def user_data_problems(manifest: dict, *, limit: int) -> Errors:
    """A cloud-config larger than a provider takes as user data, named at the largest file."""
    size = len(user_data(manifest, build_ref="x" * 40).encode())
    if size <= limit:
        return {}
    files = manifest.get("customizations", {}).get("files", [])
    field = "customizations.files"
    if files:
        largest = max(range(len(files)), key=lambda i: len(files[i].get("content", "")))
        field = f"customizations.files[{largest}].content"
    return {field: [f"makes a cloud-config of {size} bytes; at most {limit} fit in user data."]}
