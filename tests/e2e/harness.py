"""End-to-end plumbing: private network namespaces, the real CHIP controller, and our device process.

Network rule: every CHIP stack, mDNS responder and device runs inside namespaces created here, joined by a
veth pair with IPv6 ULA (fd77::/16) and IPv4 link-local (169.254/16) addresses; nothing touches eth0.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import pickle
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED_ATTESTATION = REPO.parent / "shared" / "attestation"
PYTHON = sys.executable
_counter = itertools.count(1)


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def require_netns() -> None:
    """Skip (with the reason) where the test cannot create its own namespaces."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 (ip) to create network namespaces")
    probe = f"jfds-probe-{os.getpid()}"
    result = run("ip", "netns", "add", probe, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {result.stderr.strip()}")
    run("ip", "netns", "del", probe, check=False)


@dataclass
class Topology:
    """Two namespaces, controller side and device side, joined by one veth pair."""

    index: int
    ctl: str
    dev: str
    ctl_ip6: str
    dev_ip6: str
    ctl_ip4: str
    dev_ip4: str
    dev_ifname: str = "veth-dev"
    extra: list[str] = field(default_factory=list)

    def exec_prefix(self, ns: str) -> list[str]:
        return ["ip", "netns", "exec", ns]


@contextlib.contextmanager
def topology() -> Iterator[Topology]:
    require_netns()
    k = (os.getpid() + next(_counter)) % 250 + 1
    tag = f"{os.getpid() % 100000}-{k}"
    topo = Topology(
        index=k,
        ctl=f"jfds-ctl-{tag}",
        dev=f"jfds-dev-{tag}",
        ctl_ip6=f"fd77:77:{k:x}::1",
        dev_ip6=f"fd77:77:{k:x}::2",
        ctl_ip4=f"169.254.{k}.1",
        dev_ip4=f"169.254.{k}.2",
    )
    try:
        for ns in (topo.ctl, topo.dev):
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", "veth-ctl", "netns", topo.ctl, "type", "veth", "peer", "name",
            topo.dev_ifname, "netns", topo.dev)
        for ns, ifname, ip6, ip4 in (
            (topo.ctl, "veth-ctl", topo.ctl_ip6, topo.ctl_ip4),
            (topo.dev, topo.dev_ifname, topo.dev_ip6, topo.dev_ip4),
        ):
            run("ip", "-n", ns, "addr", "add", f"{ip4}/24", "dev", ifname)
            run("ip", "-n", ns, "-6", "addr", "add", f"{ip6}/64", "dev", ifname, "nodad")
            run("ip", "-n", ns, "link", "set", ifname, "up")
            run("ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", ifname)
        wait_for_link_local(topo.dev, topo.dev_ifname)
        wait_for_link_local(topo.ctl, "veth-ctl")
        yield topo
    finally:
        for ns in (topo.ctl, topo.dev, *topo.extra):
            run("ip", "netns", "del", ns, check=False)


def wait_for_link_local(ns: str, ifname: str, timeout: float = 5.0) -> None:
    """IPv6 link-local addresses pass DAD before they are usable; the CHIP controller prefers them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = run("ip", "-n", ns, "-6", "addr", "show", "dev", ifname, check=False).stdout
        if "fe80::" in out and "tentative" not in out:
            return
        time.sleep(0.05)


def paa_trust_store(directory: Path) -> Path:
    """The CSA test PAA (NoVID) that signs our PAI, as DER, where the CHIP controller looks for PAAs."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    source = SHARED_ATTESTATION / "Chip-Test-PAA-NoVID-Cert.pem"
    if not source.exists():
        pytest.skip(f"the CSA test PAA is not at {source}")
    directory.mkdir(parents=True, exist_ok=True)
    cert = x509.load_pem_x509_certificate(source.read_bytes())
    (directory / "Chip-Test-PAA-NoVID-Cert.der").write_bytes(cert.public_bytes(Encoding.DER))
    return directory


class RemoteError(Exception):
    """An exception raised inside the controller process; ``status`` is the IM status if there was one."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(f"{info['type']}: {info['message']}")
        self.info = info
        self.status: int | None = info.get("status")


class ChipController:
    """The CHIP SDK Python controller in its own process inside ``ns``, with its own /data."""

    def __init__(self, ns: str, workdir: Path, *, node_id: int = 112233, fabric_id: int = 1,
                 vendor_id: int = 0xFFF1, storage: Path | None = None) -> None:
        pytest.importorskip("chip.ChipDeviceCtrl", reason="home-assistant-chip-core is not installed")
        self.workdir = workdir
        data = workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        self.storage = storage or workdir / "chip_storage.json"
        env = dict(os.environ)
        env.update(
            CTRL_STORAGE=str(self.storage),
            PAA_DIR=str(paa_trust_store(workdir / "paa")),
            CTRL_NODE_ID=str(node_id),
            CTRL_FABRIC_ID=str(fabric_id),
            CTRL_VENDOR_ID=str(vendor_id),
            PYTHONPATH=str(REPO),
        )
        Path("/data").mkdir(exist_ok=True)  # mount point for the private bind mount below
        script = (
            f"mount --bind {data} /data && exec {PYTHON} {REPO / 'tests' / 'e2e' / 'chip_rpc.py'}"
        )
        self.log_path = workdir / "controller.log"
        self._log = self.log_path.open("ab")
        self._pending = b""
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, cwd=workdir,
        )
        line = self._readline(60)
        if line.strip() != b"READY":
            self.close()
            raise RuntimeError(f"controller did not start: {line!r}; see {self.log_path}")

    def _readline(self, timeout: float) -> bytes:
        """The next protocol line (READY/OK/ERR/BYE), or b"" at EOF.

        The native library printf()s a few log lines straight to stdout, bypassing RedirectToPythonLogging
        (e.g. "CHIP:CTL: Setting attestation nonce to random value" during NewController); they go to the log.
        Lines are split from raw os.read() chunks: select() on a buffered pipe misses lines already buffered.
        """
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            line, sep, rest = self._pending.partition(b"\n")
            if sep:
                self._pending = rest
                if line.split(b" ", 1)[0] in (b"READY", b"OK", b"ERR", b"BYE"):
                    return line + sep
                self._log.write(line + sep)
                self._log.flush()
                continue
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"controller gave no answer in {timeout} s; see {self.log_path}")
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                return b""
            self._pending += chunk

    def call(self, method: str, *args: Any, timeout: float = 60, **kwargs: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(base64.b64encode(pickle.dumps((method, args, kwargs))) + b"\n")
        self.proc.stdin.flush()
        line = self._readline(timeout)
        kind, _, payload = line.strip().partition(b" ")
        if kind == b"OK":
            return pickle.loads(base64.b64decode(payload))
        if kind == b"ERR":
            raise RemoteError(pickle.loads(base64.b64decode(payload)))
        raise RuntimeError(f"controller died: {line!r}; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL the controller (a crashed commissioner): it sends nothing, not even CloseSession.
        ``ip netns exec``, ``unshare`` and ``sh -c 'mount ... && exec python'`` all exec, so ``proc`` is the
        controller process itself."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.write(base64.b64encode(pickle.dumps(("shutdown", (), {}))) + b"\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class DeviceProcess:
    """``jfds-device run`` inside ``ns``; ``stop()`` sends SIGTERM and returns the exit code. ``launcher``: what
    runs it (``python <launcher> run ...``), the package itself unless a test-support module wraps it."""

    def __init__(self, ns: str, storage: Path, *args: str, ready: str = "listening",
                 launcher: tuple[str, ...] = ("-m", "jfds_device")) -> None:
        self.ns, self.storage, self.args, self.launcher = ns, storage, args, launcher
        self.log_path = storage.parent / f"{storage.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready = ready
        self.start()

    def start(self) -> None:
        self.log = self.log_path.open("ab")
        cmd = ["ip", "netns", "exec", self.ns, PYTHON, *self.launcher, "run", "--storage", str(self.storage),
               "--log-level", "debug", *self.args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.ready in self.output():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"device exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.05)
        raise TimeoutError(f"device not ready:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
