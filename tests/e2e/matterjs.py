"""matter.js 0.17.9 as a real peer device and a second controller, each a Node.js child process in a namespace.

The scripts live in ``tests/matterjs`` (``device.mjs``, ``controller.mjs``; ``npm ci`` there installs the pinned
packages, ``.ci/run`` does it). Network rule as in ``harness.py``: every matter.js process runs inside a namespace
the test created (``ip netns exec``); on a veth pair from ``harness.topology()`` mDNS works with no MATTER_* variable.

JSON conventions shared with both scripts: 64-bit integers travel as bare JSON integers (no precision loss either
way), byte strings as ``{"$bytes": "<hex>"}`` (``bytes`` here), struct fields use the matter.js camelCase names.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import REPO, RemoteError

MATTERJS_DIR = REPO / "tests" / "matterjs"
MIN_NODE = (20, 19)

# DEV_* variables of device.mjs, by the keyword MatterJsDevice takes for them.
DEVICE_SETTINGS = {
    "id": "DEV_ID",
    "port": "DEV_PORT",
    "passcode": "DEV_PASSCODE",
    "discriminator": "DEV_DISCRIMINATOR",
    "vendor_id": "DEV_VENDOR_ID",
    "product_id": "DEV_PRODUCT_ID",
    "vendor_name": "DEV_VENDOR_NAME",
    "acl_entries": "DEV_ACL_ENTRIES",
    "max_groups": "DEV_MAX_GROUPS",
    "max_group_keys": "DEV_MAX_GROUP_KEYS",
    "software_version": "DEV_SOFTWARE_VERSION",
    "storage": "MATTER_STORAGE_PATH",
    "log_level": "MATTER_LOG_LEVEL",
}


@functools.cache
def ensure_matterjs() -> str:
    """Skip the test (with the reason) unless Node.js >= 20.19, npm and the installed packages are there.

    Returns the path of the ``node`` binary (the check runs once per test session).
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("matter.js tests need node and npm on PATH (Node.js >= 20.19)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
    except ValueError:
        pytest.skip(f"cannot tell the Node.js version from {version!r}")
    if (major, minor) < MIN_NODE:
        pytest.skip(f"matter.js 0.17.9 needs Node.js >= 20.19, found {version}")
    if not (MATTERJS_DIR / "node_modules" / "@matter" / "main" / "package.json").is_file():
        pytest.skip(f"matter.js is not installed: run `npm ci` in {MATTERJS_DIR} (.ci/run does)")
    return node


def _node_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MATTER_", "DEV_", "CTRL_"))}
    env.update(MATTER_LOG_FORMAT="plain", MATTER_LOG_LEVEL="info")
    env.update(extra)
    return env


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent *thread* dies, so no node outlives the test process.

    Start matter.js processes from a long-lived thread (the test's own): a short-lived one would take them along.
    """
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _spawn(ns: str, script: str, env: dict[str, str], cwd: Path, **popen: Any) -> subprocess.Popen[bytes]:
    node = ensure_matterjs()
    # `ip netns exec` execs node, so the Popen pid is node's own and signals reach it directly.
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, node, str(MATTERJS_DIR / script)],
        env=env, cwd=cwd, preexec_fn=_die_with_parent, **popen,
    )


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def to_json(value: Any) -> str:
    def default(obj: Any) -> Any:
        if isinstance(obj, bytes | bytearray | memoryview):
            return {"$bytes": bytes(obj).hex()}
        if isinstance(obj, Path):
            return str(obj)
        raise TypeError(f"cannot send {type(obj).__name__} to matter.js")

    return json.dumps(value, default=default, separators=(",", ":"))


def _object_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and isinstance(obj.get("$bytes"), str):
        return bytes.fromhex(obj["$bytes"])
    return obj


def from_json(text: str) -> Any:
    return json.loads(text, object_hook=_object_hook)


class MatterJsDevice:
    """``device.mjs`` (an On/Off light with Groups and Binding on endpoint 1) running inside ``ns``.

    ``env`` keywords: id, port, passcode, discriminator, vendor_id, product_id, vendor_name, acl_entries, max_groups,
    max_group_keys, storage (default ``workdir/storage``), log_level (default info); UPPER_CASE names go to the
    process environment as they are. Two devices in one namespace need their own workdirs, distinct ports and
    distinct *short* discriminators (the top 4 of the 12 bits), or a controller runs PASE with both.
    ``workdir`` belongs to this device: log ``device.log`` (``output()`` is this run's part) and ``storage``.
    ``wait=False`` returns at once; call ``wait_ready()`` later (to start several devices in parallel).
    """

    def __init__(self, ns: str, workdir: Path, *, wait: bool = True, ready_timeout: float = 30,
                 **env: str | int | Path) -> None:
        ensure_matterjs()
        self.ns, self.workdir = ns, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        variables = {"MATTER_STORAGE_PATH": str(workdir / "storage")}
        for key, value in env.items():
            if key.isupper():
                variables[key] = str(value)
            elif key in DEVICE_SETTINGS:
                variables[DEVICE_SETTINGS[key]] = str(value)
            else:
                raise TypeError(f"unknown matter.js device setting {key!r}; known: {sorted(DEVICE_SETTINGS)}")
        self.env = variables
        self.log_path = workdir / "device.log"
        self.info: dict[str, Any] = {}
        self.started = time.monotonic()
        self._log = self.log_path.open("ab")
        self._offset = self.log_path.stat().st_size
        self.proc = _spawn(ns, "device.mjs", _node_env(**variables), workdir, stdin=subprocess.DEVNULL,
                           stdout=self._log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready(ready_timeout)

    def wait_ready(self, timeout: float = 30) -> dict[str, Any]:
        """Wait for the ``READY {json}`` line and return its JSON (also kept in ``info``)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines():
                if line.startswith("READY "):
                    self.info = from_json(line[len("READY "):])
                    self.ready_seconds = time.monotonic() - self.started
                    return self.info
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"matter.js device exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"matter.js device not ready in {timeout} s:\n{self.tail()}")
            time.sleep(0.05)

    @property
    def manual_code(self) -> str:
        return self.info["manualCode"]

    @property
    def qr(self) -> str:
        return self.info["qr"]

    @property
    def port(self) -> int:
        return self.info["port"]

    @property
    def discriminator(self) -> int:
        return self.info["discriminator"]

    @property
    def passcode(self) -> int:
        return self.info["passcode"]

    def output(self) -> str:
        """This run's stdout + stderr (matter.js log lines included)."""
        with self.log_path.open("rb") as log:
            log.seek(self._offset)
            return log.read().decode(errors="replace")

    def lines(self) -> list[str]:
        return self.output().splitlines()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines()[-n:])

    def events(self, kind: str | None = None) -> list[tuple[str, Any]]:
        """The ``EVENT <kind> <json>`` lines so far as (kind, value), oldest first."""
        found = []
        for line in self.lines():
            if line.startswith("EVENT "):
                name, _, payload = line[len("EVENT "):].partition(" ")
                if kind is None or name == kind:
                    found.append((name, from_json(payload) if payload else None))
        return found

    def wait_event(self, kind: str, predicate: Any = None, timeout: float = 10) -> Any:
        """The value of the first ``kind`` event (matching ``predicate(value)`` if given); TimeoutError if none."""
        deadline = time.monotonic() + timeout
        while True:
            for _, value in self.events(kind):
                if predicate is None or predicate(value):
                    return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching {kind!r} event in {timeout} s:\n{self.tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM (matter.js closes the node and prints ``EXIT 0``); kill after ``timeout``. Returns the exit code."""
        rc = _terminate(self.proc, timeout)
        if not self._log.closed:
            self._log.close()
        return rc

    def __enter__(self) -> MatterJsDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MatterJsError(RemoteError):
    """A failed controller.mjs command; ``status`` is the IM status (e.g. 135 CONSTRAINT_ERROR) when there is one.

    ``local`` is True when the matter.js client refused the value itself (``Validation*Error``, checked against the
    model before sending): nothing reached the peer, and ``status`` is what the peer would have answered.
    """

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(info)
        self.cluster_status: int | None = info.get("clusterStatus")
        self.local: bool = bool(info.get("local"))


class MatterJsController:
    """``controller.mjs`` inside ``ns``: a matter.js CommissioningController with its own fabric and storage.

    ``request(cmd, **args)`` sends one JSON command and returns its result; the helpers below wrap the command set.
    Log: ``workdir/controller.log``; storage ``workdir/storage`` (reused across instances with the same workdir).
    """

    def __init__(self, ns: str, workdir: Path, *, node_id: int | None = None, fabric_id: int = 1,
                 vendor_id: int = 0xFFF1, start_timeout: float = 30, **env: str | int) -> None:
        ensure_matterjs()
        self.ns, self.workdir = ns, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        variables = {
            "MATTER_STORAGE_PATH": str(workdir / "storage"),
            "CTRL_FABRIC_ID": str(fabric_id),
            "CTRL_VENDOR_ID": str(vendor_id),
            **{key: str(value) for key, value in env.items()},
        }
        if node_id is not None:
            variables["CTRL_NODE_ID"] = str(node_id)
        self.log_path = workdir / "controller.log"
        self._log = self.log_path.open("ab")
        self._pending = b""
        self._busy = False
        self._ids = itertools.count(1)
        self.started = time.monotonic()
        self.proc = _spawn(ns, "controller.mjs", _node_env(**variables), workdir, stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=self._log)
        try:
            first = self._message(lambda msg: "ready" in msg, start_timeout)
        except Exception:
            self.close()
            raise
        self.info: dict[str, Any] = first["ready"]
        self.node_id: int = self.info["nodeId"]

    def _message(self, wanted: Any, timeout: float) -> dict[str, Any]:
        """The next JSON object on stdout for which ``wanted(obj)`` holds; other lines go to the log."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            line, sep, rest = self._pending.partition(b"\n")
            if sep:
                self._pending = rest
                try:
                    message = from_json(line.decode())
                except ValueError:
                    message = None
                if isinstance(message, dict) and wanted(message):
                    return message
                self._log.write(b"[stdout] " + line + sep)
                self._log.flush()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"matter.js controller gave no answer in {timeout} s; see {self.log_path}")
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
                if not chunk:
                    raise RuntimeError(f"matter.js controller exited ({self.proc.poll()}); see {self.log_path}")
                self._pending += chunk

    def request(self, cmd: str, timeout: float = 30, **args: Any) -> Any:
        """Send ``{"id", "cmd", **args}`` and return the result; MatterJsError on failure, TimeoutError if none."""
        assert self.proc.stdin is not None
        request_id = next(self._ids)
        self.proc.stdin.write(to_json({"id": request_id, "cmd": cmd, **args}).encode() + b"\n")
        self.proc.stdin.flush()
        self._busy = True  # stays set if no answer comes: the controller is still working on this request
        answer = self._message(lambda msg: msg.get("id") == request_id, timeout)
        self._busy = False
        self.last_ms = answer.get("ms")
        if answer.get("ok"):
            return answer.get("result")
        raise MatterJsError(answer.get("error") or {"type": "Error", "message": repr(answer)})

    def commission(self, manual_code: str | None = None, *, qr: str | None = None, passcode: int | None = None,
                   discriminator: int | None = None, ip: str | None = None, port: int | None = None,
                   node_id: int | None = None, timeout: float = 60) -> int:
        """Commission by manual code, QR or passcode + long discriminator; returns the node id.

        Discovery is commissionable mDNS unless ``ip`` (and ``port``, default 5540) is given, then PASE goes straight
        there; CASE afterwards always finds the node by operational mDNS. ``node_id``: assign this id (else the
        controller picks one). Half of ``timeout`` is the discovery timeout.
        """
        args: dict[str, Any] = {"manualCode": manual_code, "qr": qr, "passcode": passcode,
                                "discriminator": discriminator, "ip": ip, "port": port, "nodeId": node_id}
        args = {key: value for key, value in args.items() if value is not None}
        result = self.request("commission", timeout=timeout, discoveryTimeout=max(1, int(timeout / 2)), **args)
        return int(result["nodeId"])

    def read(self, node_id: int, endpoint: int, cluster: str | int, attribute: str | int, *,
             fabric_filtered: bool = True, timeout: float = 30) -> Any:
        return self.request("read", timeout=timeout, nodeId=node_id, endpoint=endpoint, cluster=cluster,
                            attribute=attribute, fabricFiltered=fabric_filtered)

    def write(self, node_id: int, endpoint: int, cluster: str | int, attribute: str | int, value: Any, *,
              timeout: float = 30) -> None:
        self.request("write", timeout=timeout, nodeId=node_id, endpoint=endpoint, cluster=cluster,
                     attribute=attribute, value=value)

    def invoke(self, node_id: int, endpoint: int, cluster: str | int, command: str | int,
               request: dict[str, Any] | None = None, *, timed_request_timeout_ms: int | None = None,
               timeout: float = 30) -> Any:
        args: dict[str, Any] = {"request": request}
        if timed_request_timeout_ms is not None:
            args["timedRequestTimeoutMs"] = timed_request_timeout_ms
        return self.request("invoke", timeout=timeout, nodeId=node_id, endpoint=endpoint, cluster=cluster,
                            command=command, **args)

    def open_ecm(self, node_id: int, window_s: int = 180, *, timeout: float = 30) -> dict[str, str]:
        """Open an enhanced commissioning window on the node; returns {"manualCode", "qr"} for the next admin."""
        return self.request("openEcm", timeout=timeout, nodeId=node_id, windowSeconds=window_s)

    def nodes(self) -> list[int]:
        return self.request("nodes")

    def close(self, timeout: float = 10) -> int:
        """Ask the controller to close (fabric state stays in storage); SIGTERM, then SIGKILL, if it does not.

        Requests run one at a time, so after a TimeoutError the controller may still be busy: close it.
        Returns the exit code (0 after a clean close).
        """
        if self.proc.poll() is None and not self._busy:
            with contextlib.suppress(Exception):
                self.request("close", timeout=timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        rc = _terminate(self.proc, 6)  # controller.mjs closes on SIGTERM and exits by itself within 5 s
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
        if not self._log.closed:
            self._log.close()
        return rc

    def __enter__(self) -> MatterJsController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
