"""Advertiser.withdraw_operational_now: a removed fabric's record is gone before the call returns (RemoveFabric).

No sockets: the Advertiser runs over zeroconf's real ServiceRegistry and its packet builder, and what would be
sent is kept and parsed with zeroconf's codec. The record's absence as a python-zeroconf querier sees it, in a
network namespace, is in tests/node/test_dnssd.py; the CHIP SDK's view is TC_CADMIN_1_15.
"""

from __future__ import annotations

import asyncio
from typing import Any

import zeroconf
from zeroconf import DNSIncoming, DNSOutgoing, ServiceInfo, ServiceRegistry
from zeroconf._handlers.answers import AnswerGroup
from zeroconf._handlers.multicast_outgoing_queue import MulticastOutgoingQueue

from jfds_device.node.dnssd import Advertiser, CommissionableInfo, fabric_hex, operational_instance_name

CFID_A, CFID_B, NODE = 0x5D5E4932E92C812A, 0x00000000000000AB, 0x1234
SRV, TXT, PTR, A, AAAA = 33, 16, 12, 1, 28


class FakeZeroconf:
    """The part of zeroconf's Zeroconf the Advertiser uses, over the real registry; packets are kept."""

    generate_service_broadcast = zeroconf.Zeroconf.generate_service_broadcast
    _add_broadcast_answer = zeroconf.Zeroconf._add_broadcast_answer

    def __init__(self) -> None:
        self.registry = ServiceRegistry()
        self.done = False
        self.out_queue = MulticastOutgoingQueue(self, 0, 500)  # type: ignore[arg-type]
        self.out_delay_queue = MulticastOutgoingQueue(self, 1000, 500)  # type: ignore[arg-type]
        self.sent: list[DNSOutgoing] = []

    def async_send(self, out: DNSOutgoing, *args: Any) -> None:
        self.sent.append(out)


class FakeAsyncZeroconf:
    """AsyncZeroconf's register/update/unregister: the registry changes, the broadcasts are left out."""

    def __init__(self) -> None:
        self.zeroconf = FakeZeroconf()

    @staticmethod
    def _done() -> asyncio.Future[None]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    async def async_register_service(self, info: ServiceInfo, **kwargs: Any) -> asyncio.Future[None]:
        self.zeroconf.registry.async_add(info)
        return self._done()

    async def async_update_service(self, info: ServiceInfo) -> asyncio.Future[None]:
        self.zeroconf.registry.async_update(info)
        return self._done()

    async def async_unregister_service(self, info: ServiceInfo) -> asyncio.Future[None]:
        self.zeroconf.registry.async_remove(info)
        return self._done()


async def advertiser() -> tuple[Advertiser, FakeZeroconf]:
    adv = Advertiser("veth0", port=5540, hostname="H.local.")
    fake = FakeAsyncZeroconf()
    adv._zc = fake  # type: ignore[assignment]  # start() would open sockets
    adv._addresses = [bytes.fromhex("fd420000000000000000000000000001"), bytes([169, 254, 42, 1])]
    return adv, fake.zeroconf


def name(cfid: int) -> str:
    return f"{operational_instance_name(cfid, NODE)}._matter._tcp.local."


def records(out: DNSOutgoing) -> list[tuple[int, str, int]]:
    return [(r.type, r.name.lower(), r.ttl) for p in out.packets() for r in DNSIncoming(p).answers()]


async def test_withdrawal_is_done_when_the_call_returns_one_goodbye_for_record_and_subtype() -> None:
    adv, zc = await advertiser()
    await adv.add_operational(CFID_A, NODE)
    await adv.add_operational(CFID_B, NODE)
    zc.sent.clear()
    adv.withdraw_operational_now(CFID_A, NODE)  # synchronous: nothing to await
    assert zc.registry.async_get_info_name(name(CFID_A).lower()) is None
    assert f"_i{fabric_hex(CFID_A).lower()}._sub._matter._tcp.local." not in zc.registry.types
    assert zc.registry.async_get_info_name(name(CFID_B).lower()) is not None  # the other fabric stays
    sent = [r for out in zc.sent for r in records(out)]
    assert all(ttl == 0 for _, _, ttl in sent), sent
    assert {(t, n) for t, n, _ in sent} == {
        (PTR, f"_i{fabric_hex(CFID_A).lower()}._sub._matter._tcp.local."), (PTR, "_matter._tcp.local."),
        (SRV, name(CFID_A).lower()), (TXT, name(CFID_A).lower())}  # no address goodbye: fabric B uses them
    assert len(sent) == 4  # each once: no repeats for a resolver to take as answers later
    await asyncio.sleep(0.3)
    assert [r for out in zc.sent for r in records(out)] == sent  # and nothing follows


async def test_the_last_record_on_the_host_says_goodbye_to_the_addresses_too() -> None:
    adv, zc = await advertiser()
    await adv.add_operational(CFID_A, NODE)
    zc.sent.clear()
    adv.withdraw_operational_now(CFID_A, NODE)
    kinds = {t for out in zc.sent for t, _, ttl in records(out) if ttl == 0}
    assert {A, AAAA, SRV, TXT} <= kinds
    assert zc.registry.async_get_service_infos() == []


async def test_an_update_still_queued_does_not_bring_a_withdrawn_record_back() -> None:
    """RemoveFabric right after AddNOC: the add's task has not run yet when the withdrawal happens."""
    adv, zc = await advertiser()
    queued = adv.add_operational(CFID_A, NODE)  # what Device._spawn holds, not yet run
    adv.withdraw_operational_now(CFID_A, NODE)
    await queued
    assert zc.registry.async_get_service_infos() == []
    await adv.set_commissionable(CommissionableInfo(3840, 0xFFF1, 0x8000))  # a later sync leaves it out too
    assert [i.name for i in zc.registry.async_get_service_infos()] == [
        f"{adv.commissionable_instance}._matterc._udp.local."]


async def test_withdrawing_what_is_not_advertised_or_before_start_is_harmless() -> None:
    adv, zc = await advertiser()
    adv.withdraw_operational_now(CFID_A, NODE)
    assert zc.sent == []
    stopped = Advertiser("veth0")
    stopped.withdraw_operational_now(CFID_A, NODE)  # no zeroconf yet: only the wish is dropped
    assert stopped._operational == set()
    await stopped.add_operational(CFID_A, NODE)  # before start: kept for start()
    stopped.withdraw_operational_now(CFID_A, NODE)
    assert stopped._operational == set()


async def test_answers_queued_before_the_withdrawal_are_not_sent_after_it() -> None:
    """zeroconf holds multicast answers up to a second (RFC 6762 §14); the withdrawn record's must not go out."""
    adv, zc = await advertiser()
    await adv.add_operational(CFID_A, NODE)
    await adv.add_operational(CFID_B, NODE)
    a, b = (zc.registry.async_get_info_name(name(c).lower()) for c in (CFID_A, CFID_B))
    assert a is not None and b is not None
    zc.out_delay_queue.queue.append(AnswerGroup(0, 0, {a.dns_service(): {a.dns_text(), *a.dns_addresses()},
                                                       a.dns_pointer(): {a.dns_service()},
                                                       b.dns_text(): {b.dns_service(), a.dns_text()}}))
    adv.withdraw_operational_now(CFID_A, NODE)
    [group] = zc.out_delay_queue.queue
    assert list(group.answers) == [b.dns_text()]  # fabric B's answer stays, without A's records
    assert group.answers[b.dns_text()] == {b.dns_service()}


async def test_a_queued_removal_after_an_immediate_withdrawal_is_harmless() -> None:
    adv, zc = await advertiser()
    await adv.add_operational(CFID_A, NODE)
    queued = adv.remove_operational(CFID_A, NODE)  # planned, not yet run
    adv.withdraw_operational_now(CFID_A, NODE)
    zc.sent.clear()
    await queued  # finds nothing left to withdraw: no second goodbye, no error
    assert zc.sent == [] and zc.registry.async_get_service_infos() == []
