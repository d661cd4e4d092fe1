"""The environment of the reconciler end-to-end tests (``test_reconciler.py``): one jfds-device, matter.js lights
as its peers, and the CHIP SDK controller that commissions all of them onto one fabric.

Network rule as in ``harness.py``: everything runs inside the two namespaces of one ``topology()``. The device
namespace holds our jfds-device (``--interface <dev_ifname>``, port 5540, discriminator 3840) and the lights
(node N: port 5539+N, long discriminator 0x5A5 + (N-2)*0x100, so every short discriminator differs); the controller
namespace holds the CHIP controller (node id 112233). The controller commissions jfds-device as node 1 and each
light as node N, then writes each light's ACL: its own admin entry stays, and {Administer, CASE, [1]} lets our
node push to it over CASE.

``reconciler_env()`` builds it and tears it down even when building fails. The helpers poll through the controller:
``jfds`` (a JFDS command's IM status), ``read_jfds``, ``entries`` / ``entry_state`` (a JFDS list's entries and
statuses), ``read_peer`` / ``write_peer`` / ``invoke_peer`` (a light's state), ``wait_until``.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.e2e.harness import ChipController, DeviceProcess, RemoteError, Topology, topology, workdir
from tests.e2e.matterjs import MatterJsDevice, ensure_matterjs

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.ChipDeviceCtrl import DiscoveryFilterType  # noqa: E402
from chip.clusters import Attribute  # noqa: E402
from chip.clusters.Types import Nullable, NullValue  # noqa: E402

T = TypeVar("T")

JF = Clusters.JointFabricDatastore
AC = Clusters.AccessControl
OC = Clusters.OperationalCredentials

PASSCODE = 20202021
JFDS_NODE_ID = 1  # the node id the controller gives our device; the lights grant it Administer
JFDS_DISCRIMINATOR = 3840
JFDS_ENDPOINT = 1
CONTROLLER_NODE_ID = 112233  # ChipController's default
LIGHT_ENDPOINT = 1

SUCCESS, FAILURE = 0x00, 0x01
CONSTRAINT_ERROR, RESOURCE_EXHAUSTED, NOT_FOUND = 0x87, 0x89, 0x8B
TIMEOUT, BUSY = 0x94, 0x9C

PENDING = JF.Enums.DatastoreStateEnum.kPending
COMMITTED = JF.Enums.DatastoreStateEnum.kCommitted
DELETE_PENDING = JF.Enums.DatastoreStateEnum.kDeletePending
COMMIT_FAILED = JF.Enums.DatastoreStateEnum.kCommitFailed


def light_port(node_id: int) -> int:
    return 5539 + node_id


def light_discriminator(node_id: int) -> int:
    """Short discriminators 5, 6, 7, ... (jfds-device's 3840 is short 15): no controller runs PASE with two."""
    assert 2 <= node_id <= 11, node_id
    return 0x5A5 + (node_id - 2) * 0x100


def wait_until(predicate: Callable[[], T], timeout: float, *, interval: float = 0.2, message: str = "") -> T:
    """Poll ``predicate`` until it returns a truthy value (returned); AssertionError after ``timeout`` seconds
    with the last value it returned (or the last exception it raised)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except (RemoteError, TimeoutError, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message or 'condition'} not reached in {timeout} s; last: {last!r}")
        time.sleep(interval)


def status_of(entry: Any) -> Any:
    """The DatastoreStatusEntryStruct of a JFDS list entry (NodeList's is ``commissioningStatusEntry``)."""
    return entry.commissioningStatusEntry if hasattr(entry, "commissioningStatusEntry") else entry.statusEntry


def is_committed(entry: Any) -> bool:
    status = status_of(entry)
    return status.state == COMMITTED and status.failureCode == 0


def _null(value: Any) -> bool:
    return value is None or isinstance(value, Nullable)


def ace_key(entry: Any) -> tuple[Any, ...]:
    """An ACL entry by value, for AccessControl and JFDS structs alike: sorted subjects and targets, a null list
    and an empty list equal (connectedhomeip JointFabricDatastore.cpp, detail::ApplyAclEdit; matter.js stores []
    as null)."""
    subjects = () if _null(entry.subjects) else tuple(sorted(entry.subjects))
    targets = () if _null(entry.targets) else tuple(sorted(
        tuple(-1 if _null(v) else int(v) for v in (t.cluster, t.endpoint, t.deviceType)) for t in entry.targets))
    return int(entry.privilege), int(entry.authMode), subjects, targets


def binding_key(target: Any) -> tuple[int, ...]:
    """A binding target by value (node, group, endpoint, cluster; absent = -1) for Binding and JFDS structs."""
    return tuple(-1 if _null(v) else int(v) for v in (target.node, target.group, target.endpoint, target.cluster))


@dataclass
class Light:
    """A matter.js light commissioned as ``node_id``; ``settings`` are its MatterJsDevice keywords."""

    node_id: int
    workdir: Path
    settings: dict[str, Any]
    device: MatterJsDevice

    @property
    def running(self) -> bool:
        return self.device.proc.poll() is None


class JfdsDevice(DeviceProcess):
    """``DeviceProcess`` with two fixes for restarts in one test: ``start()`` waits for *this* run's ready line
    (the log is appended to, so the inherited check also matches an earlier run's line and returns at once), and a
    failed start kills the process instead of leaving it behind."""

    def start(self) -> None:
        seen = self.output().count(self.ready) if self.log_path.exists() else 0
        try:
            super().start()
            deadline = time.monotonic() + 20
            while self.output().count(self.ready) <= seen:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise RuntimeError(f"device exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"device not ready:\n{self.output()[-4000:]}")
                time.sleep(0.05)
        except BaseException:
            if self.proc is not None:
                with contextlib.suppress(Exception):
                    self.stop(signal.SIGKILL)
            raise

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class ReconcilerEnv:
    """One topology with jfds-device (node 1), matter.js lights (node 2, 3, ...) and the CHIP controller."""

    def __init__(self, net: Topology, tmp: Path, *, device_launcher: tuple[str, ...] = ("-m", "jfds_device")) -> None:
        self.net, self.tmp, self.device_launcher = net, tmp, device_launcher
        self.device: JfdsDevice | None = None
        self.ctrl: ChipController | None = None
        self.lights: dict[int, Light] = {}
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------------------------------ building

    def build(self, lights: dict[int, dict[str, Any]]) -> None:
        started = time.monotonic()
        for node_id, settings in lights.items():
            self._spawn_light(node_id, settings)
        # A failed start kills the device (JfdsDevice.start); close() stops everything else.
        self.device = JfdsDevice(self.net.dev, self.tmp / "jfds", "--interface", self.net.dev_ifname,
                                 "--friendly-name", "jfds-reconciler", launcher=self.device_launcher)
        self.ctrl = ChipController(self.net.ctl, self.tmp / "ctrl")
        self.timings["processes"] = time.monotonic() - started
        t = time.monotonic()
        assert self.ctrl.call("CommissionOnNetwork", JFDS_NODE_ID, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR,
                              JFDS_DISCRIMINATOR, timeout=90) == JFDS_NODE_ID
        # The node id our device got on the fabric is the one the datastore's entries must name as the pusher.
        [fabric] = self.read_peer(JFDS_NODE_ID, (0, OC.Attributes.Fabrics))
        assert fabric.nodeID == JFDS_NODE_ID
        try:
            wait_until(lambda: self.read_jfds(JF.Attributes.AnchorNodeID) == JFDS_NODE_ID, 10,
                       message="jfds-device's datastore anchored to node 1")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnostics()}") from None
        self.timings["commission jfds-device"] = time.monotonic() - t
        for node_id in lights:
            t = time.monotonic()
            self.lights[node_id].device.wait_ready()
            self._commission_light(node_id)
            self.timings[f"commission light {node_id}"] = time.monotonic() - t
        self.timings["setup"] = time.monotonic() - started

    def diagnostics(self) -> str:
        """Who says it was commissioned (a light that should not have been?), and jfds-device's log tail."""
        lights = {n: light.device.events("commissioned") for n, light in self.lights.items()}
        try:
            node1 = self.read_peer(JFDS_NODE_ID, (0, Clusters.BasicInformation.Attributes.ProductName))
        except Exception as exc:
            node1 = repr(exc)
        tail = "\n".join(self.device.output().splitlines()[-40:]) if self.device is not None else ""
        return (f"node 1's ProductName: {node1!r}; lights' commissioned events: {lights}\n"
                f"jfds-device log tail:\n{tail}")

    def _spawn_light(self, node_id: int, settings: dict[str, Any]) -> Light:
        settings = {"id": f"light{node_id}", "port": light_port(node_id),
                    "discriminator": light_discriminator(node_id), **settings}
        path = self.tmp / f"light{node_id}"
        light = Light(node_id, path, settings, MatterJsDevice(self.net.dev, path, wait=False, **settings))
        self.lights[node_id] = light
        return light

    def _commission_light(self, node_id: int) -> None:
        assert self.ctrl is not None
        light = self.lights[node_id]
        assert self.ctrl.call("CommissionOnNetwork", node_id, PASSCODE, DiscoveryFilterType.LONG_DISCRIMINATOR,
                              light.settings["discriminator"], timeout=60) == node_id
        self.grant_jfds_admin(node_id)

    def add_light(self, node_id: int, **settings: Any) -> Light:
        """Start one more light (keywords as MatterJsDevice takes them), commission it as ``node_id``, grant us."""
        light = self._spawn_light(node_id, settings)
        light.device.wait_ready()
        self._commission_light(node_id)
        return light

    def grant_jfds_admin(self, node_id: int) -> None:
        """Keep the light's ACL (the controller's admin entry) and add {Administer, CASE, [our node id]}."""
        acl = self.peer_acl(node_id)
        ours = AC.Structs.AccessControlEntryStruct(
            privilege=AC.Enums.AccessControlEntryPrivilegeEnum.kAdminister,
            authMode=AC.Enums.AccessControlEntryAuthModeEnum.kCase,
            subjects=[JFDS_NODE_ID], targets=NullValue,
        )
        if ace_key(ours) not in [ace_key(e) for e in acl]:
            self.write_peer(node_id, 0, AC.Attributes.Acl([*acl, ours]))

    # ------------------------------------------------------------------------------------------ the datastore

    def jfds(self, command: Any, **kwargs: Any) -> int:
        """A JFDS command on node 1, endpoint 1: its IM status (SUCCESS, or the InteractionModelError's)."""
        assert self.ctrl is not None
        try:
            self.ctrl.call("SendCommand", JFDS_NODE_ID, JFDS_ENDPOINT, command, **kwargs)
        except RemoteError as err:
            assert err.status is not None, err
            return err.status
        return SUCCESS

    def jfds_many(self, commands: list[Any], timeout_ms: int = 3000) -> list[Any]:
        """Commands back to back in the controller; stops at the first failure (None per success, else the error)."""
        assert self.ctrl is not None
        return self.ctrl.call("invoke_many", JFDS_NODE_ID, JFDS_ENDPOINT, commands, timeout_ms,
                              timeout=10 + len(commands) * timeout_ms / 1000)

    def read_jfds(self, attribute: Any) -> Any:
        return self.read_peer(JFDS_NODE_ID, (JFDS_ENDPOINT, attribute))

    def entries(self, attribute: Any, **match: Any) -> list[Any]:
        """The entries of a JFDS list attribute whose fields equal ``match`` (e.g. nodeID=2, ACLEntry=...)."""
        return [e for e in self.read_jfds(attribute) if all(getattr(e, k) == v for k, v in match.items())]

    def entry_state(self, attribute: Any, **match: Any) -> Any:
        """The status entry of the one entry matching ``match``, or None if there is none."""
        found = self.entries(attribute, **match)
        assert len(found) <= 1, f"{len(found)} entries match {match}: {found}"
        return status_of(found[0]) if found else None

    def wait_committed(self, attribute: Any, timeout: float, **match: Any) -> Any:
        """Wait for the one entry matching ``match`` to be Committed with FailureCode 0; returns the entry."""

        def committed() -> Any:
            found = self.entries(attribute, **match)
            assert len(found) <= 1, f"{len(found)} entries match {match}: {found}"
            return found[0] if found and is_committed(found[0]) else Waiting(found)

        return wait_until(committed, timeout, message=f"{attribute.__name__} entry {match} Committed")

    def wait_gone(self, attribute: Any, timeout: float, **match: Any) -> None:
        """Wait until no entry matches ``match`` (a removal the node confirmed leaves no tombstone)."""

        def gone() -> Any:
            found = self.entries(attribute, **match)
            return True if not found else Waiting(found)

        wait_until(gone, timeout, message=f"{attribute.__name__} entry {match} erased")

    def commit_node(self, node_id: int, name: str, timeout: float = 30) -> None:
        """Make ``node_id`` a Committed NodeList entry: AddPendingNode if absent, then RefreshNode and wait."""
        nodes = self.entries(JF.Attributes.NodeList, nodeID=node_id)
        if nodes and is_committed(nodes[0]):
            return
        if not nodes:
            assert self.jfds(JF.Commands.AddPendingNode(nodeID=node_id, friendlyName=name)) == SUCCESS
        assert self.jfds(JF.Commands.RefreshNode(nodeID=node_id)) == SUCCESS
        self.wait_committed(JF.Attributes.NodeList, timeout, nodeID=node_id)

    # ------------------------------------------------------------------------------------------ peers

    def read_peer(self, node_id: int, path: tuple[int, Any], **kwargs: Any) -> Any:
        """One attribute of ``node_id`` (a light, or our device) read through the controller; a failed attribute
        raises AssertionError."""
        assert self.ctrl is not None
        endpoint, attribute = path
        result = self.ctrl.call("ReadAttribute", node_id, [(endpoint, attribute)], **kwargs)
        data = next(iter(result[endpoint].values()))[attribute]
        if isinstance(data, Attribute.ValueDecodeFailure):
            raise AssertionError(f"read of {attribute.__name__} on node {node_id} failed: {data.Reason}")
        return data

    def write_peer(self, node_id: int, endpoint: int, value: Any, attempts: int = 5) -> None:
        """Write one attribute; retried while the light answers BUSY (another ACL write of our fabric, e.g. the
        reconciler's, has not ended yet: matter.js AccessControlServer.ts, "Parallel ACL change")."""
        assert self.ctrl is not None
        for attempt in range(attempts):
            [status] = self.ctrl.call("WriteAttribute", node_id, [(endpoint, value)])
            if int(status.Status) != BUSY or attempt == attempts - 1:
                break
            time.sleep(0.3)
        assert int(status.Status) == SUCCESS, f"write of {type(value).__name__} to node {node_id}: {status}"

    def invoke_peer(self, node_id: int, endpoint: int, command: Any) -> Any:
        """A command's response; RemoteError (``.status``) if the peer answered with an error status."""
        assert self.ctrl is not None
        return self.ctrl.call("SendCommand", node_id, endpoint, command)

    def peer_status(self, node_id: int, endpoint: int, command: Any) -> int:
        try:
            self.invoke_peer(node_id, endpoint, command)
        except RemoteError as err:
            assert err.status is not None, err
            return err.status
        return SUCCESS

    def peer_acl(self, node_id: int) -> list[Any]:
        return list(self.read_peer(node_id, (0, AC.Attributes.Acl)))

    def fill_acl(self, node_id: int, capacity: int = 4) -> None:
        """Fill the light's ACL up to ``capacity`` entries of our fabric (matter.js default: 4) with View entries,
        so it refuses one more."""
        acl = self.peer_acl(node_id)
        fillers = [AC.Structs.AccessControlEntryStruct(
            privilege=AC.Enums.AccessControlEntryPrivilegeEnum.kView,
            authMode=AC.Enums.AccessControlEntryAuthModeEnum.kCase, subjects=[0xF000 + i], targets=NullValue)
            for i in range(capacity - len(acl))]  # fmt: skip
        self.write_peer(node_id, 0, AC.Attributes.Acl([*acl, *fillers]))

    def peer_bindings(self, node_id: int, endpoint: int = LIGHT_ENDPOINT) -> list[Any]:
        return list(self.read_peer(node_id, (endpoint, Clusters.Binding.Attributes.Binding)))

    # ------------------------------------------------------------------------------------------ stop and start

    def stop_light(self, node_id: int) -> int:
        return self.lights[node_id].device.stop()

    def restart_light(self, node_id: int) -> Light:
        """Start the light again on its storage (same fabric, same ACL); the controller drops its old session."""
        light = self.lights[node_id]
        if light.running:
            light.device.stop()
        light.device = MatterJsDevice(self.net.dev, light.workdir, **light.settings)
        self.defunct(node_id)
        return light

    def kill_device(self) -> int:
        assert self.device is not None
        return self.device.stop(signal.SIGKILL)

    def restart_device(self) -> None:
        """Start jfds-device again on its storage; the controller must not reuse the session of the dead one."""
        assert self.device is not None
        self.device.start()
        self.defunct(JFDS_NODE_ID)

    def defunct(self, node_id: int) -> None:
        assert self.ctrl is not None
        self.ctrl.call("MarkSessionDefunct", node_id)

    def close(self) -> None:
        """Stop everything. The lights get SIGTERM all at once and 2 s to close (matter.js can spend 5 s on a
        session whose peer is gone, e.g. the jfds-device run killed with -9), then SIGKILL: their state is
        thrown away with the workdir. Then the controller and jfds-device."""
        started = time.monotonic()
        for light in self.lights.values():
            if light.running:
                with contextlib.suppress(Exception):
                    light.device.proc.send_signal(signal.SIGTERM)
        for light in self.lights.values():
            with contextlib.suppress(Exception):
                light.device.stop(timeout=max(0.1, started + 2 - time.monotonic()))
        if self.ctrl is not None:
            with contextlib.suppress(Exception):
                self.ctrl.close()
        if self.device is not None and self.device.proc is not None:
            with contextlib.suppress(Exception):
                self.device.stop()
        self.timings["teardown"] = time.monotonic() - started


class Waiting(list):  # type: ignore[type-arg]
    """Falsy: the entries a wait_until predicate saw, with their statuses in the timeout message."""

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        if not len(self):
            return "no such entry"
        return "; ".join(f"state={int(status_of(e).state)} failureCode=0x{status_of(e).failureCode:02X}"
                         for e in self)


@contextlib.contextmanager
def reconciler_env(prefix: str, lights: dict[int, dict[str, Any]], *,
                   device_launcher: Callable[[Path], tuple[str, ...]] | None = None) -> Iterator[ReconcilerEnv]:
    """Build the environment with ``lights`` ({node id: MatterJsDevice keywords}); tear it all down afterwards.
    ``device_launcher(workdir)``: how to start jfds-device (``DeviceProcess.launcher``), by default the package."""
    ensure_matterjs()
    with topology() as net, workdir(prefix) as tmp:
        env = ReconcilerEnv(net, tmp) if device_launcher is None else ReconcilerEnv(
            net, tmp, device_launcher=device_launcher(tmp))
        try:
            env.build(lights)
            yield env
        finally:
            env.close()
