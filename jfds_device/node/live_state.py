"""What the running node tells ``jfds-device status``: that it runs, and which managed node its reconciler sees
reachable.

``status`` opens the storage read-only (SQLite ``mode=ro``) and has no channel to the running process, so the node
leaves two small things in its storage directory:

* ``node.lock``: while it runs, the node holds an exclusive ``flock`` on this file. The kernel drops the lock when
  the process ends (kill -9 and a crash included), so there is no heartbeat to go stale and nothing to clean up.
  ``node_running(storage)`` tries a shared lock without waiting: refused means a node runs on this storage.
* the ``live-reachability`` key/value namespace of the node's database: per managed node (the key: its node id,
  16 hex digits) ``1`` for reachable or ``0`` for unreachable, written on every reachability change the reconciler
  reports (``Reconciler.add_reachability_listener``: a subscription established or lost, a CASE session set up).
  It is cleared at start and at stop (a value from another run is no news); a node without a row is not known yet.
  Changes are rare (a peer comes or goes), so the writes cost nothing measurable.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from jfds_device.datastore.sqlite import Database
from jfds_device.errors import MatterError

__all__ = ["LOCK_FILE", "REACHABILITY", "LiveState", "node_running", "read_reachability"]

LOCK_FILE = "node.lock"
REACHABILITY = "live-reachability"

log = logging.getLogger(__name__)


class ReachabilitySource(Protocol):
    def add_reachability_listener(self, listener: Callable[[int, bool], None]) -> Callable[[], None]: ...


class LiveState:
    """The node's side: ``start`` takes the lock and records reachability from ``source``; ``stop`` ends both."""

    def __init__(self, storage: Path, db: Database) -> None:
        self._storage, self._db = storage, db
        self._lock_fd: int | None = None
        self._unlisten: Callable[[], None] | None = None

    def start(self, source: ReachabilitySource) -> None:
        fd = os.open(self._storage / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            log.warning("another process holds %s: is a second node running on this storage?",
                        self._storage / LOCK_FILE)
        else:
            self._lock_fd = fd
        self._db.clear(REACHABILITY)
        self._unlisten = source.add_reachability_listener(self._changed)

    def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        with contextlib.suppress(MatterError):
            self._db.clear(REACHABILITY)
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the only descriptor releases the flock
            self._lock_fd = None

    def _changed(self, node_id: int, reachable: bool) -> None:
        if self._db.in_transaction:  # never ride (and be rolled back with) someone else's unit of work
            asyncio.get_running_loop().call_soon(self._changed, node_id, reachable)
            return
        try:
            self._db.put(REACHABILITY, f"{node_id:016X}", b"1" if reachable else b"0")
        except MatterError as exc:  # a full disk must not stop the reconciler; status shows it as not known
            log.warning("cannot record node 0x%016X as %sreachable: %s", node_id, "" if reachable else "un", exc)


def node_running(storage: Path) -> bool:
    """Whether a node runs on ``storage`` now (it holds the lock; this takes a shared one only for a moment)."""
    try:
        fd = os.open(storage / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False  # no lock file: no node has run here since it was introduced
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the shared lock, if it was taken
    return False


def read_reachability(db: Database) -> dict[int, bool]:
    """The running node's view: node id -> reachable. Meaningful only while ``node_running``."""
    return {int(key, 16): value == b"1" for key, value in db.items(REACHABILITY)}
