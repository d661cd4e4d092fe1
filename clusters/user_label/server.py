"""User Label server: the schema says everything; a list beyond MAX_LABELS answers RESOURCE_EXHAUSTED."""

from __future__ import annotations

from typing import Any

from clusters.user_label import schema
from jfds_device.datamodel.cluster import ClusterServer
from jfds_device.errors import ActionError
from jfds_device.im.provider import RequestContext, Status


class UserLabelServer(ClusterServer):
    CLUSTER = schema.CLUSTER

    def validate_label_list(self, ctx: RequestContext, value: list[Any]) -> list[Any]:
        # "No room" is RESOURCE_EXHAUSTED (Core spec 9.9.4.1), not the CONSTRAINT_ERROR a schema bound would give.
        if len(value) > schema.MAX_LABELS:
            raise ActionError(Status.RESOURCE_EXHAUSTED)
        return value
