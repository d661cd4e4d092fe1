"""RefreshNode's read and adoption (reconciler/refresh.py) against the fake peer: what the node holds is read through
the cluster schemas; elements that do not fit them are not adopted (and logged), a stage whose attribute is not
what the schema says fails alone, and the rest is adopted as Committed."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from clusters.descriptor import schema as descriptor
from clusters.joint_fabric_datastore.schema import BindingTarget, DatastoreState
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.jfds_records import EntryKind
from jfds_device.errors import Status
from jfds_device.reconciler.peer import PeerIO
from jfds_device.reconciler.refresh import RefreshReport, adopt, read_node
from tests.reconciler.fakes import FABRIC, FakePeer, admin_entries, new_store

NODE = 0x0000_0000_0000_0002


@pytest.fixture
def store() -> JfdsStore:
    s = new_store()
    s.add_node(NODE, "light")
    return s


async def refresh(store: JfdsStore, peer: FakePeer) -> Any:
    report = RefreshReport()
    image = await read_node(PeerIO(peer, peer.session, node_id=NODE), report)
    adopt(store, NODE, image, report)
    return image, report


async def test_refresh_adopts_what_fits_the_schemas_and_logs_the_rest(store: JfdsStore,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jfds_device.reconciler")
    peer = FakePeer(acl=[*admin_entries(), {1: 9, 2: 2, 3: [0x77], 4: None, 0xFE: FABRIC}])  # privilege 9: unknown
    peer.bindings[1] = [{1: 0x3344, 3: 1, 4: 6, 0xFE: FABRIC},
                        {2: 0, 0xFE: FABRIC}]  # group 0 is no group: does not fit TargetStruct
    peer.memberships[1][0x0101] = "Kitchen"
    image, report = await refresh(store, peer)
    assert report.ok, report.failures
    assert image.endpoints == {0, 1} and image.groups == {(1, 0x0101)} and image.key_sets == set()
    assert [e.ref.key for e in store.entries(EntryKind.ENDPOINT_GROUP, node_id=NODE)] == [0x0101]
    [kept] = store.entries(EntryKind.BINDING, node_id=NODE)
    assert kept.value.binding == BindingTarget(node=0x3344, endpoint=1, cluster=6)
    assert kept.state is DatastoreState.COMMITTED
    acl = [e.value.acl_entry.subjects for e in store.entries(EntryKind.ACL, node_id=NODE)]
    assert sorted(map(tuple, acl)) == sorted(tuple(e[3]) for e in admin_entries())  # not the unknown privilege's
    text = caplog.text
    assert "does not fit the Binding schema; not adopted" in text and "cannot be represented; not adopted" in text


async def test_a_stage_whose_attribute_is_not_a_list_fails_alone(store: JfdsStore) -> None:
    class Garbled(FakePeer):
        def _attribute(self, ep: int, cluster: int, attribute: int) -> Any:
            if (cluster, attribute) == (descriptor.CLUSTER_ID, descriptor.PARTS_LIST):
                return 7
            return super()._attribute(ep, cluster, attribute)

    peer = Garbled()
    peer.memberships[1][0x0101] = "Kitchen"
    image, report = await refresh(store, peer)
    assert report.failures == [("endpoints", Status.FAILURE)]
    assert image.endpoints is None and image.groups == {(1, 0x0101)}  # the other stages went on


async def test_a_key_set_index_response_that_does_not_fit_fails_the_key_set_stage(store: JfdsStore,
                                                                                   caplog: pytest.LogCaptureFixture
                                                                                   ) -> None:
    class BadIndices(FakePeer):
        def _KeySetReadAllIndices(self, _: int, fields: dict[int, Any]) -> dict[int, Any]:
            return {0: "not a list"}

    caplog.set_level(logging.WARNING, logger="jfds_device.reconciler.peer")
    image, report = await refresh(store, BadIndices())
    assert report.failures == [("key_sets", Status.FAILURE)] and image.key_sets is None
    assert "KeySetReadAllIndices: the response does not fit the schema" in caplog.text
