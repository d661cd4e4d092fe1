"""The endpoint tree: implements ``im.provider.DataModelProvider`` over mounted ``ClusterServer``s.

Responsibilities (the data model layer of the README's Architecture table):

* endpoints with device types, and the ``NodeStructure`` view of them a Descriptor server derives its lists from
  (endpoint 0's PartsList lists every other endpoint, Core spec 9.2.1; other endpoints list their descendants,
  the "full-family" pattern). Every endpoint gets the servers ``endpoint_servers`` makes for it: the node's
  layout passes the Descriptor server there (Core spec 9.5: every endpoint has one), so this layer does not
  import a cluster server. Mounted servers hear ``structure_changed()`` whenever an endpoint or server is added;
* ascending listings, so the IM engine can expand wildcards by walking them;
* atomicity: ``atomic()`` groups changes into one storage transaction (a savepoint when nested) and an
  in-memory undo journal; change notifications are held until the outermost block commits, so a
  subscriber never sees a value that was rolled back. A write interaction (``begin_write``/``end_write``)
  is one such block, and every single write and invoke runs in a nested one;
* ``allowed()`` asks the cluster instance whether it serves the subject at all (``ClusterServer.serves``:
  the Joint Fabric Datastore serves only its anchor fabric), then the ACL engine (``datamodel.acl``) over the
  entries an ``AclSource`` (the AccessControl cluster) provides.

A transaction must not stay open across an ``await``: counter reservations (``Database.reserve``) refuse
to run inside one. The IM engine handles one request message synchronously, so this holds by design.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from clusters.descriptor.schema import DeviceTypeStruct
from jfds_device.codec.model import ClusterDef, EventDef, Privilege
from jfds_device.datamodel import acl
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import ActionError, LocalProtocolError
from jfds_device.im.events import EventStore
from jfds_device.im.provider import (
    AttributePath,
    ChangeListener,
    CommandPath,
    CommandResponse,
    ListOperation,
    RequestContext,
    Status,
    SubjectDescriptor,
)

__all__ = ["ATTRIBUTE_NAMESPACE", "AclSource", "DeviceType", "Endpoint", "EndpointServers", "Node"]

DeviceType = DeviceTypeStruct  # DeviceType(device_type=0x0016, revision=3)

# Key/value namespace of persisted attribute values; keys are "<endpoint>/<cluster>/<attribute>" in hex.
ATTRIBUTE_NAMESPACE = "attribute"
MAX_ENDPOINT = 0xFFFE

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ClusterServer)


class AclSource(Protocol):
    """Where the access check gets its entries from (the AccessControl server)."""

    def acl_entries(self) -> Sequence[acl.AclEntry]: ...


EndpointServers = Callable[["Node"], Iterable[ClusterServer]]
"""The servers every endpoint gets, made anew for each endpoint from the tree (the Descriptor server)."""


def _no_endpoint_servers(_tree: Node) -> Iterable[ClusterServer]:
    return ()


class Endpoint:
    """One endpoint: its device types, client cluster ids, parent, and mounted servers by cluster id."""

    __slots__ = ("client_clusters", "device_types", "id", "parent", "servers")

    def __init__(
        self, endpoint_id: int, device_types: Sequence[DeviceType], client_clusters: Iterable[int], parent: int | None
    ) -> None:
        self.id = endpoint_id
        self.device_types = tuple(device_types)
        self.client_clusters = tuple(sorted(set(client_clusters)))
        self.parent = parent
        self.servers: dict[int, ClusterServer] = {}


class Node:
    """The data model of this node. Pass ``db=None`` for a memory-only node (tests, tools).

    ``endpoint_servers`` makes the servers every endpoint gets before its own (the layout passes
    ``lambda tree: [DescriptorServer(tree)]``); none by default.
    """

    def __init__(self, db: Database | None = None, *, endpoint_servers: EndpointServers = _no_endpoint_servers) -> None:
        self._db = db
        self._endpoint_servers = endpoint_servers
        self._endpoints: dict[int, Endpoint] = {}
        self._listeners: list[ChangeListener] = []
        self._acl_source: AclSource | None = None
        # Undo journal of the open atomic block(s); None when no block is open.
        self._journal: list[tuple[AttributePath, Callable[[], None]]] | None = None
        self._levels = 0
        self._write: tuple[int, int] | None = None
        self._events: EventStore | None = None
        self._now_ms: Callable[[], int] = lambda: 0

    # ------------------------------------------------------------------------------------------ structure

    def add_endpoint(
        self,
        endpoint_id: int,
        device_types: Sequence[DeviceType],
        servers: Iterable[ClusterServer] = (),
        *,
        client_clusters: Iterable[int] = (),
        parent: int | None = None,
    ) -> Endpoint:
        """Create an endpoint with the servers every endpoint gets plus ``servers``; returns it.

        ``parent`` places it under another endpoint (composed devices); None means directly under the
        node, i.e. listed only in endpoint 0's PartsList.
        """
        if not 0 <= endpoint_id <= MAX_ENDPOINT or endpoint_id in self._endpoints:
            raise LocalProtocolError(f"endpoint {endpoint_id} is invalid or exists")
        if not device_types:
            raise LocalProtocolError("an endpoint needs at least one device type (Core spec 9.5.6.1)")
        if parent is not None and (parent not in self._endpoints or endpoint_id == 0):
            raise LocalProtocolError(f"parent endpoint {parent} does not exist")
        endpoint = Endpoint(endpoint_id, device_types, client_clusters, parent)
        self._endpoints[endpoint_id] = endpoint
        try:
            with self.atomic():
                for server in (*self._endpoint_servers(self), *servers):
                    self._mount(endpoint, server)
                self._structure_changed()
        except BaseException:
            del self._endpoints[endpoint_id]
            raise
        return endpoint

    def add_server(self, endpoint_id: int, server: ClusterServer) -> None:
        """Mount one more server on an existing endpoint (e.g. JFDS/JFA on endpoint 1)."""
        endpoint = self._endpoints.get(endpoint_id)
        if endpoint is None:
            raise LocalProtocolError(f"endpoint {endpoint_id} does not exist")
        with self.atomic():
            self._mount(endpoint, server)
            self._structure_changed()

    def _mount(self, endpoint: Endpoint, server: ClusterServer) -> None:
        if server.cluster_id in endpoint.servers:
            raise LocalProtocolError(f"endpoint {endpoint.id} already has cluster 0x{server.cluster_id:04x}")
        endpoint.servers[server.cluster_id] = server
        server.attach(endpoint.id, self)

    def _structure_changed(self) -> None:
        for endpoint in self._endpoints.values():
            for server in endpoint.servers.values():
                server.structure_changed()

    def endpoint(self, endpoint_id: int) -> Endpoint | None:
        return self._endpoints.get(endpoint_id)

    def server(self, endpoint_id: int, cluster_id: int) -> ClusterServer | None:
        endpoint = self._endpoints.get(endpoint_id)
        return None if endpoint is None else endpoint.servers.get(cluster_id)

    def server_of(self, endpoint_id: int, server_type: type[S]) -> S:
        """The mounted server of type ``server_type`` on ``endpoint_id`` (LocalProtocolError if none)."""
        found = self.server(endpoint_id, server_type.CLUSTER.id)
        if not isinstance(found, server_type):
            raise LocalProtocolError(f"endpoint {endpoint_id} has no {server_type.__name__}")
        return found

    def attach_events(self, store: EventStore, now_ms: Callable[[], int]) -> None:
        """Where the servers' events go, and the system time (ms since boot) they are stamped with."""
        self._events, self._now_ms = store, now_ms

    def emit_event(
        self, endpoint: int, cluster: int, event: EventDef, data: dict[int, Any], fabric_index: int | None
    ) -> None:
        if self._events is None:
            log.debug("no event store: event %#x of cluster %#x not recorded", event.id, cluster)
            return
        self._events.emit(endpoint, cluster, event.id, event.priority, data, self._now_ms(), fabric_index=fabric_index)

    def set_acl_source(self, source: AclSource | None) -> None:
        self._acl_source = source

    # NodeStructure (what Descriptor servers read)

    def device_types(self, endpoint: int) -> Sequence[DeviceType]:
        found = self._endpoints.get(endpoint)
        return () if found is None else found.device_types

    def device_type_ids(self, endpoint: int) -> frozenset[int]:
        return frozenset(d.device_type for d in self.device_types(endpoint))

    def server_cluster_ids(self, endpoint: int) -> Sequence[int]:
        found = self._endpoints.get(endpoint)
        return () if found is None else sorted(found.servers)

    def client_cluster_ids(self, endpoint: int) -> Sequence[int]:
        found = self._endpoints.get(endpoint)
        return () if found is None else found.client_clusters

    def parts(self, endpoint: int) -> Sequence[int]:
        if endpoint == 0:
            return sorted(e for e in self._endpoints if e != 0)
        return sorted(e for e in self._endpoints if e != endpoint and self._descends_from(e, endpoint))

    def _descends_from(self, endpoint: int, ancestor: int) -> bool:
        parent = self._endpoints[endpoint].parent
        while parent is not None:
            if parent == ancestor:
                return True
            parent = self._endpoints[parent].parent
        return False

    # ------------------------------------------------------------------------------------------ ClusterHost

    @staticmethod
    def _key(endpoint: int, cluster: int, attribute: int) -> str:
        return f"{endpoint:04x}/{cluster:08x}/{attribute:08x}"

    def load_attribute(self, endpoint: int, cluster: int, attribute: int) -> bytes | None:
        if self._db is None:
            return None
        return self._db.get(ATTRIBUTE_NAMESPACE, self._key(endpoint, cluster, attribute))

    def store_attribute(self, endpoint: int, cluster: int, attribute: int, data: bytes) -> None:
        if self._db is not None:
            self._db.put(ATTRIBUTE_NAMESPACE, self._key(endpoint, cluster, attribute), data)

    def attribute_changed(self, endpoint: int, cluster: int, attribute: int, undo: Callable[[], None]) -> None:
        path = AttributePath(endpoint, cluster, attribute)
        if self._journal is None:
            self._notify([path])
        else:
            self._journal.append((path, undo))

    # ------------------------------------------------------------------------------------------ atomicity

    def _begin(self) -> tuple[int, int]:
        """Open a level; returns (journal mark, storage depth of this level, 0 without storage)."""
        depth = 0
        if self._db is not None:
            self._db.begin()
            depth = self._db.transaction_depth
        if self._journal is None:
            self._journal = []
        self._levels += 1
        return len(self._journal), depth

    def _close_level(self) -> list[AttributePath]:
        """Leave a level; at the outermost one, hand back the changed paths to report."""
        self._levels -= 1
        if self._levels or self._journal is None:
            return []
        journal, self._journal = self._journal, None
        return list(dict.fromkeys(path for path, _ in journal))

    def _rollback(self, mark: int, depth: int) -> None:
        try:
            if self._db is not None and self._db.transaction_depth >= depth > 0:
                self._db.rollback()
        finally:
            journal = self._journal if self._journal is not None else []
            for _, undo in reversed(journal[mark:]):
                undo()
            del journal[mark:]
            self._close_level()

    def _commit(self, mark: int, depth: int) -> None:
        try:
            if self._db is not None:
                self._db.commit()
        except BaseException:
            # Storage lost this level; memory must not keep it either.
            self._rollback(mark, depth)
            raise
        paths = self._close_level()
        if paths:
            self._notify(paths)

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """All changes inside commit together (storage and memory) or not at all."""
        mark, depth = self._begin()
        try:
            yield
        except BaseException:
            self._rollback(mark, depth)
            raise
        self._commit(mark, depth)

    def _notify(self, paths: list[AttributePath]) -> None:
        for listener in list(self._listeners):
            listener.attributes_changed(paths)

    # ------------------------------------------------------------------------------------------ provider

    def endpoints(self) -> Sequence[int]:
        return sorted(self._endpoints)

    def clusters(self, endpoint: int) -> Sequence[ClusterDef]:
        found = self._endpoints.get(endpoint)
        return [] if found is None else [found.servers[c].CLUSTER for c in sorted(found.servers)]

    def attribute_ids(self, endpoint: int, cluster: int) -> Sequence[int]:
        found = self.server(endpoint, cluster)
        return [] if found is None else found.attribute_ids()

    def accepted_command_ids(self, endpoint: int, cluster: int) -> Sequence[int]:
        """Commands the instance implements (for wildcard invoke checks); not part of the protocol."""
        found = self.server(endpoint, cluster)
        return [] if found is None else found.accepted_command_ids()

    def data_version(self, endpoint: int, cluster: int) -> int:
        return self._resolve(endpoint, cluster).data_version

    def _resolve(self, endpoint: int, cluster: int) -> ClusterServer:
        found = self._endpoints.get(endpoint)
        if found is None:
            raise ActionError(Status.UNSUPPORTED_ENDPOINT)
        server = found.servers.get(cluster)
        if server is None:
            raise ActionError(Status.UNSUPPORTED_CLUSTER)
        return server

    def read_attribute(self, ctx: RequestContext, path: AttributePath) -> Any:
        return self._resolve(path.endpoint, path.cluster).read(ctx, path.attribute)

    def write_attribute(self, ctx: RequestContext, path: AttributePath, value: Any, op: ListOperation) -> None:
        server = self._resolve(path.endpoint, path.cluster)
        with self.atomic():
            server.write(ctx, path.attribute, value, op)

    def invoke(self, ctx: RequestContext, path: CommandPath, fields: Any) -> CommandResponse | None:
        server = self._resolve(path.endpoint, path.cluster)
        with self.atomic():
            return server.invoke(ctx, path.command, fields)

    def allowed(self, subject: SubjectDescriptor, endpoint: int, cluster: int, privilege: Privilege) -> bool:
        server = self.server(endpoint, cluster)
        if server is not None and not server.serves(subject):
            return False
        entries = self._acl_source.acl_entries() if self._acl_source is not None else ()
        return acl.check(entries, subject, endpoint, cluster, privilege, self.device_type_ids(endpoint))

    def begin_write(self) -> None:
        if self._write is not None:
            raise LocalProtocolError("a write interaction is already open")
        self._write = self._begin()

    def end_write(self) -> None:
        if self._write is None:
            raise LocalProtocolError("end_write() without begin_write()")
        mark, depth = self._write
        self._write = None
        self._commit(mark, depth)

    def abort_write(self) -> None:
        """Undo everything since ``begin_write`` (e.g. the request failed as a whole). Not in the protocol."""
        if self._write is None:
            raise LocalProtocolError("abort_write() without begin_write()")
        mark, depth = self._write
        self._write = None
        self._rollback(mark, depth)

    def subscribe_changes(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def unsubscribe_changes(self, listener: ChangeListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)
