"""SRV/TXT answers with their sibling records (dnssd_siblings.py), on zeroconf's own responder, without sockets.

The responder is zeroconf's QueryHandler fed DNSIncoming queries built with zeroconf's codec; nothing is sent.
The end-to-end check (a python-zeroconf querier in a network namespace) is in tests/node/test_dnssd.py.
"""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace
from typing import Any

import pytest
import zeroconf
from zeroconf import DNSIncoming, DNSOutgoing, DNSPointer, DNSQuestion, ServiceInfo, ServiceRegistry
from zeroconf._cache import DNSCache
from zeroconf._handlers.multicast_outgoing_queue import MulticastOutgoingQueue
from zeroconf._handlers.query_handler import QueryHandler
from zeroconf._history import QuestionHistory
from zeroconf.const import (
    _CLASS_IN,
    _FLAGS_QR_QUERY,
    _FLAGS_QR_RESPONSE,
    _SERVICE_TYPE_ENUMERATION_NAME,
    _TYPE_A,
    _TYPE_AAAA,
    _TYPE_PTR,
    _TYPE_SRV,
    _TYPE_TXT,
)

from jfds_device.node import dnssd_siblings
from jfds_device.node.dnssd import (
    COMMISSIONABLE_TYPE,
    OPERATIONAL_TYPE,
    CommissionableInfo,
    _registry_set_subtypes,
    commissionable_service_infos,
    operational_service_infos,
)
from jfds_device.node.dnssd_siblings import SiblingQueryHandler, SiblingZeroconf

MATTER_TYPES = frozenset({COMMISSIONABLE_TYPE, OPERATIONAL_TYPE})
ADDRESSES = [ipaddress.ip_address("fd42::1").packed, ipaddress.ip_address("169.254.42.1").packed]
OPERATIONAL, OPERATIONAL_SUBTYPES = operational_service_infos(bytes.fromhex("5D5E4932E92C812A"), 0x1234, port=5540,
                                                             host="H.local.", addresses=ADDRESSES)
COMMISSIONABLE, COMMISSIONABLE_SUBTYPES = commissionable_service_infos(
    "0123456789ABCDEF", CommissionableInfo(3840, 0xFFF1, 0x8000), port=5540, host="H.local.", addresses=ADDRESSES)
OTHER = ServiceInfo("_http._tcp.local.", "web._http._tcp.local.", port=80, server="H.local.", addresses=ADDRESSES,
                    properties={"path": "/"})


def fake_zeroconf() -> Any:
    """What QueryHandler takes from its Zeroconf: real registry, cache and queues, no sockets."""
    zc = SimpleNamespace(registry=ServiceRegistry(), cache=DNSCache(), question_history=QuestionHistory())
    zc.out_queue = MulticastOutgoingQueue(zc, 0, 500)
    zc.out_delay_queue = MulticastOutgoingQueue(zc, 1000, 500)
    for info in (OPERATIONAL, COMMISSIONABLE, OTHER):
        zc.registry.async_add(info)
    _registry_set_subtypes(zc.registry, OPERATIONAL_SUBTYPES + COMMISSIONABLE_SUBTYPES, present=True)
    return zc


def query(name: str, type_: int, *, unicast: bool = False) -> DNSIncoming:
    out = DNSOutgoing(_FLAGS_QR_QUERY)
    question = DNSQuestion(name, type_, _CLASS_IN)
    question.unicast = unicast
    out.add_question(question)
    return DNSIncoming(out.packets()[0])


def answered(handler: QueryHandler, name: str, type_: int, *, unicast_source: bool = False,
             unicast: bool = False) -> dict[int, set[int]]:
    """{answer type: the types of its additionals}, over every answer set the handler produced."""
    answers = handler.async_response([query(name, type_, unicast=unicast)], unicast_source)
    assert answers is not None
    result: dict[int, set[int]] = {}
    for answer_set in (answers.ucast, answers.mcast_now, answers.mcast_aggregate,
                       answers.mcast_aggregate_last_second):
        for record, additionals in answer_set.items():
            assert record.name.lower() in {name.lower(), "h.local."}
            result.setdefault(record.type, set()).update(a.type for a in additionals)
    return result


FOUR = {_TYPE_SRV, _TYPE_TXT, _TYPE_A, _TYPE_AAAA}


@pytest.mark.parametrize("info", [OPERATIONAL, COMMISSIONABLE], ids=["_matter._tcp", "_matterc._udp"])
@pytest.mark.parametrize(("unicast_source", "unicast"), [(False, False), (False, True), (True, False)],
                         ids=["QM", "QU", "legacy-unicast"])
def test_srv_and_txt_questions_get_all_four_records(info: ServiceInfo, unicast_source: bool, unicast: bool) -> None:
    handler = SiblingQueryHandler(fake_zeroconf(), MATTER_TYPES)
    for asked in (_TYPE_TXT, _TYPE_SRV):
        found = answered(handler, info.name, asked, unicast_source=unicast_source, unicast=unicast)
        assert set(found) == {asked}, found  # the asked record is the answer ...
        assert found[asked] | {asked} >= FOUR  # ... and the other three kinds come along as additionals
        assert asked not in found[asked]


def test_zeroconf_alone_answers_without_siblings() -> None:
    """The behaviour the adapter changes, pinned on the zeroconf version it was written for."""
    assert zeroconf.__version__ == dnssd_siblings.ZEROCONF_VERIFIED
    handler = QueryHandler(fake_zeroconf())  # type: ignore[arg-type]
    assert answered(handler, OPERATIONAL.name, _TYPE_TXT) == {_TYPE_TXT: set()}
    assert _TYPE_TXT not in answered(handler, OPERATIONAL.name, _TYPE_SRV)[_TYPE_SRV]


def test_other_services_and_questions_are_left_as_zeroconf_answers_them() -> None:
    handler = SiblingQueryHandler(fake_zeroconf(), MATTER_TYPES)
    assert answered(handler, OTHER.name, _TYPE_TXT) == {_TYPE_TXT: set()}
    found = answered(handler, "H.local.", _TYPE_AAAA)  # an address question: zeroconf's own additionals
    assert set(found) == {_TYPE_AAAA} and _TYPE_TXT not in found[_TYPE_AAAA] and _TYPE_SRV not in found[_TYPE_AAAA]
    assert handler.async_response([query("nobody._matter._tcp.local.", _TYPE_TXT)], False) is None


def test_known_answer_suppression_still_applies() -> None:
    handler = SiblingQueryHandler(fake_zeroconf(), MATTER_TYPES)
    out = DNSOutgoing(_FLAGS_QR_QUERY)
    out.add_question(DNSQuestion(OPERATIONAL.name, _TYPE_TXT, _CLASS_IN))
    out.add_answer_at_time(OPERATIONAL.dns_text(), 0)  # the querier already holds the TXT (RFC 6762 §7.1)
    answers = handler.async_response([DNSIncoming(out.packets()[0])], False)
    assert answers is not None
    assert not (answers.ucast or answers.mcast_now or answers.mcast_aggregate or answers.mcast_aggregate_last_second)


def test_zeroconfs_cached_srv_additionals_are_not_modified() -> None:
    """zeroconf hands the same cached set to every SRV answer; the adapter must build a new one."""
    handler = SiblingQueryHandler(fake_zeroconf(), MATTER_TYPES)
    for _ in range(2):
        assert _TYPE_TXT in answered(handler, OPERATIONAL.name, _TYPE_SRV)[_TYPE_SRV]
    cached = OPERATIONAL._get_address_and_nsec_records_cache  # a cdef public field of ServiceInfo
    assert cached is not None and {r.type for r in cached} == {_TYPE_A, _TYPE_AAAA}  # no NSEC: both exist


def test_sibling_zeroconf_installs_its_handler_before_the_sockets_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listeners take zc.query_handler when Zeroconf.start() makes them; ours must already be in place then.

    Zeroconf.__init__ (which opens sockets) is skipped and its start() recorded, so nothing is sent from here;
    tests/node/test_dnssd.py checks the real thing inside a namespace."""
    seen: list[Any] = []
    monkeypatch.setattr(zeroconf.Zeroconf, "start", lambda self: seen.append(self.query_handler))
    zc = SiblingZeroconf.__new__(SiblingZeroconf)
    fake = fake_zeroconf()
    zc.registry, zc.cache, zc.question_history = fake.registry, fake.cache, fake.question_history
    zc.out_queue, zc.out_delay_queue = fake.out_queue, fake.out_delay_queue
    zc.sibling_types = MATTER_TYPES
    zc.start()
    assert len(seen) == 1 and isinstance(seen[0], SiblingQueryHandler) and seen[0] is zc.query_handler


def enumerated(handler: QueryHandler, *known: str, unicast: bool = False) -> list[str]:
    """The service types a ``_services._dns-sd._udp.local.`` PTR question gets (RFC 6763 §9), as spelled on the wire
    to a querier that already holds the ``known`` ones."""
    out = DNSOutgoing(_FLAGS_QR_QUERY)
    question = DNSQuestion(_SERVICE_TYPE_ENUMERATION_NAME, _TYPE_PTR, _CLASS_IN)
    question.unicast = unicast
    out.add_question(question)
    for alias in known:
        out.add_answer_at_time(DNSPointer(_SERVICE_TYPE_ENUMERATION_NAME, _TYPE_PTR, _CLASS_IN, 4500, alias), 0)
    answers = handler.async_response([DNSIncoming(out.packets()[0])], False)
    if answers is None:
        return []
    response = DNSOutgoing(_FLAGS_QR_RESPONSE)
    for answer_set in (answers.ucast, answers.mcast_now, answers.mcast_aggregate,
                       answers.mcast_aggregate_last_second):
        for record in answer_set:
            response.add_answer_at_time(record, 0)
    return sorted(r.alias for r in DNSIncoming(response.packets()[0]).answers() if isinstance(r, DNSPointer))


REGISTERED_TYPES = sorted({OPERATIONAL.type, COMMISSIONABLE.type, OTHER.type}
                          | {info.type for info in OPERATIONAL_SUBTYPES + COMMISSIONABLE_SUBTYPES})


@pytest.mark.parametrize("unicast", [False, True], ids=["QM", "QU"])
def test_service_types_are_enumerated_as_registered(unicast: bool) -> None:
    """The _I<CFID> subtype in upper-case hex (Core spec §4.3.2), as in our other records: TC_SC_4_3 step 10 looks
    for exactly that spelling among the enumerated types."""
    found = enumerated(SiblingQueryHandler(fake_zeroconf(), MATTER_TYPES), unicast=unicast)
    assert found == REGISTERED_TYPES
    assert "_I5D5E4932E92C812A._sub._matter._tcp.local." in found
    assert "_L3840._sub._matterc._udp.local." in found


def test_zeroconf_alone_enumerates_types_lower_cased() -> None:
    """The behaviour the adapter changes, pinned on the zeroconf version it was written for."""
    assert zeroconf.__version__ == dnssd_siblings.ZEROCONF_VERIFIED
    found = enumerated(QueryHandler(fake_zeroconf()))  # type: ignore[arg-type]
    assert found == sorted(t.lower() for t in REGISTERED_TYPES)


def test_enumerated_types_a_querier_holds_in_any_case_are_suppressed() -> None:
    """Known-answer suppression (RFC 6762 §7.1) compares names case-insensitively, before and after the respelling."""
    handler = SiblingQueryHandler(fake_zeroconf(), MATTER_TYPES)
    held = ["_i5d5e4932e92c812a._sub._matter._tcp.local.", "_L3840._SUB._MATTERC._UDP.LOCAL."]
    assert enumerated(handler, *held) == [t for t in REGISTERED_TYPES if t.lower() not in {h.lower() for h in held}]
