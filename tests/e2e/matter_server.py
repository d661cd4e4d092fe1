"""Home Assistant's Matter server (python-matter-server 7.0.1) as a test peer, inside a test namespace.

The server runs from its own venv (``tests/e2e/matter_server_setup.sh`` builds it; its pinned CHIP wheels
2024.11.4 cannot share the project's venv, which has 2025.7.0) in the controller namespace of a
``harness.topology()``, with a private storage directory and its websocket on localhost there. The test drives it
through the server's own websocket client (``matter_server.client.MatterClient``), run by
``tests/e2e/matter_server_rpc.py`` with the same venv inside the same namespace, one JSON line per call.

No traffic leaves the namespaces:
- The server fetches PAA roots from the DCL at start unless its PAA directory was filled within the last 24 h
  (home-assistant-libs/python-matter-server, ``matter_server/server/helpers/paa_certificates.py``,
  ``fetch_certificates``): the directory given here holds the CSA test PAA (as DER) and a fresh ``.version``
  stamp, so it skips the fetch.
- It also asks the DCL for vendor names on every start (``matter_server/server/vendor_info.py``) and only logs
  when that fails: its mount namespace gets a resolv.conf naming the namespace's own loopback as DNS server, where
  nothing listens, so every name lookup fails at once without a packet leaving the namespace (which has no route
  out).
- The CHIP wheel keeps its config in a hard-coded ``/data`` (connectedhomeip #24153, python-matter-server #145):
  like ``harness.ChipController``, a private mount namespace binds a per-test directory there, for the server
  and for its client (which loads the wheel's native library, though it never starts the stack).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import REPO, paa_trust_store

DEFAULT_VENV = Path.home() / ".cache" / "jfds-matter-server" / "venv"
RPC_SCRIPT = REPO / "tests" / "e2e" / "matter_server_rpc.py"
READY_LINE = "Matter Server successfully initialized."
WS_PORT = 5580  # the server's default; the namespace is private to the test, so nothing else holds it


def matter_server_venv() -> Path:
    return Path(os.environ.get("JFDS_MATTER_SERVER_VENV") or DEFAULT_VENV)


def require_matter_server() -> Path:
    """The venv's directory, or skip (with the reason) where ``matter_server_setup.sh`` has not built it."""
    venv = matter_server_venv()
    for needed in (venv / "bin" / "python", venv / "bin" / "matter-server"):
        if not needed.exists():
            pytest.skip(f"python-matter-server is not installed ({needed} is missing): run "
                        "tests/e2e/matter_server_setup.sh")
    return venv


class MatterServerError(Exception):
    """A call the server (or its client) answered with an error; ``info`` has its type, message, traceback."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(f"{info['type']}: {info['message']}")
        self.info = info


class MatterServer:
    """``matter-server`` in namespace ``ns`` plus its websocket client; ``close()`` stops both by pid."""

    def __init__(self, ns: str, workdir: Path, *, interface: str, start_timeout: float = 180) -> None:
        self.venv = require_matter_server()
        self.ns, self.workdir, self.interface, self.start_timeout = ns, workdir, interface, start_timeout
        self.server_log_path = workdir / "matter-server.log"
        self.client_log_path = workdir / "matter-client.log"
        self.server: subprocess.Popen[bytes] | None = None
        self.client: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        """Start the server (its storage, /data and PAA directory persist in ``workdir``), then the client."""
        self._pending = b""
        self._server_log = self.server_log_path.open("ab")
        self._client_log = self.client_log_path.open("ab")
        try:
            self._start_server(self.interface, self.start_timeout)
            self._start_client(self.start_timeout)
        except BaseException:
            self.stop()
            raise

    def restart(self) -> None:
        """SIGTERM the server (and its client) and start both again on the same storage."""
        code = self.stop()
        if code != 0:
            raise RuntimeError(f"matter-server exited with {code} on SIGTERM:\n{self.tail(self.server_log_path)}")
        self.start()

    def _start_server(self, interface: str, timeout: float) -> None:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        paa = paa_trust_store(self.workdir / "paa")
        (paa / ".version").write_text("1")  # "fetched just now": no DCL download at start
        resolv = self.workdir / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        Path("/data").mkdir(exist_ok=True)  # mount point for the private bind mount below
        server = [
            str(self.venv / "bin" / "matter-server"),
            "--storage-path", str(self.workdir / "storage"),
            "--port", str(WS_PORT),
            "--listen-address", "127.0.0.1",
            "--primary-interface", interface,
            "--paa-root-cert-dir", str(paa),
            "--log-level", "info",
            "--log-level-sdk", "progress",
        ]
        # Without any resolv.conf glibc asks 127.0.0.1 too, so a missing one (or a dangling link) is left alone.
        script = (f"mount --bind {shlex.quote(str(data))} /data && "
                  f"if [ -e /etc/resolv.conf ]; then mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf; fi && "
                  f"exec {shlex.join(server)}")
        env = {**_without_pythonpath(), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
        log_start = self.server_log_path.stat().st_size  # a restart appends to the log: only new lines count
        # ip netns exec, unshare and sh -c 'mount ... && exec' all exec: the pid is the server's own.
        self.server = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=self._server_log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
        )
        deadline = time.monotonic() + timeout
        while READY_LINE.encode() not in self.server_log_path.read_bytes()[log_start:]:
            if self.server.poll() is not None:
                raise RuntimeError(f"matter-server exited with {self.server.returncode}:\n"
                                   f"{self.tail(self.server_log_path)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"matter-server not ready in {timeout} s:\n{self.tail(self.server_log_path)}")
            time.sleep(0.2)

    def _start_client(self, timeout: float) -> None:
        # The client imports the CHIP wheel's cluster objects, which load its native library: it gets a private
        # /data too, although it never starts the stack (so nothing of it can land in the machine's /data).
        data = self.workdir / "client-data"
        data.mkdir(parents=True, exist_ok=True)
        # -P: not the script's directory first on sys.path, where this module would shadow the package.
        client = [str(self.venv / "bin" / "python"), "-P", str(RPC_SCRIPT), f"ws://127.0.0.1:{WS_PORT}/ws"]
        script = f"mount --bind {shlex.quote(str(data))} /data && exec {shlex.join(client)}"
        self.client = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._client_log, cwd=self.workdir,
            env={**_without_pythonpath(), "PYTHONUNBUFFERED": "1"},
        )
        line = self._readline(timeout)
        if line.strip() != b"READY":
            raise RuntimeError(f"matter-server client did not start: {line!r}:\n{self.tail(self.client_log_path)}")

    @staticmethod
    def tail(path: Path, lines: int = 40) -> str:
        """The end of a log, for error messages: the test's work directory is removed when it ends."""
        with contextlib.suppress(OSError):
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return f"({path} unreadable)"

    def server_log(self) -> str:
        return self.server_log_path.read_text(errors="replace")

    def _readline(self, timeout: float) -> bytes:
        """The next protocol line (READY/OK/ERR/BYE), or b"" at EOF; anything else goes to the client log."""
        assert self.client is not None and self.client.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            line, sep, rest = self._pending.partition(b"\n")
            if sep:
                self._pending = rest
                if line.split(b" ", 1)[0] in (b"READY", b"OK", b"ERR", b"BYE"):
                    return line + sep
                self._client_log.write(line + sep)
                self._client_log.flush()
                continue
            ready, _, _ = select.select([self.client.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"matter-server client gave no answer in {timeout} s:\n"
                                   f"{self.tail(self.client_log_path)}\nserver:\n{self.tail(self.server_log_path)}")
            chunk = os.read(self.client.stdout.fileno(), 1 << 16)
            if not chunk:
                return b""
            self._pending += chunk

    def call(self, op: str, *, timeout: float = 60, **kwargs: Any) -> Any:
        assert self.client is not None and self.client.stdin is not None
        self.client.stdin.write(json.dumps({"op": op, **kwargs}).encode() + b"\n")
        self.client.stdin.flush()
        line = self._readline(timeout)
        kind, _, payload = line.strip().partition(b" ")
        if kind == b"OK":
            return json.loads(payload)
        if kind == b"ERR":
            raise MatterServerError(json.loads(payload))
        raise RuntimeError(f"matter-server client died: {line!r}:\n{self.tail(self.client_log_path)}")

    def commission_with_code(self, code: str, *, timeout: float = 240) -> int:
        """Commission over the network only (no BLE here) and return the node id the server gave it."""
        return int(self.call("commission", code=code, network_only=True, timeout=timeout)["node_id"])

    def node(self, node_id: int) -> dict[str, Any] | None:
        """What the client knows: ``available`` and ``attributes`` keyed "endpoint/cluster/attribute"."""
        result: dict[str, Any] | None = self.call("node", node_id=node_id)
        return result

    def attribute(self, node_id: int, path: str) -> Any:
        """The client's current value of ``path`` ("endpoint/cluster/attribute"), attribute updates included."""
        return self.call("attribute", node_id=node_id, path=path)

    def read_attribute(self, node_id: int, path: str) -> dict[str, Any]:
        """Read ``path`` from the node through the server (a fresh read, not the server's cache)."""
        result: dict[str, Any] = self.call("read_attribute", node_id=node_id, path=path)
        return result

    def write_attribute(self, node_id: int, path: str, value: Any) -> Any:
        """Write through the server; its answer is the SDK's per-path write result."""
        return self.call("write_attribute", node_id=node_id, path=path, value=value)

    def remove_node(self, node_id: int, *, timeout: float = 60) -> None:
        self.call("remove_node", node_id=node_id, timeout=timeout)

    def events(self, since: int = 0) -> list[dict[str, Any]]:
        """Every event the client saw (``t`` is its time.monotonic() on arrival), from index ``since``."""
        result: list[dict[str, Any]] = self.call("events", since=since)
        return result

    def wait_attribute(self, node_id: int, path: str, value: Any, timeout: float) -> float | None:
        """The monotonic time at which the server first showed the node available with ``path`` == ``value``,
        or None if it did not within ``timeout`` seconds."""
        result = self.call("wait_attribute", node_id=node_id, path=path, value=value, within=timeout,
                           timeout=timeout + 30)
        return None if result["t"] is None else float(result["t"])

    def stop(self) -> int | None:
        """Stop the client, then SIGTERM the server (SIGKILL if it lingers), both by their own pids; the
        server's exit code (None if it never started)."""
        if self.client is not None and self.client.poll() is None:
            with contextlib.suppress(Exception):
                assert self.client.stdin is not None
                self.client.stdin.write(b'{"op": "shutdown"}\n')
                self.client.stdin.flush()
            _wait_or_kill(self.client, 10)
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            _wait_or_kill(self.server, 20)
        for log in (self._client_log, self._server_log):
            log.close()
        return None if self.server is None else self.server.returncode

    def close(self) -> None:
        self.stop()


def _without_pythonpath() -> dict[str, str]:
    """The environment for the other venv: nothing of the project's on its sys.path."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _wait_or_kill(proc: subprocess.Popen[bytes], timeout: float) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
