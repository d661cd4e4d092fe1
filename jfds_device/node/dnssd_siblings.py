"""The one adapter over python-zeroconf's responder: SRV and TXT answers that carry their sibling records, service
types enumerated as registered (not lower-cased), and withdrawn records taken out of the answers it has queued.

What: a question for the SRV or the TXT record of a service instance this node publishes (``_matter._tcp`` or
``_matterc._udp``) is answered with SRV, TXT, A and AAAA together: the asked record as the answer, the others as
additional records (RFC 6763 §12: a responder may add any records it expects the querier to need). matter.js
answers this way; the CHIP SDK's minimal mDNS responder adds at least the host's addresses to SRV and TXT
answers (connectedhomeip ``src/lib/dnssd/Advertiser_ImplMinimalMdns.cpp``, ``SetReportAdditional(hostName)``).
Resolvers need the siblings: python-zeroconf's ServiceInfo, which the SDK's certification tests use (TC_SC_4_3
step 7 asks for the TXT alone), completes an instance only once it holds SRV, TXT and an address.

Enumerated types: zeroconf answers a ``_services._dns-sd._udp.local.`` question (RFC 6763 §9) with the keys of its
registry's type index, which are lower-cased (PTR questions are looked up by their lower-cased name), so our
``_I<CFID>`` subtype went out as ``_i<cfid>._sub._matter._tcp.local.``. DNS compares names case-insensitively, but
the Core spec (§4.3.2) spells the subtype in upper-case hex, every other record of ours carries it so, and queriers
keep whichever spelling reached them first: the SDK's TC_SC_4_3 step 10 collects enumerated types with
python-zeroconf's ZeroconfServiceTypes and compares them case-sensitively, and the test harness's own CHIP stack
enumerates the same (upper-case) subtype for its own node on the fabric, so it failed whenever our answer won the
race. ``enumerate_types_as_registered`` puts the registered spelling back (RFC 6762 §16: case is preserved).

Why an adapter: python-zeroconf 0.154 answers a TXT question with the TXT alone and an SRV question with SRV and
addresses, and has no hook into its answer construction. Its ``QueryHandler.async_response`` (a public ``cpdef``
method) builds every answer set; a Python subclass overrides it, adds the siblings and leaves everything else
(known-answer suppression, unicast/multicast split, RFC 6762 §14 rate limits) to zeroconf. The handler is
installed by ``SiblingZeroconf.start``: ``Zeroconf.__init__`` creates its QueryHandler, then calls ``start()``,
which sets up the sockets whose listeners take ``zc.query_handler`` when they are made, so replacing it first
is what they use.

Withdrawn records: zeroconf queues multicast answers before it sends them (aggregated ones 20-120 ms, a record
multicast within the last second one more second, RFC 6762 §6 and §14) and sends them even if the record has
left its registry meanwhile. ``drop_queued_answers`` takes a withdrawn record out of those queues
(``MulticastOutgoingQueue.queue``, a public field of AnswerGroups), so a removed fabric's record does not come
back as a live answer after its goodbye.

Verified with ``ZEROCONF_VERIFIED``; ``tests/node/test_dnssd_siblings.py`` pins the override and the installation,
``tests/node/test_dnssd_withdraw.py`` the queues.
"""

from __future__ import annotations

import logging
from typing import Any

import zeroconf
from zeroconf import DNSPointer, DNSRecord, ServiceInfo, ServiceRegistry, Zeroconf
from zeroconf._handlers.answers import QuestionAnswers
from zeroconf._handlers.query_handler import QueryHandler
from zeroconf.const import _SERVICE_TYPE_ENUMERATION_NAME, _TYPE_PTR, _TYPE_SRV, _TYPE_TXT

log = logging.getLogger(__name__)

ZEROCONF_VERIFIED = "0.154.0"  # the version whose QueryHandler / start() sequence this adapter relies on

if zeroconf.__version__ != ZEROCONF_VERIFIED:
    log.warning("zeroconf %s: SRV/TXT sibling records were verified with %s only", zeroconf.__version__,
                ZEROCONF_VERIFIED)


def sibling_records(info: ServiceInfo) -> set[DNSRecord]:
    """SRV, TXT, every A and AAAA, and the NSEC that says which address types exist (RFC 6762 §6.1)."""
    records: set[DNSRecord] = {info.dns_service(), info.dns_text(), *info.dns_addresses()}
    nsec = info.dns_address_nsec()
    if nsec is not None:
        records.add(nsec)
    return records


def add_siblings(answers: QuestionAnswers, registry: ServiceRegistry, service_types: frozenset[str]) -> None:
    """Give every SRV or TXT answer about one of our instances the others as additionals (RFC 6763 §12)."""
    for answer_set in (answers.ucast, answers.mcast_now, answers.mcast_aggregate,
                       answers.mcast_aggregate_last_second):
        for record in [r for r in answer_set if r.type in (_TYPE_SRV, _TYPE_TXT)]:
            info = registry.async_get_info_name(record.key)
            if info is None or info.type.lower() not in service_types:
                continue
            # A new set: zeroconf caches the one it built for an SRV answer on the ServiceInfo.
            answer_set[record] = (answer_set[record] | sibling_records(info)) - {record}


def enumerate_types_as_registered(answers: QuestionAnswers, registry: ServiceRegistry) -> None:
    """Service type enumeration answers (RFC 6763 §9) name each type as its ServiceInfo spells it."""
    for answer_set in (answers.ucast, answers.mcast_now, answers.mcast_aggregate,
                       answers.mcast_aggregate_last_second):
        for record in [r for r in answer_set if isinstance(r, DNSPointer) and r.key == _SERVICE_TYPE_ENUMERATION_NAME]:
            infos = registry.async_get_infos_type(record.alias_key)  # the index zeroconf enumerated, lower-cased
            if infos and infos[0].type != record.alias:
                additionals = answer_set.pop(record)
                answer_set[DNSPointer(record.name, _TYPE_PTR, record.class_, record.ttl, infos[0].type,
                                      record.created)] = additionals


def drop_queued_answers(zc: Zeroconf, instance: str, host: str | None = None) -> int:
    """Take ``instance``'s records (its SRV, TXT and the PTRs naming it) and, with ``host``, that host's address
    records out of the multicast answers zeroconf has queued and not sent yet. Returns how many answers went."""
    instance, host = instance.lower(), host.lower() if host else None

    def withdrawn(record: DNSRecord) -> bool:
        name = record.name.lower()
        if record.type == _TYPE_PTR:
            return str(getattr(record, "alias", "")).lower() == instance
        return name == instance or (host is not None and name == host)

    dropped = 0
    for queue in (zc.out_queue, zc.out_delay_queue):
        for group in queue.queue:
            for record in [r for r in group.answers if withdrawn(r)]:
                del group.answers[record]
                dropped += 1
            for record, additionals in group.answers.items():  # same keys: assigning while iterating is safe
                if any(withdrawn(a) for a in additionals):
                    group.answers[record] = {a for a in additionals if not withdrawn(a)}
    return dropped


class SiblingQueryHandler(QueryHandler):
    """zeroconf's responder, with sibling records on SRV and TXT answers about ``service_types`` and enumerated
    service types spelled as registered."""

    def __init__(self, zc: Any, service_types: frozenset[str]) -> None:
        super().__init__(zc)
        self._services = zc.registry  # QueryHandler's own registry field is C-level only
        self._service_types = frozenset(t.lower() for t in service_types)

    def async_response(self, msgs: list[Any], ucast_source: bool) -> QuestionAnswers | None:
        answers = super().async_response(msgs, ucast_source)
        if answers is not None:
            add_siblings(answers, self._services, self._service_types)
            enumerate_types_as_registered(answers, self._services)
        return answers


class SiblingZeroconf(Zeroconf):
    """Zeroconf whose responder answers SRV/TXT questions about ``sibling_types`` with all four records."""

    def __init__(self, *args: Any, sibling_types: frozenset[str], **kwargs: Any) -> None:
        self.sibling_types = sibling_types  # before Zeroconf.__init__, which ends by calling start()
        super().__init__(*args, **kwargs)

    def start(self) -> None:
        # Zeroconf.__init__ made its QueryHandler and calls start() last; the sockets' listeners, made from here on,
        # take zc.query_handler when they are created.
        self.query_handler = SiblingQueryHandler(self, self.sibling_types)
        super().start()
