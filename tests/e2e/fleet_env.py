"""A fleet of simulated peers for one jfds-device: the environment of ``test_fleet.py``.

Built on ``reconciler_env.ReconcilerEnv`` (its datastore and peer helpers are reused as they are); the matter.js
lights are replaced by one fleet simulator process (``python -m jfds_device.fleet --control``) in the device
namespace, node i on UDP port ``FLEET_BASE_PORT + i``, advertised by the fleet's one mDNS responder on the device
namespace's veth. The CHIP controller (controller namespace) commissions jfds-device as node 1, then:

* the first ``commissioned`` nodes by **real commissioning**: PASE by address and port (EstablishPASESessionIP) and
  the whole flow (Commission), then the ACL write granting our node Administer (``grant_jfds_admin``);
* the rest by **fast provisioning**: the fleet makes each node's operational key and NOCSRElements, the controller's
  CA issues the NOC for it (``IssueNOCChain``, the call a commissioner makes after CSRRequest), and the fleet installs
  root, NOC, IPK, the controller's admin entry and our node's Administer entry directly.

Node i gets node id ``FIRST_NODE_ID + i``. Network rule as in ``harness.py``.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.e2e.harness import PYTHON, REPO, ChipController, topology, workdir
from tests.e2e.reconciler_env import (
    CONTROLLER_NODE_ID,
    JF,
    JFDS_DISCRIMINATOR,
    JFDS_NODE_ID,
    PASSCODE,
    JfdsDevice,
    ReconcilerEnv,
    wait_until,
)

__all__ = ["FIRST_NODE_ID", "FLEET_BASE_PORT", "FleetEnv", "FleetProcess", "fleet_env"]

FIRST_NODE_ID = 0x100
FLEET_BASE_PORT = 6000


class FleetProcess:
    """``python -m jfds_device.fleet --control`` inside ``ns``; ``call(op, **fields)`` is one request."""

    def __init__(self, ns: str, workdir: Path, nodes: int, *args: str) -> None:
        self.log_path = workdir / "fleet.log"
        self._log = self.log_path.open("ab")
        cmd = ["ip", "netns", "exec", ns, PYTHON, "-m", "jfds_device.fleet", "--nodes", str(nodes),
               "--base-port", str(FLEET_BASE_PORT), "--control", "--log-level", "info", *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, cwd=REPO)
        assert self.proc.stdout is not None
        self.ready = self.proc.stdout.readline().decode().strip()
        if not self.ready.startswith("fleet listening"):
            self.close()
            raise RuntimeError(f"fleet did not start: {self.ready!r}; see {self.log_path}")

    def call(self, op: str, **fields: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"op": op, **fields}) + "\n").encode())
        self.proc.stdin.flush()
        kind, _, payload = self.proc.stdout.readline().decode().strip().partition(" ")
        if kind == "OK":
            return json.loads(payload)
        raise RuntimeError(f"fleet {op}: {kind} {payload}; see {self.log_path}")

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.call("stop")
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class FleetEnv(ReconcilerEnv):
    """jfds-device (node 1), the fleet's nodes (FIRST_NODE_ID + i), the CHIP controller (node 112233)."""

    fleet: FleetProcess | None = None

    def node_id(self, index: int) -> int:
        return FIRST_NODE_ID + index

    def build_fleet(self, nodes: int, commissioned: int, *fleet_args: str, device_args: tuple[str, ...] = ()) -> None:
        """``fleet_args`` go to the fleet process, ``device_args`` to jfds-device (after the harness's own: a
        later ``--log-level`` wins)."""
        started = time.monotonic()
        self.fleet = FleetProcess(self.net.dev, self.tmp, nodes, "--interface", self.net.dev_ifname,
                                  "--commissionable", str(commissioned), *fleet_args)
        self.device = JfdsDevice(self.net.dev, self.tmp / "jfds", "--interface", self.net.dev_ifname,
                                 "--friendly-name", "jfds-fleet", *device_args)
        self.ctrl = ChipController(self.net.ctl, self.tmp / "ctrl")
        self.timings["processes"] = time.monotonic() - started
        t = time.monotonic()
        assert self.ctrl.call("CommissionOnNetwork", JFDS_NODE_ID, PASSCODE, _long_discriminator(),
                              JFDS_DISCRIMINATOR, timeout=90) == JFDS_NODE_ID
        wait_until(lambda: self.read_jfds(JF.Attributes.AnchorNodeID) == JFDS_NODE_ID, 10,
                   message="jfds-device's datastore anchored to node 1")
        self.timings["commission jfds-device"] = time.monotonic() - t
        t = time.monotonic()
        for index in range(commissioned):
            node_id = self.node_id(index)
            self.ctrl.call("EstablishPASESessionIP", self.net.dev_ip6, PASSCODE, node_id, FLEET_BASE_PORT + index,
                           timeout=60)
            assert self.ctrl.call("Commission", node_id, timeout=90) == node_id
            self.grant_jfds_admin(node_id)
        self.timings["commission fleet nodes"] = time.monotonic() - t
        t = time.monotonic()
        indexes = list(range(commissioned, nodes))
        csrs = self.fleet.call("csr", nodes=indexes)
        for index in indexes:
            chain = self.ctrl.call("issue_noc_chain", bytes.fromhex(csrs[str(index)]), self.node_id(index))
            self.fleet.call("install", index=index, administrators=[JFDS_NODE_ID], chain={
                "rcac": chain["rcac"].hex(), "noc": chain["noc"].hex(),
                "icac": chain["icac"].hex() if chain["icac"] else None, "ipk": chain["ipk"].hex(),
                "admin_subject": chain["admin_subject"] or CONTROLLER_NODE_ID, "vendor_id": 0xFFF1})
        self.timings["fast-provision fleet nodes"] = time.monotonic() - t
        self.timings["setup"] = time.monotonic() - started

    def fleet_acl(self, index: int) -> list[dict[str, Any]]:
        assert self.fleet is not None
        return list(self.fleet.call("acl", index=index))

    def close(self) -> None:
        super().close()
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                self.fleet.close()


def _long_discriminator() -> Any:
    from chip.ChipDeviceCtrl import DiscoveryFilterType

    return DiscoveryFilterType.LONG_DISCRIMINATOR


@contextlib.contextmanager
def fleet_env(prefix: str, nodes: int, commissioned: int, *fleet_args: str,
              device_args: tuple[str, ...] = ()) -> Iterator[FleetEnv]:
    """Build the environment; tear it all down afterwards, also when building fails."""
    with topology() as net, workdir(prefix) as tmp:
        env = FleetEnv(net, tmp)
        try:
            env.build_fleet(nodes, commissioned, *fleet_args, device_args=device_args)
            yield env
        finally:
            env.close()
