"""The embedded default's broker: kombu's filesystem transport with its two faults fixed.

kombu's own transport (kombu/transport/filesystem.py, upstream issue #1551, open) creates a message
file and writes it afterwards, while a reader lists the folder and reads files without the writer's
lock: a reader that wins the race reads an empty file, and the JSONDecodeError stops the worker. Here:

- a message is written under a temporary name in `tmp/` and renamed into the queue folder, so a file
  in the queue folder is always whole (rename is atomic within one file system);
- a reader claims a file by renaming it into `claimed/`: of two readers only one rename succeeds, so a
  message is handed to one consumer only (kombu's move into the system's temp folder copies when that
  is another file system, and then two readers may both get it);
- a file that still cannot be decoded (an empty one left by kombu's writer or a crash, a truncated
  one, anything dropped into the folder) is moved to `quarantine/` with a line in the log naming it
  and the reason, and the reader goes on to the next message;
- a claimed file whose reader died before reading it goes back into the queue when a channel opens.

The engine does not rely on the broker keeping anything: a message lost here (a machine that crashed
between two renames, a quarantined message) is re-driven by the sweeper from the operation's row.
Selected by settings (CELERY_BROKER_TRANSPORT) when CELERY_BROKER_URL is `filesystem://` or unset.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import uuid
from pathlib import Path
from queue import Empty

from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger("provisioning.broker")

# A claimed file older than this has no reader any more (a read takes microseconds).
STALE_CLAIM_SECONDS = 60.0
# A temporary file older than this was left by a writer that died before its rename.
STALE_TMP_SECONDS = 3600.0


class UnreadableMessage(ValueError):
    """A message file that is not a kombu message."""


def decode(raw: bytes) -> dict:
    """The message in a file's bytes, or UnreadableMessage saying why it is not one."""
    if not raw:
        raise UnreadableMessage("the file is empty")
    try:
        message = loads(bytes_to_str(raw))
    except Exception as exc:  # noqa: BLE001 - whatever the bytes are, they are not a message
        raise UnreadableMessage(f"not JSON ({exc})") from exc
    if not isinstance(message, dict) or not isinstance(message.get("properties"), dict):
        raise UnreadableMessage("JSON, but not a kombu message (no properties)")
    body = message.get("body")
    if not isinstance(body, str):
        raise UnreadableMessage("JSON, but not a kombu message (no body)")
    # The worker decodes the body later and only logs what it cannot decode: look at it here, so
    # that such a message is quarantined like the others.
    try:
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body, validate=True)
        if message.get("content-type") == "application/json":
            loads(bytes_to_str(body))
    except Exception as exc:  # noqa: BLE001
        raise UnreadableMessage(f"its body cannot be decoded ({exc})") from exc
    return message


class Channel(filesystem.Channel):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for folder in (self.tmp_folder, self.claimed_folder, self.quarantine_folder):
            folder.mkdir(parents=True, exist_ok=True)
        self._recover()

    # --- folders (siblings of the queue folder: renames between them stay on one file system) ------

    @property
    def _root(self) -> Path:
        return Path(self.data_folder_in).parent

    @property
    def tmp_folder(self) -> Path:
        return self._root / "tmp"

    @property
    def claimed_folder(self) -> Path:
        return self._root / "claimed"

    @property
    def quarantine_folder(self) -> Path:
        return Path(self.transport_options.get("quarantine_folder") or self._root / "quarantine")

    def _recover(self) -> None:
        now = time.time()
        for path in self.claimed_folder.iterdir():
            try:
                if now - path.stat().st_mtime > STALE_CLAIM_SECONDS:
                    os.rename(path, Path(self.data_folder_in) / path.name)
                    log.warning("broker: gave %s back to the queue (its reader died)", path.name)
            except FileNotFoundError:
                continue  # another channel took it back first
        for path in self.tmp_folder.iterdir():
            try:
                if now - path.stat().st_mtime > STALE_TMP_SECONDS:
                    path.unlink()
            except FileNotFoundError:
                continue

    # --- put and get -------------------------------------------------------------------------------

    def _put(self, queue: str, payload: dict, **kwargs) -> None:
        # Wall-clock nanoseconds first, so that names sort in sending order across processes and
        # restarts (kombu uses the monotonic clock, which starts again at every boot).
        name = f"{time.time_ns():020d}_{uuid.uuid4().hex}.{queue}.msg"
        tmp = self.tmp_folder / name
        try:
            with open(tmp, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.rename(tmp, Path(self.data_folder_out) / name)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise filesystem.ChannelError(f"Cannot add {name!r} to the broker's queue folder: {exc}") from exc

    def _get(self, queue: str) -> dict:
        wanted = f"{queue}.msg"
        folder = Path(self.data_folder_in)
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = self.claimed_folder / name
            try:
                os.rename(folder / name, claimed)
            except FileNotFoundError:
                continue  # another reader claimed it
            try:
                raw = claimed.read_bytes()
            except OSError as exc:
                self._quarantine(claimed, f"cannot be read ({exc})")
                continue
            try:
                message = decode(raw)
            except UnreadableMessage as exc:
                self._quarantine(claimed, str(exc))
                continue
            if self.store_processed:
                os.replace(claimed, Path(self.processed_folder) / name)
            else:
                claimed.unlink(missing_ok=True)
            return message
        raise Empty()

    def _quarantine(self, path: Path, reason: str) -> None:
        target = self.quarantine_folder / path.name
        try:
            os.replace(path, target)
        except OSError as exc:
            log.error(
                "broker: skipped unreadable message %s (%s); it could not be moved: %s", path, reason, exc
            )
            path.unlink(missing_ok=True)
            return
        log.error(
            "broker: quarantined unreadable message %s: %s (the sweeper re-drives the step it was for)",
            target,
            reason,
        )

    # --- the exchange table ------------------------------------------------------------------------

    def get_table(self, exchange: str) -> list:
        # kombu writes the table after opening the file for writing (which empties it): a reader in
        # between sees an empty file. Read that as "no bindings yet" instead of stopping the worker.
        try:
            return super().get_table(exchange)
        except json.JSONDecodeError:
            log.warning("broker: the table of exchange %r was being written; read as empty", exchange)
            return []


class Transport(filesystem.Transport):
    Channel = Channel
    driver_type = "filesystem"
    driver_name = "provisioning-filesystem"
