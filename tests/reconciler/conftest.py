"""Fixtures the reconciler tests share."""

from __future__ import annotations

import pytest

from jfds_device.datastore.jfds import JfdsStore
from tests.reconciler.fakes import new_store

PEER_NODE = 2  # FakePeer's node id


@pytest.fixture
def store() -> JfdsStore:
    """A datastore holding the fake peer's node with its endpoints 0 and 1."""
    s = new_store()
    s.add_node(PEER_NODE, "peer")
    s.sync_endpoints(PEER_NODE, [0, 1])
    return s
