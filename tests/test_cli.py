"""The command-line contract: invalid arguments give one error line and exit status 2."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jfds_device.cli import main
from tests.e2e.harness import topology

INVALID = [
    ["--passcode", "0"],
    ["--passcode", "100000000"],
    ["--passcode", "11111111"],
    ["--passcode", "12345678"],
    ["--passcode", "87654321"],
    ["--discriminator", "4096"],
    ["--discriminator", "-1"],
    ["--port", "70000"],
    ["--friendly-name", "x" * 33],
]


@pytest.mark.parametrize("args", INVALID, ids=lambda a: " ".join(a)[:30])
def test_invalid_arguments_exit_2_with_one_line(
    args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--storage", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jfds-device: error: ")


def test_busy_port_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as busy:
        busy.bind(("::", 0))
        port = busy.getsockname()[1]
        assert main(["run", "--storage", str(tmp_path / "s"), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "port" in err[0]


@pytest.mark.netns
def test_prints_codes_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """Runs in a namespace of its own, like every test that starts the whole node (it advertises on mDNS)."""
    with topology() as net:
        run_and_stop(net.dev, tmp_path)


def run_and_stop(ns: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "jfds_device", "run", "--storage", str(tmp_path / "s")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while time.monotonic() < deadline and not any("QR code payload" in line for line in lines):
            lines.append(proc.stdout.readline())
        assert any("Manual pairing code: 34970112332" in line for line in lines)
        assert any("MT:" in line for line in lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert (tmp_path / "s" / "jfds.sqlite3").exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_log_level_is_case_insensitive_and_unknown_values_exit_2() -> None:
    from jfds_device.cli import build_parser

    assert build_parser().parse_args(["run", "--log-level", "INFO"]).log_level == "info"
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "--log-level", "loud"])
    assert exit_info.value.code == 2
