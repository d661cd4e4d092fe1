"""How the reconciler talks to one peer node during a pass: ``PeerIO`` (the IM client bound to one CASE
session), the peer's capacities, who we are on the fabric, and per-pass caches the item kinds share.

``PeerClient`` is the part of ``im.client.InteractionClient`` the reconciler uses; tests pass a fake peer that
implements it. ``PeerIO`` is typed from the cluster schemas, as the client's ``send_command`` / ``read_value``
are (the same ``im.client_messages`` helpers): attributes are ``AttributeRef``s, commands their request structs,
responses and values come back decoded. Transport failures surface as ``TransportError`` (the executor records
TIMEOUT, Core spec 11.24.4 / the reference's SyncFailureCode); a peer's refusal stays an ``IMStatusError``.

``PeerIO.read_list`` gives a list attribute with its cluster's DataVersion (Core spec 7.10.3) and ``write`` takes
it back as a condition (AttributeDataIB DataVersion, Core spec 8.7.3.2: the peer answers DATA_VERSION_MISMATCH
if the cluster changed since), which is how a read-merge-write notices another administrator's write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from clusters.access_control import schema as ac
from clusters.group_key_management import schema as gkm
from clusters.joint_fabric_datastore.schema import GroupKeySet
from clusters.operational_credentials import schema as oc
from jfds_device.codec import tlv
from jfds_device.codec.model import AttributeRef
from jfds_device.codec.schema import Struct
from jfds_device.datamodel import acl
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import Entry
from jfds_device.errors import DecodeError, IMStatusError, InteractionError, LocalProtocolError, TransportError
from jfds_device.im.client_messages import InvokeResult, ReadResult, command_request, command_response
from jfds_device.im.provider import Status

__all__ = ["Capacities", "ListView", "ListWriteHook", "OwnIdentity", "PeerClient", "PeerContext", "PeerIO",
           "decode_items"]

log = logging.getLogger(__name__)

ListWriteHook = Callable[["PeerIO", tuple[int, int, int], "int | None"], Awaitable[None]]
"""Awaited with (io, (endpoint, cluster, attribute), the DataVersion the write is conditioned on) just before the
conditional write of every read-merge-write (``Reconciler.before_list_write``): a seam for tests that need another
administrator to write between our read and our write."""


class PeerClient(Protocol):
    """What the reconciler needs of ``InteractionClient`` (a fake peer in tests implements the same)."""

    async def read(self, session: Any, paths: Sequence[Any], *, fabric_filtered: bool = True) -> ReadResult: ...

    async def write_attribute(self, session: Any, endpoint: int, cluster: int, attribute: int, value: Any, *,
                              data_version: int | None = None) -> None: ...

    async def invoke(self, session: Any, endpoint: int, cluster: int, command: int, fields: Any = None
                     ) -> InvokeResult: ...


class PeerIO:
    """The client bound to one session. Every interaction is bounded by ``timeout`` (a safety net over the
    exchange layer's MRP timeouts) and every transport failure becomes ``TransportError``. ``read_s`` / ``read_n``
    and ``write_s`` / ``write_n`` (writes and invokes): time spent in, and number of, the interactions (failed ones
    included), for the reconciler's phase timers. ``node_id`` names the peer in log lines; ``before_list_write``
    is the test seam ``ListWriteHook``."""

    def __init__(self, client: PeerClient, session: Any, *, timeout: float = 30.0, node_id: int | None = None,
                 before_list_write: ListWriteHook | None = None) -> None:
        self.client, self.session, self.timeout = client, session, timeout
        self.node_id, self.before_list_write = node_id, before_list_write
        self.interactions = 0
        self.version_mismatches = 0  # conditional writes the peer refused with DATA_VERSION_MISMATCH
        self.read_s = self.write_s = 0.0
        self.read_n = self.write_n = 0

    async def _run(self, what: str, coro: Any, *, reading: bool = False) -> Any:
        if getattr(self.session, "closing", False):
            coro.close()
            raise TransportError(f"{what}: the session is closing")
        self.interactions += 1
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                return await coro
        except IMStatusError:
            raise
        except (InteractionError, TimeoutError) as exc:
            raise TransportError(f"{what}: {exc}") from exc
        except LocalProtocolError as exc:  # e.g. the session closed between the check and the exchange
            if getattr(self.session, "closing", False):
                raise TransportError(f"{what}: {exc}") from exc
            raise
        finally:
            if reading:
                self.read_s += time.monotonic() - started
                self.read_n += 1
            else:
                self.write_s += time.monotonic() - started
                self.write_n += 1

    async def read(self, paths: Sequence[tuple[int | None, AttributeRef]]) -> ReadResult:
        """One ReadRequest for ``(endpoint or None for a wildcard, attribute)`` paths; values come back as TLV
        (``ReadResult.typed`` and ``AttributeRef.decode_item`` decode them by the schema)."""
        wire = [(endpoint, attribute.cluster_id, attribute.attribute_id) for endpoint, attribute in paths]
        coro = self.client.read(self.session, wire)
        result: ReadResult = await self._run(f"read {', '.join(f'{e}/{a}' for e, a in paths)}", coro, reading=True)
        return result

    async def read_items(self, endpoint: int, attribute: AttributeRef) -> list[Any]:
        """A list attribute's elements decoded by the schema (null reads as []); elements that do not fit it are
        left out (logged): a peer's entry we cannot read is nothing we act on. IMStatusError for a status."""
        return decode_items(attribute, await self.read_list_value(endpoint, attribute), self.node_id)

    async def read_list_value(self, endpoint: int, attribute: AttributeRef) -> list[Any]:
        """A list attribute's elements as the peer sent them (TLV; null reads as [])."""
        return (await self.read_list(endpoint, attribute))[0]

    async def read_list(self, endpoint: int, attribute: AttributeRef) -> tuple[list[Any], int | None]:
        """A list attribute's elements as the peer sent them (TLV, so a read-merge-write gives every element
        it does not change back exactly as read, those our schema cannot decode included; null reads as []) and
        the DataVersion of its cluster in the same report (None if the peer gave none); IMStatusError if the peer
        reported a status for it."""
        result = await self.read([(endpoint, attribute)])
        value = result.value(endpoint, attribute.cluster_id, attribute.attribute_id)
        if value is not None and type(value) is not list:  # a peer's bug: nothing to merge into, so no write
            raise IMStatusError(Status.FAILURE, message=f"{endpoint}/{attribute} is not a list")
        return list(value or []), result.data_versions.get((endpoint, attribute.cluster_id))

    async def write(self, endpoint: int, attribute: AttributeRef, value: Any, *,
                    data_version: int | None = None) -> None:
        """Write one attribute (schema values, or elements as read); with ``data_version``, only if the peer's
        cluster still has that DataVersion (else ``IMStatusError(DATA_VERSION_MISMATCH)``)."""
        what = f"write {endpoint}/{attribute}"
        await self._run(what, self.client.write_attribute(self.session, endpoint, attribute.cluster_id,
                                                          attribute.attribute_id, value, data_version=data_version))

    async def invoke(self, endpoint: int, request: Struct) -> Any:
        """Invoke the command ``request`` is the schema struct of: its response struct decoded by the schema, or
        None (answered SUCCESS). IMStatusError if the peer refused it, or FAILURE (logged) if its response does
        not fit the schema."""
        call, command = command_request(endpoint, request)
        what = f"invoke {endpoint}/0x{call.cluster:04X}/{command.name}"
        result: InvokeResult = await self._run(what, self.client.invoke(self.session, endpoint, call.cluster,
                                                                         call.command, request))
        if result.fields is not None:
            # What the wire would carry: a PeerClient other than InteractionClient (a test's fake peer) may answer
            # with Python values outside the TLV value model (an IntEnum for a uint); responses are small.
            result = dataclasses.replace(result, fields=tlv.decode(tlv.encode(result.fields)))
        try:
            return command_response(command, result)
        except DecodeError as exc:
            log.warning("node %s: %s: the response does not fit the schema: %s", _node(self.node_id), command.name,
                        exc)
            raise IMStatusError(Status.FAILURE, message=f"{command.name} response: {exc}") from exc


def decode_items(attribute: AttributeRef, elements: Sequence[Any], node_id: int | None = None) -> list[Any]:
    """``elements`` of a list attribute decoded by the schema; those that do not fit it are left out (logged)."""
    decoded = []
    for element in elements:
        item = attribute.decode_item(element)
        if item is None:
            log.info("node %s: an element of %s does not fit the schema; ignored", _node(node_id), attribute)
            continue
        decoded.append(item)
    return decoded


def _node(node_id: int | None) -> str:
    return "?" if node_id is None else f"0x{node_id:016X}"


@dataclass(frozen=True, slots=True)
class Capacities:
    """The peer's limits (None: not readable; the node's own answer is then the gate). ``fabric_index`` is our
    fabric's index on the peer (CurrentFabricIndex), carried in the lists we write."""

    acl_entries: int | None = None  # AccessControlEntriesPerFabric (9.10.6.5), includes our admin entry
    subjects: int | None = None  # SubjectsPerAccessControlEntry
    targets: int | None = None  # TargetsPerAccessControlEntry
    max_group_keys: int | None = None  # MaxGroupKeysPerFabric (11.2.6.4), includes the IPK
    max_groups: int | None = None  # MaxGroupsPerFabric (11.2.6.3)
    fabric_index: int | None = None

    PATHS = (
        (0, ac.CLUSTER.attribute(ac.ACCESS_CONTROL_ENTRIES_PER_FABRIC)),
        (0, ac.CLUSTER.attribute(ac.SUBJECTS_PER_ACCESS_CONTROL_ENTRY)),
        (0, ac.CLUSTER.attribute(ac.TARGETS_PER_ACCESS_CONTROL_ENTRY)),
        (0, gkm.CLUSTER.attribute(gkm.MAX_GROUP_KEYS_PER_FABRIC_ATTR)),
        (0, gkm.CLUSTER.attribute(gkm.MAX_GROUPS_PER_FABRIC_ATTR)),
        (0, oc.CLUSTER.attribute(oc.CURRENT_FABRIC_INDEX)),
    )

    @classmethod
    async def read(cls, io: PeerIO) -> Capacities:
        """The limits; unknown ones (a refused read included) are None and the node's answer is the gate."""
        try:
            result = await io.read(cls.PATHS)
        except IMStatusError:
            return cls()
        return cls.from_result(result)

    @classmethod
    def from_result(cls, result: ReadResult, previous: Capacities | None = None) -> Capacities:
        """The limits a report carries (a read's, or a subscription's priming or later report); a limit the
        report does not mention keeps its ``previous`` value, one it reports a status for is unknown (None)."""
        values = []
        for (endpoint, attribute), name in zip(cls.PATHS, _CAPACITY_FIELDS, strict=True):
            try:
                value = result.value(endpoint, attribute.cluster_id, attribute.attribute_id)
            except KeyError:
                value = None if previous is None else getattr(previous, name)
            except IMStatusError:
                value = None
            # Any unsigned integer the peer reports is its limit, even one below the minimum our schema declares
            # for our own server (a peer enforces what it reports).
            values.append(value if type(value) is int else None)
        return cls(*values)


_CAPACITY_FIELDS = ("acl_entries", "subjects", "targets", "max_group_keys", "max_groups", "fabric_index")


@dataclass(frozen=True, slots=True)
class OwnIdentity:
    """Who the reconciler is on the fabric: our operational node id and the CATs of our NOC. An ACL entry
    granting these Administer is what lets us manage the node; the reconciler never removes the last one."""

    node_id: int
    cats: tuple[int, ...] = ()

    def matches(self, subject: int) -> bool:
        if subject == self.node_id:
            return True
        if not acl.is_cat_subject(subject):
            return False
        identifier, version = (subject >> 16) & 0xFFFF, subject & 0xFFFF
        return any(cat >> 16 == identifier and cat & 0xFFFF >= version for cat in self.cats)


class ListView(Protocol):
    """A peer's list attribute (our fabric's entries) as its subscription last reported it (``live.LiveWatch``):
    enough to refuse what cannot fit without reading the list. Never a list to write back (a write always reads
    afresh, with the DataVersion)."""

    def current(self) -> list[Any] | None:
        """The elements as last reported (TLV), or None when not known to be current: no live subscription, no
        report of the list, or a write of ours since the last one."""
        ...

    def wrote(self) -> None:
        """We wrote the list (or may have): not current until the subscription reports it again."""
        ...


@dataclass(slots=True)
class PeerContext:
    """Everything the item kinds need during one pass on one node. ``entries``: the node's entries as planned
    (a facet may check siblings, e.g. whether another endpoint still uses a group); ``cache``: reads shared
    between facets within the pass (the key set indices, the GroupTable, ...; never a list to write back: every
    read-merge-write reads the list afresh, with its DataVersion); ``list_write_attempts``: how many times a
    read-merge-write tries when the list keeps changing under it (DATA_VERSION_MISMATCH); ``acl_view``: the
    peer's ACL as its live subscription reports it (None: no subscription), for the capacity admission."""

    io: PeerIO
    node_id: int
    store: JfdsStore
    entries: list[Entry]
    capacities: Capacities = field(default_factory=Capacities)
    own: OwnIdentity | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    list_write_attempts: int = 3
    acl_view: ListView | None = None
    key_sets: Callable[[int], GroupKeySet | None] | None = None
    """What a key set is pushed as (a rotation's phase, ``rotation.py``); None: its GroupKeySetList value."""

    def key_set(self, key_set_id: int) -> GroupKeySet | None:
        return (self.key_sets or self.store.key_set)(key_set_id)
