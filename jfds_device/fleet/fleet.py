"""The fleet: N ``SimulatedNode`` in one asyncio loop, each on its own UDP port, advertised by one responder.

``Fleet(config)`` builds the nodes (sharing the clock, the attestation material and, through the module-level
cluster definitions, every schema table); ``await fleet.start()`` opens each node's socket (``udp_link`` on
``config.base_port + i``, or ``link_for(i)``: a ``VirtualLink`` address in tests) and the DNS-SD responder when
``config.advertise``; the first ``config.commissionable`` nodes open a commissioning window (a commissioner runs
PASE with them by address and port), the others wait for fast provisioning (``provision.py``). A node's
``_matter._tcp`` record goes out as soon as it has a fabric, pending included (AddNOC), as a node's does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from jfds_device.clock import Clock, LoopClock
from jfds_device.crypto.attestation import AttestationMaterial, load_attestation
from jfds_device.fabrics import FabricInfo
from jfds_device.fleet.advertiser import FleetAdvertiser
from jfds_device.fleet.sim_node import NodeCapacities, SimulatedNode
from jfds_device.node.dnssd import MrpIntervals
from jfds_device.node.links import Link, udp_link

__all__ = ["Fleet", "FleetConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FleetConfig:
    nodes: int
    """How many simulated nodes."""
    interface: str | None = None
    """The interface the sockets bind to and DNS-SD runs on (None: every interface; tests give their veth)."""
    host: str = "::"
    """The address the sockets bind (dual-stack by default)."""
    base_port: int = 0
    """Node i listens on base_port + i (0: a free port each)."""
    commissionable: int = 0
    """The first ``commissionable`` nodes open a commissioning window at start (real commissioning)."""
    passcode: int = 20202021
    discriminator: int = 0x200
    """Node i has discriminator + i (mod 4096); commissioners reach them by address and port anyway."""
    capacities: NodeCapacities = field(default_factory=NodeCapacities)
    advertise: bool = True
    """Publish each joined node's ``_matter._tcp`` record (off for in-process tests on a ``VirtualLink``)."""


class Fleet:
    """See the module docstring."""

    def __init__(self, config: FleetConfig, *, clock: Clock | None = None,
                 attestation: AttestationMaterial | None = None, link_for: Callable[[int], Link] | None = None) -> None:
        self.config = config
        self.clock = clock or LoopClock(asyncio.get_running_loop())
        # One copy of the DAC, PAI and CD for every node: they are the same product.
        self.attestation = attestation or load_attestation()
        self._link_for = link_for
        self.advertiser: FleetAdvertiser | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.nodes: list[SimulatedNode] = [
            SimulatedNode(i, clock=self.clock, attestation=self.attestation, capacities=config.capacities,
                          passcode=config.passcode, discriminator=(config.discriminator + i) % 4096,
                          on_fabric_pending=self._fabric_pending)
            for i in range(config.nodes)
        ]

    def __iter__(self) -> Iterator[SimulatedNode]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def _link(self, index: int) -> Link:
        if self._link_for is not None:
            return self._link_for(index)
        port = self.config.base_port + index if self.config.base_port else 0
        return udp_link(port, host=self.config.host, interface=self.config.interface)

    async def start(self) -> None:
        for node in self.nodes:
            await node.start(self._link(node.index))
            if node.index < self.config.commissionable:
                node.open_commissioning_window()
        if self.config.advertise and self.nodes:
            params = self.nodes[0].session_params  # every node announces the same MRP intervals (SII/SAI/SAT)
            self.advertiser = FleetAdvertiser(self.config.interface, mrp=MrpIntervals(
                params.idle_interval_ms or 500, params.active_interval_ms or 300, params.active_threshold_ms or 4000))
            await self.advertiser.start()
            for node in self.nodes:
                if node.fabric is not None:  # provisioned before the responder ran
                    self._fabric_pending(node, node.fabric)

    async def stop(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for node in self.nodes:
            await node.close()
        if self.advertiser is not None:
            await self.advertiser.stop()

    def _fabric_pending(self, node: SimulatedNode, info: FabricInfo) -> None:
        if self.advertiser is not None and node.stack is not None:
            self._spawn(self.advertiser.add(info.compressed_fabric_id, info.node_id, node.port))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settled(self) -> None:
        """Wait until every advertisement update started so far has been handed to zeroconf."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def by_node_id(self, node_id: int) -> SimulatedNode | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    def joined(self) -> dict[str, int]:
        """How many nodes joined which way (``commissioning``, ``fast-provisioning``, ``none``)."""
        counts: dict[str, int] = {}
        for node in self.nodes:
            key = node.joined_by or "none"
            counts[key] = counts.get(key, 0) + 1
        return counts
