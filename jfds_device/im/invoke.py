"""Invokes (Core spec 8.8.3): the batch rules, one command through the IM checks and the provider, and the
chunking of the InvokeResponses.

A command whose fields do not fit its schema answers ``errors.schema_error_status(exc, command=True)``:
INVALID_COMMAND for wrong types and missing fields, CONSTRAINT_ERROR for a value out of range.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from jfds_device.codec import tlv
from jfds_device.errors import ActionError, LocalProtocolError, RequestError, SchemaError, schema_error_status
from jfds_device.im.messages import (
    NULL,
    CommandDataIB,
    CommandPathIB,
    CommandStatusIB,
    InvokeResponse,
    InvokeResponseIB,
    StatusIB,
)
from jfds_device.im.provider import CommandPath, RequestContext, Status
from jfds_device.im.read import AttributeReader, Packer

__all__ = ["command_status_ib", "invoke_command", "invoke_response_payloads", "validate_invoke_batch"]

log = logging.getLogger(__name__)


def command_status_ib(request: CommandDataIB, status: Status, cluster_status: int | None = None) -> tlv.Raw:
    """An InvokeResponseIB carrying a status for ``request`` (Core spec 10.6.14), echoing its CommandRef."""
    ib = CommandStatusIB(
        path=request.path,
        status=StatusIB(status=status, cluster_status=cluster_status),
        command_ref=request.command_ref,
    )
    return tlv.Raw(InvokeResponseIB(status=ib).encode())


def invoke_response_payloads(
    responses: Sequence[tlv.Raw], requests: Sequence[CommandDataIB], max_payload: int
) -> list[bytes]:
    """InvokeResponse messages carrying ``responses``, chunked to ``max_payload`` (Core spec 8.8.3.4: every
    chunk but the last sets MoreChunkedMessages; the client acknowledges each with a StatusResponse). A response
    too big for any message is replaced by a RESOURCE_EXHAUSTED status for its command."""
    frame = InvokeResponse(suppress_response=False, invoke_responses=[], more_chunked_messages=True)
    packer = Packer(max_payload - len(frame.encode()))
    for raw, request in zip(responses, requests, strict=True):
        if not packer.add(raw):
            log.error("the response to %s does not fit in a message", request.path)
            packer.add(command_status_ib(request, Status.RESOURCE_EXHAUSTED))
    chunks = packer.chunks
    return [
        InvokeResponse(
            suppress_response=False,
            invoke_responses=lanes[0],
            more_chunked_messages=True if i < len(chunks) - 1 else None,
        ).encode()
        for i, lanes in enumerate(chunks)
    ]


def validate_invoke_batch(requests: Sequence[CommandDataIB], max_paths: int) -> None:
    """Core spec 8.8.2: unicast invokes name an endpoint; a batch needs distinct CommandRefs and distinct
    paths; more commands than MaxPathsPerInvoke are refused."""
    if not requests or len(requests) > max_paths:
        raise RequestError(Status.INVALID_ACTION, f"{len(requests)} commands in one invoke")
    if any(r.path.endpoint is None for r in requests):
        raise RequestError(Status.INVALID_ACTION, "wildcard endpoint in a unicast invoke")
    if len(requests) > 1:
        refs = [r.command_ref for r in requests]
        if None in refs or len(set(refs)) != len(refs):
            raise RequestError(Status.INVALID_ACTION, "batch commands need distinct CommandRefs")
        if len({(r.path.endpoint, r.path.cluster, r.path.command) for r in requests}) != len(requests):
            raise RequestError(Status.INVALID_ACTION, "the same command path twice in a batch")


def invoke_command(node: AttributeReader, ctx: RequestContext, request: CommandDataIB) -> tlv.Raw:
    """One command: checks in the CHIP SDK's ValidateCommandCanBeDispatched order (existence, access, timed,
    accessing fabric; Core spec 8.8.3.3), then the provider. Returns an encoded InvokeResponseIB."""
    p, provider = request.path, node.provider
    path = CommandPath(p.endpoint, p.cluster, p.command)  # type: ignore[arg-type]  # validated: not None
    cluster = node.find_cluster(path.endpoint, path.cluster)
    if isinstance(cluster, Status):
        return command_status_ib(request, cluster)
    command = cluster.command_by_id.get(path.command)
    if command is None:
        return command_status_ib(request, Status.UNSUPPORTED_COMMAND)
    if not node.allowed(path.endpoint, path.cluster, command.privilege):
        return command_status_ib(request, Status.UNSUPPORTED_ACCESS)
    if command.timed and not ctx.timed:
        return command_status_ib(request, Status.NEEDS_TIMED_INTERACTION)
    if command.fabric_scoped and ctx.subject.fabric_index == 0:
        return command_status_ib(request, Status.UNSUPPORTED_ACCESS)
    # Absent CommandFields means an empty structure; a null one reaches the schema and fails there.
    fields = {} if request.fields is None else (None if request.fields is NULL else request.fields)
    try:
        response = provider.invoke(ctx, path, fields)
    except ActionError as exc:
        return command_status_ib(request, exc.status, exc.cluster_status)
    except SchemaError as exc:
        return command_status_ib(request, schema_error_status(exc, command=True))
    except Exception:
        log.exception("invoke %s failed", path)
        return command_status_ib(request, Status.FAILURE)
    if response is None:
        return command_status_ib(request, Status.SUCCESS)
    data = CommandDataIB(
        path=CommandPathIB(endpoint=path.endpoint, cluster=path.cluster, command=response.command),
        fields=response.fields,
        command_ref=request.command_ref,
    )
    try:
        return tlv.Raw(InvokeResponseIB(command=data).encode())
    except (LocalProtocolError, SchemaError):
        log.exception("invoke %s returned fields that do not encode", path)
        return command_status_ib(request, Status.FAILURE)
