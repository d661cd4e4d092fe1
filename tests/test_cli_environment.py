"""A bad environment at start gets one line on stderr and exit status 2, never a traceback, and an existing
storage stays exactly as it was (issue 9).

Each node runs inside a namespace of its own (``topology``): should a check ever let it start, it listens and
advertises there, never on the host's network. Read-only and full storage are tmpfs mounts the test makes and
removes, so these cases need root, like the namespaces.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Topology, run, topology

pytestmark = pytest.mark.netns


@pytest.fixture(scope="module")
def net() -> Iterator[Topology]:
    with topology() as created:
        yield created


def jfds_device(ns: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "jfds_device", "run", "--port", "0",
                           *args], capture_output=True, text=True, timeout=timeout)  # fmt: skip


@pytest.fixture(scope="module")
def existing_storage(net: Topology, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A storage directory a node has run on and stopped cleanly."""
    storage = tmp_path_factory.mktemp("existing") / "state"
    proc = subprocess.Popen(["ip", "netns", "exec", net.dev, sys.executable, "-m", "jfds_device", "run", "--port",
                             "0", "--storage", str(storage)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not (storage / "jfds.sqlite3").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    return storage


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    """Every file below ``directory``: its mode and the SHA-256 of its bytes."""
    return {
        str(path.relative_to(directory)): (path.stat().st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def assert_one_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jfds-device: error: "), result.stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert "Manual pairing code" not in result.stdout  # it never got as far as starting


@contextlib.contextmanager
def tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mounted = run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where), check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        run("umount", "-l", str(where), check=False)


def test_a_storage_path_that_is_a_file(net: Topology, tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.write_bytes(b"not a directory")
    assert_one_line(jfds_device(net.dev, "--storage", str(path)), "not a directory")
    assert path.read_bytes() == b"not a directory"


def test_a_storage_directory_that_cannot_be_created(net: Topology, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    assert_one_line(jfds_device(net.dev, "--storage", str(tmp_path / "file" / "state")), "storage")


def test_missing_attestation_material_leaves_the_storage_unchanged(net: Topology, existing_storage: Path) -> None:
    before = snapshot(existing_storage)
    assert_one_line(jfds_device(net.dev, "--storage", str(existing_storage), "--certs", "/nonexistent"),
                    "attestation", "/nonexistent")  # fmt: skip
    assert snapshot(existing_storage) == before


def test_invalid_attestation_material(net: Topology, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    for name in ("dac_cert.der", "pai_cert.der", "dac_key.der", "cd.der"):
        (certs / name).write_bytes(b"\x30\x03garbage")
    assert_one_line(jfds_device(net.dev, "--storage", str(tmp_path / "s"), "--certs", str(certs)), "attestation")


def test_a_read_only_storage_is_refused_and_unchanged(net: Topology, existing_storage: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "4m") as mount:
        storage = mount / "state"
        shutil.copytree(existing_storage, storage)
        before = snapshot(storage)
        assert run("mount", "-o", "remount,ro", str(mount), check=False).returncode == 0
        assert_one_line(jfds_device(net.dev, "--storage", str(storage)), "not writable", "Read-only")
        assert snapshot(storage) == before


def test_a_full_storage_is_refused_and_unchanged(net: Topology, existing_storage: Path, tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "2m") as mount:
        storage = mount / "state"
        shutil.copytree(existing_storage, storage)
        before = snapshot(storage)
        with contextlib.suppress(OSError), (mount / "filler").open("wb", buffering=0) as filler:
            while True:
                filler.write(bytes(4096))
        os.sync()
        assert_one_line(jfds_device(net.dev, "--storage", str(storage)), "is full")
        assert snapshot(storage) == before
