"""jfds-device with a write gate on its reconciler and a task gate on its task engine: test support for
``test_reconciler_conditional.py`` and ``test_tasks.py``.

``python -m tests.e2e.gated_device GATE_DIR run --storage DIR ...`` runs the node exactly as ``jfds-device run``
does (``cli.main``; its own command line follows GATE_DIR, options before ``run`` such as ``--http`` are moved
after it) and, once it has started, sets ``Reconciler.before_list_write`` (the reconciler's test seam, awaited just
before each conditional write of a peer's list) to a gate driven by files in GATE_DIR. So a test in another
process, outside the device's network namespace, can hold the reconciler between its read of a peer's list and its
write, and have another administrator write that list meanwhile:

* the test writes ``arm``: ``<node id> <endpoint> <cluster> <attribute>`` (decimal);
* the next conditional write of that list on that node parks: the gate writes ``parked`` (the DataVersion the write
  is conditioned on), logs one line, and waits for ``release`` (at most ``RELEASE_TIMEOUT`` seconds, then it goes on
  by itself and says so in the log);
* then it removes ``release`` and ``parked``: one arming holds one write; with no ``arm`` the gate does nothing.

``WriteGate`` is the test's side of the same files. Nothing here is imported by the node itself.

It also holds the task engine at its phase boundaries (``TaskEngine.before_transition``, awaited after a task's
gate resolved on verified state and before the task moves on), for ``test_tasks.py``: while ``tasks-hold`` exists
in GATE_DIR, each transition writes ``task-held`` (``<task id> <phase index>``) and waits until the test removes
it (``TaskGate``; at most ``RELEASE_TIMEOUT`` seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jfds_device import cli
from jfds_device.cli import EXIT_USAGE

RELEASE_TIMEOUT = 60.0
ARM, PARKED, RELEASE = "arm", "parked", "release"
TASKS_HOLD, TASK_HELD = "tasks-hold", "task-held"

log = logging.getLogger("tests.e2e.gated_device")


def _write_atomically(path: Path, text: str) -> None:
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    scratch.write_text(text)
    scratch.replace(path)


class GateHook:
    """The device's side: a ``ListWriteHook`` (io, (endpoint, cluster, attribute), data_version)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def __call__(self, io: Any, path: tuple[int, int, int], data_version: int | None) -> None:
        arm = self.directory / ARM
        try:
            wanted = tuple(int(x) for x in arm.read_text().split())
        except (FileNotFoundError, ValueError):
            return
        if wanted != (io.node_id, *path):
            return
        arm.unlink(missing_ok=True)
        _write_atomically(self.directory / PARKED, "none" if data_version is None else str(data_version))
        log.info("write gate: the write of %d/0x%04X/0x%04X on node 0x%016X (DataVersion %s) waits for release",
                 *path, io.node_id, data_version)
        release = self.directory / RELEASE
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RELEASE_TIMEOUT
        while not release.exists():
            if loop.time() >= deadline:
                log.warning("write gate: no release in %.0f s; the write goes on", RELEASE_TIMEOUT)
                break
            await asyncio.sleep(0.02)
        release.unlink(missing_ok=True)
        (self.directory / PARKED).unlink(missing_ok=True)
        log.info("write gate: released")


class TaskHook:
    """The device's side of the task gate: a ``TaskEngine.before_transition``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def __call__(self, record: Any) -> None:
        if not (self.directory / TASKS_HOLD).exists():
            return
        held = self.directory / TASK_HELD
        _write_atomically(held, f"{record.task_id} {record.phase}")
        log.info("task gate: %s holds before leaving phase %d", record.task_id, record.phase)
        deadline = asyncio.get_running_loop().time() + RELEASE_TIMEOUT
        while held.exists() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        held.unlink(missing_ok=True)


class TaskGate:
    """The test's side: ``hold()`` every task transition, ``wait_held`` for one (task id, phase index),
    ``release()`` it; ``stop_holding()`` lets every later one pass."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def hold(self) -> None:
        _write_atomically(self.directory / TASKS_HOLD, "hold")

    def wait_held(self, timeout: float) -> tuple[str, int]:
        held = self.directory / TASK_HELD
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(FileNotFoundError, ValueError):
                task_id, phase = held.read_text().split()
                return task_id, int(phase)
            if time.monotonic() >= deadline:
                raise AssertionError(f"no task reached a phase boundary in {timeout} s")
            time.sleep(0.05)

    def release(self) -> None:
        (self.directory / TASK_HELD).unlink(missing_ok=True)

    def stop_holding(self) -> None:
        (self.directory / TASKS_HOLD).unlink(missing_ok=True)
        self.release()


class WriteGate:
    """The test's side: ``arm`` a list write, ``wait_parked`` until the reconciler holds it (its DataVersion),
    ``release`` it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def reset(self) -> None:
        for name in (ARM, PARKED, RELEASE):
            (self.directory / name).unlink(missing_ok=True)

    def arm(self, node_id: int, path: tuple[int, int, int]) -> None:
        self.reset()
        _write_atomically(self.directory / ARM, " ".join(str(x) for x in (node_id, *path)))

    def wait_parked(self, timeout: float) -> int | None:
        parked = self.directory / PARKED
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = parked.read_text().strip()
            except FileNotFoundError:
                text = ""
            if text:
                return None if text == "none" else int(text)
            if time.monotonic() >= deadline:
                raise AssertionError(f"the reconciler did not reach the armed write in {timeout} s")
            time.sleep(0.02)

    def release(self) -> None:
        _write_atomically(self.directory / RELEASE, "go")


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if not args_in:
        print("usage: python -m tests.e2e.gated_device GATE_DIR [--http=HOST:PORT] run --storage DIR ...",
              file=sys.stderr)
        return EXIT_USAGE
    gate = GateHook(Path(args_in.pop(0)))
    # Options given before "run" (a launcher's own, e.g. --http) belong to it: DeviceProcess adds "run ..." after.
    leading = [a for a in args_in[:args_in.index("run")] if a.startswith("--")] if "run" in args_in else []
    args_in = [a for a in args_in if a not in leading] + leading

    def install(device: Any) -> None:
        assert device.reconciler is not None and device.tasks is not None
        device.reconciler.before_list_write = gate
        device.tasks.before_transition = TaskHook(gate.directory)
        log.info("write gate installed on the reconciler, task gate on the task engine (%s)", gate.directory)

    return cli.main(args_in, on_started=install)


if __name__ == "__main__":
    sys.exit(main())
