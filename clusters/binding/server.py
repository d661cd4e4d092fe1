"""Binding server (Core spec 9.6) on one endpoint: a fabric-scoped list of targets, each checked on write.

Served by the fleet simulator's peers (``jfds_device/fleet``). TargetStruct presence rules (9.6.5.1): Node needs
Endpoint (and no Group), Group excludes Node and Endpoint, and an entry names a Node or a Group; a write breaking
them is CONSTRAINT_ERROR and changes nothing (the CHIP SDK's binding-server.cpp checks the same per entry).
Capacity: ``max_entries`` per node, all fabrics together (the SDK's binding table, ``MATTER_BINDING_TABLE_SIZE``,
default 10); more is RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

from clusters.binding import schema
from clusters.binding.schema import TargetStruct
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.errors import ActionError
from jfds_device.im.provider import RequestContext, Status

__all__ = ["DEFAULT_BINDING_ENTRIES", "BindingServer"]

DEFAULT_BINDING_ENTRIES = 10


def _valid(target: TargetStruct) -> bool:
    if target.group is not None:
        return target.node is None and target.endpoint is None
    return target.node is not None and target.endpoint is not None


class BindingServer(ClusterServer):
    CLUSTER = schema.CLUSTER

    def __init__(self, *, max_entries: int = DEFAULT_BINDING_ENTRIES) -> None:
        super().__init__()
        self.max_entries = max_entries

    def validate_binding(self, ctx: RequestContext, value: list[TargetStruct]) -> list[TargetStruct]:
        """The accessing fabric's new entries (stamped); the other fabrics' entries are kept beside them."""
        if not all(_valid(t) for t in value):
            raise ActionError(Status.CONSTRAINT_ERROR, message="a binding target breaks the presence rules")
        others = [t for t in self.get(schema.BINDING) if t.fabric_index != ctx.subject.fabric_index]
        if len(others) + len(value) > self.max_entries:
            raise ActionError(Status.RESOURCE_EXHAUSTED, message="the binding table is full")
        return value
