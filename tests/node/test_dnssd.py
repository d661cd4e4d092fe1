"""DNS-SD (Core spec §4.3): record contents offline, then against the real CHIP controller in private namespaces.

Network rule: nothing here opens an mDNS socket in the test's own namespace. Every zeroconf instance runs in a
child process started with ``ip netns exec`` inside namespaces made by ``tests/e2e/harness.topology()``; the
same file is that child's program (``python test_dnssd.py advertise|resolve IFNAME``), driven by JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zeroconf
from zeroconf import ServiceRegistry

from jfds_device.errors import LocalProtocolError
from jfds_device.node import dnssd
from jfds_device.node.dnssd import (
    CommissionableInfo,
    DiscoveredCommissionable,
    MrpIntervals,
    address_score,
    commissionable_service_infos,
    operational_instance_name,
    operational_service_infos,
    order_addresses,
    parse_if_inet6,
)

REPO = Path(__file__).resolve().parents[2]
CFID = bytes.fromhex("5D5E4932E92C812A")  # a compressed fabric id as printed by the CHIP controller
NODE_ID = 0x1234

# ---------------------------------------------------------------------------------------------------------------
# Unit tests: no sockets.


def test_commissionable_txt_follows_core_spec_4_3_1() -> None:
    info = CommissionableInfo(discriminator=3840, vendor_id=0xFFF1, product_id=0x8000, device_name="JFDS")
    assert info.txt(MrpIntervals()) == {
        "D": "3840", "CM": "1", "VP": "65521+32768", "DT": "304", "DN": "JFDS",
        "SII": "500", "SAI": "300", "SAT": "4000", "T": "0",
    }
    full = CommissionableInfo(3840, 0xFFF1, 0x8000, commissioning_mode=2, device_type=None, pairing_hint=0x21,
                              pairing_instruction="press")
    txt = full.txt(MrpIntervals(idle_ms=800, active_ms=200, active_threshold_ms=1000))
    assert txt == {"D": "3840", "CM": "2", "VP": "65521+32768", "SII": "800", "SAI": "200", "SAT": "1000",
                   "T": "0", "PH": "33", "PI": "press"}


def test_commissionable_subtypes() -> None:
    assert CommissionableInfo(3840, 0xFFF1, 0x8000).subtypes() == ["_L3840", "_S15", "_V65521", "_T304", "_CM"]
    # CM=0 (extended discovery) must not claim _CM; the short discriminator is the top 4 of 12 bits.
    closed = CommissionableInfo(0x123, 0xFFF1, 0x8000, commissioning_mode=0, device_type=None)
    assert closed.subtypes() == ["_L291", "_S1", "_V65521"]


def test_commissionable_service_infos_share_one_instance() -> None:
    base, subs = commissionable_service_infos(
        "0123456789ABCDEF", CommissionableInfo(3840, 0xFFF1, 0x8000), port=5540, host="H.local.",
        addresses=[ipaddress.ip_address("fd00::2").packed])
    assert base.type == "_matterc._udp.local." and base.name == "0123456789ABCDEF._matterc._udp.local."
    assert [s.type for s in subs] == [f"{s}._sub._matterc._udp.local." for s in ("_L3840", "_S15", "_V65521",
                                                                                 "_T304", "_CM")]
    assert {s.name for s in subs} == {base.name} and {s.text for s in subs} == {base.text}
    assert base.port == 5540 and base.server == "H.local." and base.parsed_addresses() == ["fd00::2"]


async def test_advertiser_instance_name_is_random_hex_and_stable() -> None:
    a, b = dnssd.Advertiser(), dnssd.Advertiser()
    name = a.commissionable_instance
    assert len(a.commissionable_instance) == 16 and a.commissionable_instance == a.commissionable_instance.upper()
    int(a.commissionable_instance, 16)
    assert a.commissionable_instance != b.commissionable_instance
    # Before start() the state is only remembered: no sockets, no packets.
    await a.set_commissionable(CommissionableInfo(3840, 0xFFF1, 0x8000))
    await a.add_operational(CFID, NODE_ID)
    assert a.zeroconf is None and a.commissionable_instance == name
    await a.stop()


def test_discovered_commissionable_decodes_txt() -> None:
    found = DiscoveredCommissionable.from_txt("ABC", "H.local.", 5540, ["fd00::2"],
                                              {"D": "3840", "VP": "65521", "CM": "x", "DT": "304"})
    assert (found.discriminator, found.vendor_id, found.product_id) == (3840, 65521, None)
    assert (found.commissioning_mode, found.device_type, found.addresses) == (None, 304, ("fd00::2",))


def test_operational_names() -> None:
    assert operational_instance_name(CFID, NODE_ID) == "5D5E4932E92C812A-0000000000001234"
    assert operational_instance_name(0x5D5E4932E92C812A, NODE_ID) == "5D5E4932E92C812A-0000000000001234"
    base, subs = operational_service_infos(CFID, NODE_ID, port=5540, host="H.local.", addresses=[])
    assert base.name == "5D5E4932E92C812A-0000000000001234._matter._tcp.local."
    assert [s.type for s in subs] == ["_I5D5E4932E92C812A._sub._matter._tcp.local."]
    assert base.properties == {b"SII": b"500", b"SAI": b"300", b"SAT": b"4000", b"T": b"0"}
    with pytest.raises(LocalProtocolError):
        operational_instance_name(b"\x01" * 7, 1)
    with pytest.raises(LocalProtocolError):
        operational_instance_name(CFID, 1 << 64)


@pytest.mark.parametrize("kwargs", [
    {"discriminator": 0x1000}, {"vendor_id": 0x10000}, {"commissioning_mode": 4}, {"device_name": "x" * 33},
    {"pairing_instruction": "x" * 129},
])
def test_commissionable_info_rejects_out_of_range(kwargs: dict[str, Any]) -> None:
    args = {"discriminator": 3840, "vendor_id": 0xFFF1, "product_id": 0x8000, **kwargs}
    with pytest.raises(LocalProtocolError):
        CommissionableInfo(**args)


def test_address_order_matches_chip_sorter() -> None:
    addresses = ["169.254.7.2", "2001:db8::5", "fd77:77:7::2", "fe80::1%3", "fd00:1::9", "::ffff:10.0.0.1"]
    local = [ipaddress.IPv6Network("fd77:77:7::/64")]
    assert order_addresses(addresses, local) == [
        "fe80::1%3", "fd77:77:7::2", "2001:db8::5", "fd00:1::9", "169.254.7.2", "::ffff:10.0.0.1"]
    assert [address_score(a) for a in ("fe80::1", "fd00::1", "169.254.1.1")] == [7, 3, 2]


def test_parse_if_inet6_skips_unusable_addresses() -> None:
    text = (
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fd000000000000000000000000000002 04 40 00 82     eth0\n"
        "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n"
        "fe800000000000000000000000000009 05 40 20 40    wlan0\n"  # tentative (DAD running)
        "fd000000000000000000000000000009 05 40 00 20    wlan0\n"  # deprecated
    )
    assert parse_if_inet6(text) == {
        "lo": [ipaddress.IPv6Interface("::1/128")],
        "eth0": [ipaddress.IPv6Interface("fd00::2/64"), ipaddress.IPv6Interface("fe80::fc:ff:fe00:1/64")],
    }


def test_local_interfaces_excludes_loopback_unless_named() -> None:
    assert all(i.name != "lo" for i in dnssd.local_interfaces())
    (lo,) = dnssd.local_interfaces("lo")
    assert lo.ipv4 == ipaddress.IPv4Address("127.0.0.1")
    with pytest.raises(OSError):
        dnssd.local_interfaces("no-such-if0")


def test_registry_workaround_pins_zeroconf_internals() -> None:
    """_registry_set_subtypes relies on ServiceRegistry.types; fail here, not in the field, if it changes."""
    assert zeroconf.__version__ == "0.154.0"
    registry = ServiceRegistry()
    base, subs = commissionable_service_infos("0123456789ABCDEF", CommissionableInfo(3840, 0xFFF1, 0x8000),
                                              port=5540, host="H.local.", addresses=[])
    registry.async_add(base)
    dnssd._registry_set_subtypes(registry, subs, present=True)
    assert registry.async_get_infos_type("_l3840._sub._matterc._udp.local.") == [subs[0]]
    assert registry.async_get_info_name(base.key) is base  # SRV/TXT still come from the base record
    registry.async_update(base)  # zeroconf's own update leaves the subtype index alone
    assert registry.async_get_infos_type("_cm._sub._matterc._udp.local.") == [subs[-1]]
    dnssd._registry_set_subtypes(registry, subs, present=False)
    registry.async_remove(base)
    assert registry.types == {} and registry.async_get_types() == []


# ---------------------------------------------------------------------------------------------------------------
# End-to-end: two namespaces, a veth pair, our Advertiser on the device side, CHIP or our Resolver on the other.


class NsChild:
    """This file run as ``advertise``/``resolve`` inside a namespace; one JSON request, one JSON answer."""

    def __init__(self, ns: str, role: str, interface: str | None, log: Path) -> None:
        self._log = log.open("ab")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(Path(__file__).resolve()), role, interface or "-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, cwd=REPO)
        self.log = log
        try:
            if self._read(20) != {"ready": True}:
                raise RuntimeError(f"{role} did not start; see {log}")
        except BaseException:
            self.close()
            raise

    def _read(self, timeout: float) -> Any:
        assert self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise TimeoutError(f"no answer in {timeout} s; see {self.log}")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child exited; see {self.log}:\n{self.log.read_text()[-3000:]}")
        return json.loads(line)

    def __call__(self, cmd: str, wait: float = 15, **kwargs: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}).encode() + b"\n")
        self.proc.stdin.flush()
        answer = self._read(wait)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self("stop", wait=5)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    from tests.e2e.harness import workdir

    with workdir("jfds-dnssd-") as path:
        yield path


@pytest.fixture(scope="module")
def net() -> Iterator[Any]:
    from tests.e2e.harness import topology

    with topology() as topo:  # skips without root; deletes both namespaces on the way out
        yield topo


@pytest.fixture(scope="module")
def device(net: Any, scratch: Path) -> Iterator[NsChild]:
    child = NsChild(net.dev, "advertise", net.dev_ifname, scratch / "advertiser.log")
    try:
        child("commissionable", discriminator=3840, vendor_id=0xFFF1, product_id=0x8000, device_name="jfds-test")
        yield child
    finally:
        child.close()


@pytest.fixture(scope="module")
def controller(net: Any, scratch: Path) -> Iterator[Any]:
    from tests.e2e.harness import ChipController

    ctl = ChipController(net.ctl, scratch / "chip")
    try:
        yield ctl
    finally:
        ctl.close()


@pytest.fixture
def resolver(net: Any, scratch: Path) -> Iterator[NsChild]:
    child = NsChild(net.ctl, "resolve", None, scratch / "resolver.log")  # None: all non-loopback interfaces
    try:
        yield child
    finally:
        child.close()


_last_chip_discovery = 0.0


def chip_discover(controller: Any, filter_name: str, value: int, timeout: int = 5) -> list[dict[str, Any]]:
    """DiscoverCommissionableNodes, fields decoded: chip_rpc turns each CommissionableNode (which holds an
    unpicklable controller reference) into a dict of its fields."""
    from chip.ChipDeviceCtrl import DiscoveryFilterType

    found = controller.call("DiscoverCommissionableNodes", filterType=getattr(DiscoveryFilterType, filter_name),
                            filter=value, stopOnFirst=True, timeoutSecond=timeout)
    global _last_chip_discovery
    _last_chip_discovery = time.monotonic()
    nodes = []
    for node in found or []:
        nodes.append(node if isinstance(node, dict) else {k: getattr(node, k) for k in node.__dataclass_fields__})
    return nodes


@pytest.mark.netns
@pytest.mark.interop
def test_chip_wrong_discriminator_finds_nothing(device: NsChild, controller: Any) -> None:
    # CHIP's OnNodeDiscovered keeps every _matterc answer that arrives while a discovery runs, without checking
    # it against the filter, so late answers to an earlier (matching) discovery would show up here. First in
    # the file for that reason, and it waits out any recent positive discovery.
    time.sleep(max(0.0, _last_chip_discovery + 3.0 - time.monotonic()))
    assert chip_discover(controller, "LONG_DISCRIMINATOR", 3841, timeout=2) == []


@pytest.mark.netns
@pytest.mark.interop
def test_chip_finds_node_by_long_discriminator(net: Any, device: NsChild, controller: Any) -> None:
    (node,) = chip_discover(controller, "LONG_DISCRIMINATOR", 3840)
    assert (node["longDiscriminator"], node["vendorId"], node["productId"]) == (3840, 0xFFF1, 0x8000)
    assert (node["commissioningMode"], node["deviceType"], node["deviceName"]) == (1, 0x0130, "jfds-test")
    assert (node["port"], node["mrpRetryIntervalIdle"], node["mrpRetryIntervalActive"]) == (5540, 500, 300)
    assert len(node["instanceName"]) == 16
    addresses = {a.split("%")[0] for a in node["addresses"]}
    assert net.dev_ip6 in addresses and any(a.startswith("fe80:") for a in addresses), node["addresses"]


@pytest.mark.netns
@pytest.mark.interop
@pytest.mark.parametrize(("filter_name", "value"), [
    ("SHORT_DISCRIMINATOR", 15), ("VENDOR_ID", 0xFFF1), ("DEVICE_TYPE", 0x0130), ("COMMISSIONING_MODE", 1)])
def test_chip_finds_node_by_subtype(device: NsChild, controller: Any, filter_name: str, value: int) -> None:
    (node,) = chip_discover(controller, filter_name, value)
    assert node["longDiscriminator"] == 3840


@pytest.mark.netns
@pytest.mark.interop
def test_chip_sees_updated_txt(device: NsChild, controller: Any) -> None:
    try:
        device("commissionable", discriminator=3840, vendor_id=0xFFF1, product_id=0x8000, commissioning_mode=2,
               device_name="jfds-test")
        (node,) = chip_discover(controller, "LONG_DISCRIMINATOR", 3840)
        assert node["commissioningMode"] == 2
    finally:
        device("commissionable", discriminator=3840, vendor_id=0xFFF1, product_id=0x8000, device_name="jfds-test")


@pytest.mark.netns
def test_resolver_browses_commissionable(device: NsChild, resolver: NsChild) -> None:
    for subtype in (None, "_L3840"):
        (found,) = resolver("browse_commissionable", timeout=0.5, subtype=subtype)
        assert (found["discriminator"], found["vendor_id"], found["product_id"]) == (3840, 0xFFF1, 0x8000)
        assert found["txt"]["DN"] == "jfds-test" and found["port"] == 5540
    assert resolver("browse_commissionable", timeout=0.5, subtype="_L3841") == []


@pytest.mark.netns
def test_operational_resolve_and_goodbye(net: Any, device: NsChild, resolver: NsChild) -> None:
    fabric = CFID.hex().upper()
    subtype = f"_I{fabric}._sub._matter._tcp.local."
    resolver("watch", type=subtype)
    assert resolver("resolve", cfid=fabric, node=NODE_ID, timeout=0.5) == []
    device("add_operational", cfid=fabric, node=NODE_ID)
    endpoints = resolver("resolve", cfid=fabric, node=NODE_ID, timeout=3.0)
    # CHIP's preference: link-local (with its interface), then the on-link ULA, then IPv4.
    assert [port for _, port in endpoints] == [5540] * 3, endpoints
    link_local, ula, ipv4 = (address for address, _ in endpoints)
    assert link_local.startswith("fe80:") and link_local.endswith(f"%{resolver('ifindex', name='veth-ctl')}")
    assert (ula, ipv4) == (net.dev_ip6, net.dev_ip4)
    name = f"{operational_instance_name(CFID, NODE_ID)}._matter._tcp.local."
    assert wait_for(lambda: ["Added", subtype, name] in resolver("events")), resolver("events")

    device("remove_operational", cfid=fabric, node=NODE_ID)  # goodbyes for the record and its _I subtype
    assert wait_for(lambda: ["Removed", subtype, name] in resolver("events")), resolver("events")
    assert resolver("resolve", cfid=fabric, node=NODE_ID, timeout=0.5) == []


@pytest.mark.netns
def test_withdraw_and_stop_send_goodbyes(net: Any, scratch: Path, resolver: NsChild) -> None:
    child = NsChild(net.dev, "advertise", net.dev_ifname, scratch / "advertiser2.log")
    try:
        child("commissionable", discriminator=1234, vendor_id=0xFFF1, product_id=0x8000)
        child("add_operational", cfid="00000000000000AB", node=7)
        commissionable = {("_L1234._sub._matterc._udp.local.", f"{child('instance')}._matterc._udp.local."),
                          ("_matterc._udp.local.", f"{child('instance')}._matterc._udp.local.")}
        operational = {("_matter._tcp.local.", "00000000000000AB-0000000000000007._matter._tcp.local.")}
        for type_, _ in commissionable | operational:
            resolver("watch", type=type_)

        def seen(state: str) -> set[tuple[str, str]]:
            return {(type_, name) for s, type_, name in resolver("events") if s == state}

        assert wait_for(lambda: commissionable | operational <= seen("Added")), resolver("events")
        child("commissionable")  # None: the window closes, goodbyes for the record and its subtypes
        assert wait_for(lambda: commissionable <= seen("Removed")), resolver("events")
        assert not operational & seen("Removed")
        child("stop")
        child.proc.wait(5)
        assert wait_for(lambda: operational <= seen("Removed")), resolver("events")
    finally:
        child.close()


@pytest.mark.netns
@pytest.mark.parametrize("kind", ["operational", "commissionable"])
def test_srv_and_txt_questions_get_srv_txt_a_and_aaaa(device: NsChild, resolver: NsChild, kind: str) -> None:
    """An SRV or a TXT question about our instance gets all four records, as Matter nodes answer (TC_SC_4_3 step
    7 asks for the TXT alone, and python-zeroconf's ServiceInfo completes only with SRV, TXT and an address)."""
    if kind == "operational":
        device("add_operational", cfid=CFID.hex().upper(), node=NODE_ID)
        name = f"{operational_instance_name(CFID, NODE_ID)}._matter._tcp.local."
    else:
        name = f"{device('instance')}._matterc._udp.local."
    try:
        for asked, others in (("TXT", {"SRV", "A", "AAAA"}), ("SRV", {"TXT", "A", "AAAA"})):
            reply = resolver("query", name=name, type=asked, ifname="veth-ctl")
            assert reply["answers"] == [[asked, name.lower()]], reply
            assert others <= {type_ for type_, _ in reply["additionals"]}, reply
            assert [asked, name.lower()] not in reply["additionals"], reply
    finally:
        if kind == "operational":
            device("remove_operational", cfid=CFID.hex().upper(), node=NODE_ID)


@pytest.mark.netns
def test_withdrawn_at_once_is_no_longer_answered(device: NsChild, resolver: NsChild) -> None:
    """RemoveFabric's withdrawal: once the call returns, questions about the record go unanswered (the CHIP
    controller of a removed fabric must not find the node, TC_CADMIN_1_15 step 12) and browsers see it go."""
    fabric = "00000000000000CD"
    name = f"{fabric}-{NODE_ID:016X}._matter._tcp.local."
    device("add_operational", cfid=fabric, node=NODE_ID)
    resolver("watch", type="_matter._tcp.local.")
    assert wait_for(lambda: ["Added", "_matter._tcp.local.", name] in resolver("events")), resolver("events")
    assert resolver("query", name=name, type="SRV", ifname="veth-ctl")["answers"] == [["SRV", name.lower()]]
    device("withdraw_operational_now", cfid=fabric, node=NODE_ID)
    for asked in ("SRV", "TXT"):
        assert resolver("query", name=name, type=asked, ifname="veth-ctl", timeout=1.0) is None
    assert wait_for(lambda: ["Removed", "_matter._tcp.local.", name] in resolver("events")), resolver("events")
    time.sleep(1.1)  # a querier keeps a goodbye's records for one second (RFC 6762 §10.1), then nobody answers
    assert resolver("resolve", cfid=fabric, node=NODE_ID, timeout=0.5) == []


def wait_for(predicate: Any, timeout: float = 4.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


# ---------------------------------------------------------------------------------------------------------------
# The child program (runs inside a namespace; never imported by pytest for this).


async def _child(role: str, interface: str | None) -> None:
    from zeroconf import ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    advertiser = dnssd.Advertiser(interface) if role == "advertise" else None
    resolver = dnssd.Resolver(interface) if role == "resolve" else None
    events: list[list[str]] = []
    browsers: list[AsyncServiceBrowser] = []

    def on_change(zeroconf: Any, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        events.append([state_change.name, service_type, name])

    async def handle(cmd: str, args: dict[str, Any]) -> Any:
        if cmd == "commissionable":
            assert advertiser is not None
            return await advertiser.set_commissionable(CommissionableInfo(**args) if args else None)
        if cmd == "instance":
            assert advertiser is not None
            return advertiser.commissionable_instance
        if cmd in ("add_operational", "remove_operational"):
            return await getattr(advertiser, cmd)(bytes.fromhex(args["cfid"]), args["node"])
        if cmd == "withdraw_operational_now":
            assert advertiser is not None
            return advertiser.withdraw_operational_now(bytes.fromhex(args["cfid"]), args["node"])
        assert resolver is not None
        if cmd == "resolve":
            return await resolver.resolve_operational(bytes.fromhex(args["cfid"]), args["node"], args["timeout"])
        if cmd == "browse_commissionable":
            found = await resolver.browse_commissionable(args["timeout"], subtype=args["subtype"])
            return [_describe(f) for f in found]
        if cmd == "watch":
            browsers.append(AsyncServiceBrowser(resolver.zeroconf.zeroconf, args["type"], handlers=[on_change]))
            return None
        if cmd == "events":
            return events
        if cmd == "ifindex":
            return __import__("socket").if_nametoindex(args["name"])
        if cmd == "query":
            return await _legacy_unicast_query(args["name"], args["type"], args["ifname"], args.get("timeout", 3.0))
        raise ValueError(cmd)

    service = advertiser or resolver
    assert service is not None
    await service.start()
    print(json.dumps({"ready": True}), flush=True)
    try:
        while line := await reader.readline():
            request = json.loads(line)
            cmd = request.pop("cmd")
            if cmd == "stop":
                break
            try:
                print(json.dumps({"result": await handle(cmd, request)}), flush=True)
            except Exception as exc:  # reported to the test, which fails with it
                print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
    finally:
        for browser in browsers:
            await browser.async_cancel()
        await service.stop()
        print(json.dumps({"result": "stopped"}), flush=True)


async def _legacy_unicast_query(name: str, type_name: str, ifname: str,
                                timeout: float) -> dict[str, list[list[str]]] | None:
    """One question from an ephemeral port (RFC 6762 §6.7), so the whole answer comes back to us in one packet;
    python-zeroconf's codec builds the query and parses the response. Records as [type, lower-cased name]; None
    when nobody answers within ``timeout``."""
    import socket

    from zeroconf import DNSIncoming, DNSOutgoing, DNSQuestion
    from zeroconf.const import _CLASS_IN, _FLAGS_QR_QUERY, _TYPES

    type_ = {"SRV": 33, "TXT": 16}[type_name]
    out = DNSOutgoing(_FLAGS_QR_QUERY)
    out.add_question(DNSQuestion(name, type_, _CLASS_IN))
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(ifname))
        sock.setblocking(False)
        sock.bind(("::", 0))
        await loop.sock_sendto(sock, out.packets()[0], ("ff02::fb", 5353, 0, socket.if_nametoindex(ifname)))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    data = await loop.sock_recv(sock, 9000)
                    incoming = DNSIncoming(data)
                    if incoming.is_response() and any(r.name.lower() == name.lower() for r in incoming.answers()):
                        break
        except TimeoutError:
            return None
    # DNSIncoming.answers() holds answer and additional records alike; the answer count tells them apart.
    records = [[_TYPES.get(r.type, str(r.type)).upper(), r.name.lower()] for r in incoming.answers()]
    return {"answers": records[:incoming.num_answers], "additionals": records[incoming.num_answers:]}


def _describe(found: DiscoveredCommissionable) -> dict[str, Any]:
    return {"instance": found.instance, "port": found.port, "addresses": list(found.addresses), "txt": found.txt,
            "discriminator": found.discriminator, "vendor_id": found.vendor_id, "product_id": found.product_id}


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], None if sys.argv[2] == "-" else sys.argv[2]))
