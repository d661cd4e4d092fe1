"""Many matter.js peers for one jfds-device: the environment of ``test_reconcile_many_peers.py``.

Built on ``reconciler_env.ReconcilerEnv`` (its datastore and peer helpers are reused as they are); what differs is
how the lights come up. Up to 30 lights start in parallel in the device namespace (node N: port 5539+N), and the
CHIP controller commissions each one by IP and port (EstablishPASESessionIP + Commission) instead of by
discriminator: DNS-SD commissionable discovery tells lights apart only by their 16 short discriminators, by IP
there is no limit. Operational discovery (CASE from the controller and from jfds-device) still uses each light's
own ``_matter._tcp`` record, inside the test's namespaces. Network rule as in ``harness.py``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.harness import ChipController, topology, workdir
from tests.e2e.matterjs import MatterJsDevice, ensure_matterjs
from tests.e2e.reconciler_env import (
    JFDS_DISCRIMINATOR,
    JFDS_NODE_ID,
    PASSCODE,
    JfdsDevice,
    Light,
    ReconcilerEnv,
    light_port,
)

DiscoveryFilterType = pytest.importorskip("chip.ChipDeviceCtrl", reason="home-assistant-chip-core is not installed"
                                          ).DiscoveryFilterType

__all__ = ["ManyPeersEnv", "many_peers_env"]

FIRST_LIGHT = 2
MAX_LIGHTS = 30


class ManyPeersEnv(ReconcilerEnv):
    """jfds-device (node 1), lights 2 .. count+1 commissioned by IP, the CHIP controller (node 112233)."""

    def build_many(self, count: int, settings: dict[str, Any] | None = None) -> None:
        if not 1 <= count <= MAX_LIGHTS:
            raise ValueError(f"1..{MAX_LIGHTS} lights, not {count}")
        started = time.monotonic()
        # jfds-device and the controller first: twenty Node.js processes starting at once would starve their
        # start-up on a 2-core machine.
        self.device = JfdsDevice(self.net.dev, self.tmp / "jfds", "--interface", self.net.dev_ifname,
                                 "--friendly-name", "jfds-many-peers")
        self.ctrl = ChipController(self.net.ctl, self.tmp / "ctrl")
        for node_id in range(FIRST_LIGHT, FIRST_LIGHT + count):
            self._spawn_light_by_ip(node_id, settings or {})
        self.timings["processes"] = time.monotonic() - started
        t = time.monotonic()
        assert self.ctrl.call("CommissionOnNetwork", JFDS_NODE_ID, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR,
                              JFDS_DISCRIMINATOR, timeout=90) == JFDS_NODE_ID
        self.timings["commission jfds-device"] = time.monotonic() - t
        t = time.monotonic()
        for light in self.lights.values():
            light.device.wait_ready(timeout=120)  # twenty Node.js processes starting at once on a small machine
        self.timings["lights ready"] = time.monotonic() - t
        t = time.monotonic()
        for node_id, light in self.lights.items():
            self.ctrl.call("EstablishPASESessionIP", self.net.dev_ip6, PASSCODE, node_id, light.settings["port"],
                           timeout=60)
            assert self.ctrl.call("Commission", node_id, timeout=90) == node_id
            self.grant_jfds_admin(node_id)
        self.timings["commission lights"] = time.monotonic() - t
        self.timings["setup"] = time.monotonic() - started

    def _spawn_light_by_ip(self, node_id: int, settings: dict[str, Any]) -> Light:
        # Distinct long discriminators off jfds-device's 3840 (the controller finds jfds-device by it); the lights
        # are reached by IP and port, so their short discriminators may repeat.
        settings = {"id": f"light{node_id}", "port": light_port(node_id), "discriminator": 0x100 + node_id,
                    "log_level": "warn", **settings}
        path = self.tmp / f"light{node_id}"
        light = Light(node_id, path, settings, MatterJsDevice(self.net.dev, path, wait=False, **settings))
        self.lights[node_id] = light
        return light


@contextlib.contextmanager
def many_peers_env(prefix: str, count: int, settings: dict[str, Any] | None = None) -> Iterator[ManyPeersEnv]:
    """Build the environment with ``count`` lights; tear it all down afterwards, also when building fails."""
    ensure_matterjs()
    with topology() as net, workdir(prefix) as tmp:
        env = ManyPeersEnv(net, tmp)
        try:
            env.build_many(count, settings)
            yield env
        finally:
            env.close()
