"""The state directory, checked before anything is opened in it.

A node that cannot keep its state must not start: the storage path must be a directory we can create, read
and write, with some room left. Each problem becomes one ``StartupError`` line (the CLI exits with status 2),
and nothing in an existing directory is changed on the way: the only write is a probe file, removed again.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from jfds_device.errors import MatterError

__all__ = ["PROBE_BYTES", "StartupError", "prepare_storage_dir"]

# Room the node needs to start: SQLite's WAL and journal writes of a first commissioning stay well below this.
PROBE_BYTES = 64 * 1024
_PROBE_NAME = ".jfds-write-probe"


class StartupError(MatterError):
    """The node cannot start (the port is busy, the storage or the attestation material is unusable); the CLI
    prints it on one line and exits with status 2."""


def _reason(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))


def prepare_storage_dir(path: Path) -> None:
    """Create ``path`` (mode 0700) if it is missing, then prove it is a readable, writable directory with
    ``PROBE_BYTES`` free. Raises ``StartupError`` with the reason."""
    if path.exists() and not path.is_dir():
        raise StartupError(f"storage path {path} is not a directory")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create the storage directory {path}: {_reason(exc)}") from exc
    try:
        os.listdir(path)
    except OSError as exc:
        raise StartupError(f"cannot read the storage directory {path}: {_reason(exc)}") from exc
    probe = path / _PROBE_NAME
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, bytes(PROBE_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        problem = "is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else f"is not writable: {_reason(exc)}"
        raise StartupError(f"the storage directory {path} {problem}") from exc
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    try:
        os.chmod(path, 0o700)  # the state file holds operational private keys
    except OSError as exc:
        raise StartupError(f"cannot restrict the storage directory {path} to its owner: {_reason(exc)}") from exc
