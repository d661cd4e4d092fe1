"""What ``jfds-device run`` prints at start, as a person at a console sees it: the codes only while the node is
commissionable, else one line with its fabric count (the commissionable case is in tests/test_cli.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jfds_device.datastore.sqlite import Database
from jfds_device.fabrics import FabricTable
from jfds_device.node.app import STATE_FILE
from tests.e2e.harness import topology
from tests.test_fabrics import Commissioner, add


def seed_fabrics(storage: Path, count: int) -> None:
    """Commit ``count`` fabrics into the node's state file, as commissioning would have."""
    storage.mkdir(mode=0o700)
    with Database(storage / STATE_FILE) as db:
        table = FabricTable(db)
        for index in range(count):
            add(table, Commissioner(fabric_id=index + 1), node_id=0x10 + index)


def first_lines(ns: str, storage: Path, until: str) -> list[str]:
    """Start the node in ``ns``, collect its output up to a line containing ``until``, then SIGTERM it."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "jfds_device", "run", "--storage", str(storage)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while time.monotonic() < deadline and not any(until in line for line in lines):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        return lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.netns
@pytest.mark.parametrize(("fabrics", "expected"), [(1, "on 1 fabric;"), (2, "on 2 fabrics;")])
def test_commissioned_node_prints_its_fabric_count_and_no_code(tmp_path: Path, fabrics: int, expected: str) -> None:
    storage = tmp_path / "s"
    seed_fabrics(storage, fabrics)
    with topology() as net:
        lines = first_lines(net.dev, storage, "Commissioned on")
    [banner] = [line for line in lines if "Commissioned on" in line]
    assert expected in banner and "the commissioning window is closed" in banner
    assert not any("Manual pairing code" in line or "QR code payload" in line or "MT:" in line for line in lines)
    assert not any("commissioning window opened" in line for line in lines)
