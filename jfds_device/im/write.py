"""Writes (Core spec 8.7.3): one AttributeDataIB at a time through the IM checks and the provider.

A value that does not fit its attribute answers ``errors.schema_error_status(exc, command=False)``:
CONSTRAINT_ERROR for every decode failure (wrong TLV type, missing struct field, out of range).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Final

from jfds_device.codec.model import Privilege
from jfds_device.errors import ActionError, SchemaError, schema_error_status
from jfds_device.im.messages import (
    NULL,
    AttributeDataIB,
)
from jfds_device.im.provider import AttributePath, ListOperation, RequestContext, Status
from jfds_device.im.read import AttributeReader

__all__ = ["SUCCESS", "Outcome", "WriteSession"]

log = logging.getLogger(__name__)

Outcome = tuple[Status, int | None]
SUCCESS: Final[Outcome] = (Status.SUCCESS, None)


@dataclass(slots=True, eq=False)
class WriteSession:
    """One write interaction, possibly chunked over several WriteRequests (Core spec 8.7.3).

    ``take`` runs one AttributeDataIB through the checks and the provider; the server groups the IBs of a
    message into one data-model transaction."""

    session_id: int
    timed: bool
    # The attribute of the last IB taken up: appends must continue it (the CHIP SDK's WriteHandler answers
    # BUSY to an append whose list was not begun in this interaction; Core spec 8.7.3.3 chunked lists).
    processing: AttributePath | None = None
    # Lists replaced earlier in this interaction: their appends skip the DataVersion check, since the
    # replace itself bumped the version the client read (the SDK client's chunked list writes rely on it).
    replaced: set[AttributePath] = field(default_factory=set)
    # Access granted earlier in this interaction, per attribute and privilege. The decision is taken once per
    # attribute per write interaction, as the CHIP SDK's WriteHandler caches it (mACLCheckCache): a chunked list
    # write of the ACL (replace-all with [], then appends) must not lock its own writer out half-way.
    granted: set[tuple[AttributePath, Privilege]] = field(default_factory=set)

    def take(self, node: AttributeReader, ctx: RequestContext, ib: AttributeDataIB, busy: bool) -> Outcome:
        path = AttributePath(ib.path.endpoint, ib.path.cluster, ib.path.attribute)
        append = ib.path.list_index is NULL
        if busy or (append and path != self.processing):
            return (Status.BUSY, None)
        self.processing = path
        if ib.path.list_index is not None and not append:
            return (Status.INVALID_ACTION, None)  # a numeric ListIndex is reserved (Core spec 10.6.2)
        cluster = node.find_cluster(path.endpoint, path.cluster)
        if isinstance(cluster, Status):
            return (cluster, None)
        if path.attribute not in node.attribute_ids(path.endpoint, path.cluster):
            return (Status.UNSUPPORTED_ATTRIBUTE, None)
        attribute = cluster.attribute_by_id.get(path.attribute)
        # The CHIP SDK's WriteHandler::CheckWriteAllowed order: writability before access (its TC_AccessChecker
        # expects UNSUPPORTED_WRITE for a read-only attribute), then timed. Globals are read-only.
        if attribute is None or not attribute.writable:
            return (Status.UNSUPPORTED_WRITE, None)
        provider, subject = node.provider, ctx.subject
        grant = (path, attribute.write_privilege)
        if grant not in self.granted:
            if not provider.allowed(subject, path.endpoint, path.cluster, attribute.write_privilege):
                return (Status.UNSUPPORTED_ACCESS, None)
            self.granted.add(grant)
        if attribute.timed_write and not ctx.timed:
            return (Status.NEEDS_TIMED_INTERACTION, None)
        if attribute.fabric_scoped and subject.fabric_index == 0:
            return (Status.UNSUPPORTED_ACCESS, None)  # no accessing fabric (Core spec 8.7.3.2)
        if append and not attribute.is_list:
            return (Status.INVALID_ACTION, None)
        checks_version = ib.data_version is not None and not (append and path in self.replaced)
        if checks_version and ib.data_version != provider.data_version(path.endpoint, path.cluster):
            return (Status.DATA_VERSION_MISMATCH, None)
        if append:
            op = ListOperation.APPEND
        else:
            op = ListOperation.REPLACE if attribute.is_list else ListOperation.NOT_A_LIST
        try:
            provider.write_attribute(ctx, path, None if ib.data is NULL else ib.data, op)
        except ActionError as exc:
            return (exc.status, exc.cluster_status)
        except SchemaError as exc:
            return (schema_error_status(exc, command=False), None)
        except Exception:
            log.exception("write_attribute %s failed", path)
            return (Status.FAILURE, None)
        if op is ListOperation.REPLACE:
            self.replaced.add(path)
        return SUCCESS
