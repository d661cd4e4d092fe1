"""``--log-format json``: every log line is one JSON object with time, level, logger and message."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jfds_device.cli import build_parser
from jfds_device.node.log_format import JsonLineFormatter, make_formatter
from tests.e2e.harness import topology


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("jfds_device.x", logging.WARNING, __file__, 1, message, args, exc_info)


def test_json_line_has_the_four_fields_and_one_line() -> None:
    line = JsonLineFormatter().format(_record("peer %s said\n%r", "n1", "quote\"d", exc=True))
    assert "\n" not in line
    obj = json.loads(line)
    assert obj["level"] == "WARNING" and obj["logger"] == "jfds_device.x"
    assert obj["message"] == "peer n1 said\n'quote\"d'"
    assert obj["time"].endswith("+00:00") and "ValueError: boom" in obj["exc"]


def test_text_is_the_default_and_unknown_formats_exit_2() -> None:
    assert build_parser().parse_args(["run"]).log_format == "text"
    assert not isinstance(make_formatter("text"), JsonLineFormatter)
    assert build_parser().parse_args(["run", "--log-format", "json"]).log_format == "json"
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["run", "--log-format", "xml"])
    assert exit_info.value.code == 2


@pytest.mark.netns
def test_running_node_logs_json_lines_without_the_passcode(tmp_path: Path) -> None:
    """The whole node at debug level: stderr is JSON lines only, and the setup passcode never appears in them."""
    with topology() as net:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", net.dev, sys.executable, "-m", "jfds_device", "run", "--storage",
             str(tmp_path / "s"), "--log-format", "json", "--log-level", "debug", "--passcode", "20202021"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 20
            out: list[str] = []
            while time.monotonic() < deadline and not any("QR code payload" in line for line in out):
                out.append(proc.stdout.readline())
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=15)
            assert proc.returncode == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "the node logged nothing at debug level"
    for line in lines:
        obj = json.loads(line)
        assert set(obj) >= {"time", "level", "logger", "message"}, line
        assert "20202021" not in line
