"""Group commands end to end: the CHIP controller multicasts a command to a group, matter.js lights act on it.

A Matter group message goes to UDP port 5540 at ff35:0040:fd<fabric id>00:<group id> (Core spec 2.5.6.2,
connectedhomeip Transport::PeerAddress::Multicast), encrypted with the current key of the key set the sender's
GroupKeyMap names for the group (Core spec 4.16). A matter.js light joins that address on every IPv6 interface
when its GroupKeyMap gains the group (matter.js ServerGroupNetworking.ts) and accepts the command on the endpoints
of its GroupTable entry if an ACL entry with AuthMode Group has the group id as subject (Core spec 6.6.2).

Since every light must listen on port 5540, each light runs in a namespace of its own: ``lan_topology`` joins the
controller's namespace, jfds-device's namespace and one namespace per light by a Linux bridge (multicast snooping
off, so every group datagram is flooded to every port) in a switch namespace. Network rule as in ``harness.py``:
nothing leaves these namespaces; IPv6 ULA fd77:77:<k>::/64 and IPv4 169.254.<k>.0/24 only.

The controller is given the key set and the GroupKeyMap entry in its own group data (``set_controller_key_set``,
through ``chip_group_keys.py`` in the controller process), the same key set struct the datastore got by AddKeySet
or UpdateKeySet: so a test can rotate the key in the datastore and on the controller and check that the lights
follow.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.e2e.harness import ChipController, Topology, require_netns, run, wait_for_link_local, workdir
from tests.e2e.matterjs import MatterJsDevice, ensure_matterjs
from tests.e2e.reconciler_env import LIGHT_ENDPOINT, Clusters, Light, ReconcilerEnv, wait_until

MATTER_PORT = 5540  # the port every group message goes to (connectedhomeip CHIP_PORT)
LIGHT_IFNAME = "veth-light"
ON_OFF = Clusters.OnOff
_counter = itertools.count(1)


def group_multicast_address(fabric_id: int, group_id: int) -> str:
    """ff35:0040:fd<fabric id, 64 bits>00:<group id> (Core spec 2.5.6.2)."""
    raw = bytes([0xFF, 0x35, 0x00, 0x40, 0xFD]) + fabric_id.to_bytes(8, "big") + b"\x00" + group_id.to_bytes(2, "big")
    return ":".join(raw[i:i + 2].hex() for i in range(0, 16, 2))


@contextlib.contextmanager
def lan_topology(light_ids: list[int]) -> Iterator[tuple[Topology, dict[int, str]]]:
    """The controller's and jfds-device's namespaces (``Topology.ctl`` / ``.dev``, as ``harness.topology()``) and
    one namespace per light, every one with one veth port on a bridge in a switch namespace. Yields the topology
    and {light node id: its namespace}; every namespace (and with it every link) is deleted afterwards."""
    require_netns()
    k = (os.getpid() + 100 + next(_counter)) % 250 + 1
    tag = f"{os.getpid() % 100000}-{k}"
    net = Topology(index=k, ctl=f"jfds-gctl-{tag}", dev=f"jfds-gdev-{tag}", ctl_ip6=f"fd77:77:{k:x}::1",
                   dev_ip6=f"fd77:77:{k:x}::2", ctl_ip4=f"169.254.{k}.1", dev_ip4=f"169.254.{k}.2")
    switch = f"jfds-gsw-{tag}"
    lights = {node_id: f"jfds-gl{node_id}-{tag}" for node_id in light_ids}
    # (namespace, interface name there, bridge port name, IPv6, IPv4)
    ports = [(net.ctl, "veth-ctl", "p-ctl", net.ctl_ip6, net.ctl_ip4),
             (net.dev, net.dev_ifname, "p-dev", net.dev_ip6, net.dev_ip4)]
    ports += [(ns, LIGHT_IFNAME, f"p-l{node_id}", f"fd77:77:{k:x}::{0x10 + node_id:x}", f"169.254.{k}.{10 + node_id}")
              for node_id, ns in lights.items()]
    created: list[str] = []
    try:
        for ns in (switch, *(p[0] for p in ports)):
            run("ip", "netns", "add", ns)
            created.append(ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "-n", switch, "link", "add", "br-lan", "type", "bridge", "mcast_snooping", "0")
        run("ip", "-n", switch, "link", "set", "br-lan", "up")
        for ns, ifname, port, ip6, ip4 in ports:
            run("ip", "link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", port, "netns", switch)
            run("ip", "-n", switch, "link", "set", port, "master", "br-lan")
            run("ip", "-n", switch, "link", "set", port, "up")
            run("ip", "-n", ns, "addr", "add", f"{ip4}/24", "dev", ifname)
            run("ip", "-n", ns, "-6", "addr", "add", f"{ip6}/64", "dev", ifname, "nodad")
            run("ip", "-n", ns, "link", "set", ifname, "up")
            run("ip", "-n", ns, "route", "add", "224.0.0.0/4", "dev", ifname)
        for ns, ifname, *_ in ports:
            wait_for_link_local(ns, ifname)
        net.extra = [switch, *lights.values()]
        yield net, lights
    finally:
        for ns in created:
            run("ip", "netns", "del", ns, check=False)


class GroupCastEnv(ReconcilerEnv):
    """``ReconcilerEnv`` whose lights each run in their own namespace on port 5540."""

    def __init__(self, net: Topology, tmp: Path, light_namespaces: dict[int, str], *,
                 device_launcher: tuple[str, ...] = ("-m", "jfds_device")) -> None:
        super().__init__(net, tmp, device_launcher=device_launcher)
        self.light_namespaces = light_namespaces

    def _spawn_light(self, node_id: int, settings: dict[str, Any]) -> Light:
        settings = {"id": f"light{node_id}", "port": MATTER_PORT, "discriminator": 0x5A5 + (node_id - 2) * 0x100,
                    **settings}
        path = self.tmp / f"light{node_id}"
        device = MatterJsDevice(self.light_namespaces[node_id], path, wait=False, **settings)
        light = Light(node_id, path, settings, device)
        self.lights[node_id] = light
        return light

    def restart_light(self, node_id: int) -> Light:
        light = self.lights[node_id]
        if light.running:
            light.device.stop()
        light.device = MatterJsDevice(self.light_namespaces[node_id], light.workdir, **light.settings)
        self.defunct(node_id)
        return light


@contextlib.contextmanager
def group_cast_env(prefix: str, lights: dict[int, dict[str, Any]], *,
                   device_launcher: Callable[[Path], tuple[str, ...]] | None = None) -> Iterator[GroupCastEnv]:
    """jfds-device (node 1), the lights (``{node id: MatterJsDevice keywords}``, each in its own namespace) and the
    CHIP controller, all commissioned onto one fabric as ``reconciler_env`` does; torn down afterwards.
    ``device_launcher(workdir)``: how to start jfds-device, as in ``reconciler_env``."""
    ensure_matterjs()
    with lan_topology(sorted(lights)) as (net, namespaces), workdir(prefix) as tmp:
        env = GroupCastEnv(net, tmp, namespaces) if device_launcher is None else GroupCastEnv(
            net, tmp, namespaces, device_launcher=device_launcher(tmp))
        try:
            env.build(lights)
            yield env
        finally:
            env.close()


# ---------------------------------------------------------------------------------------------- the controller side


def set_controller_key_set(ctrl: ChipController, key_set: Any, group_ids: list[int]) -> dict[str, Any]:
    """Give the controller ``key_set`` (a JFDS DatastoreGroupKeySetStruct, as in AddKeySet / UpdateKeySet) and map
    ``group_ids`` to it in its own GroupKeyMap; a key set with the same id is replaced. Returns what the controller
    reads back (``chip_group_keys.install``), checked here against what was asked for."""
    epoch_keys = [(bytes(key), int(start)) for key, start in (
        (key_set.epochKey0, key_set.epochStartTime0), (key_set.epochKey1, key_set.epochStartTime1),
        (key_set.epochKey2, key_set.epochStartTime2)) if key is not None and not _is_null(key)]
    back = ctrl.call("set_group_key_set", int(key_set.groupKeySetID), epoch_keys, group_ids,
                     int(key_set.groupKeySecurityPolicy))
    assert back["key_set_id"] == key_set.groupKeySetID, back
    assert back["start_times"] == [start for _, start in epoch_keys], back
    for group_id in group_ids:
        assert (group_id, key_set.groupKeySetID) in back["group_key_map"], back
    return back


def _is_null(value: Any) -> bool:
    return type(value).__name__ == "Nullable"


def send_group_command(ctrl: ChipController, group_id: int, command: Any) -> None:
    """Multicast ``command`` to ``group_id`` (no answer comes back from a group; an error raises RemoteError)."""
    ctrl.call("SendGroupCommand", group_id, command)


def on_off(env: ReconcilerEnv, node_id: int) -> bool:
    """The light's OnOff attribute, read over CASE."""
    return bool(env.read_peer(node_id, (LIGHT_ENDPOINT, ON_OFF.Attributes.OnOff)))


def wait_on_off(env: ReconcilerEnv, expected: dict[int, bool], timeout: float) -> None:
    """Wait until every light's OnOff equals ``expected[node id]``."""

    def reached() -> Any:
        seen = {node_id: on_off(env, node_id) for node_id in expected}
        return True if seen == expected else _Seen(seen)

    wait_until(reached, timeout, interval=0.1, message=f"OnOff {expected}")


def toggle_and_wait(env: ReconcilerEnv, ctrl: ChipController, group_id: int, timeout: float = 5) -> dict[int, bool]:
    """Read every light's OnOff, multicast OnOff Toggle to ``group_id``, wait until every light shows the opposite.
    Returns the new states."""
    before = light_states(env)
    send_group_command(ctrl, group_id, ON_OFF.Commands.Toggle())
    after = {node_id: not state for node_id, state in before.items()}
    wait_on_off(env, after, timeout)
    return after


def light_states(env: ReconcilerEnv) -> dict[int, bool]:
    return {node_id: on_off(env, node_id) for node_id in env.lights}


def toggled_by_group_command(env: ReconcilerEnv, ctrl: ChipController, group_id: int, settle: float = 3) -> list[int]:
    """Multicast OnOff Toggle to ``group_id``, wait ``settle`` seconds and return the lights whose OnOff changed
    (none: every light ignored the command)."""
    before = light_states(env)
    send_group_command(ctrl, group_id, ON_OFF.Commands.Toggle())
    time.sleep(settle)
    after = light_states(env)
    return [node_id for node_id in before if after[node_id] != before[node_id]]


def group_key_refusals(env: ReconcilerEnv, node_id: int) -> int:
    """How many group messages the light has dropped for want of a key (matter.js GroupSession.decode logs
    ``[group-session-no-key]`` when no key of its fabrics has the message's session id, i.e. key hash)."""
    return env.lights[node_id].device.output().count("group-session-no-key")


class _Seen(dict):  # type: ignore[type-arg]
    """Falsy: the OnOff states a wait saw, shown in the timeout message."""

    def __bool__(self) -> bool:
        return False
