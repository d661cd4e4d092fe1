"""The Groups and Binding schemas the reconciler uses on peers, checked against the CHIP SDK's generated objects
(chip.clusters.Objects, home-assistant-chip-clusters 2025.7.0): cluster ids, command and attribute ids, field
tags; plus TLV round trips through the SDK's own encoder."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.binding import schema as binding
from clusters.group_key_management import schema as gkm
from clusters.groups import schema as groups
from clusters.joint_fabric_datastore.schema import GroupKeyMulticastPolicy
from jfds_device.codec import tlv
from jfds_device.reconciler.facets_groups import group_name, key_set_write_request
from tests.reconciler.fakes import key_set

Objects = pytest.importorskip("chip.clusters.Objects", reason="home-assistant-chip-clusters is not installed")


def tags(chip_class: Any) -> dict[str, int]:
    return {f.Label: f.Tag for f in chip_class.descriptor.Fields}


def ours(struct_class: Any) -> dict[str, int]:
    return {f.name: f.tag for f in struct_class.FIELDS}


def test_groups_ids_and_tags_match_the_sdk() -> None:
    sdk = Objects.Groups
    assert sdk.id == groups.CLUSTER_ID
    assert sdk.Attributes.NameSupport.attribute_id == groups.NAME_SUPPORT
    pairs = [("AddGroup", groups.AddGroup), ("AddGroupResponse", groups.AddGroupResponse),
             ("ViewGroup", groups.ViewGroup), ("ViewGroupResponse", groups.ViewGroupResponse),
             ("GetGroupMembership", groups.GetGroupMembership),
             ("GetGroupMembershipResponse", groups.GetGroupMembershipResponse),
             ("RemoveGroup", groups.RemoveGroup), ("RemoveGroupResponse", groups.RemoveGroupResponse),
             ("RemoveAllGroups", groups.RemoveAllGroups), ("AddGroupIfIdentifying", groups.AddGroupIfIdentifying)]
    by_name = {c.name: c for c in groups.CLUSTER.commands}
    for name, struct_class in pairs:
        chip_class = getattr(sdk.Commands, name)
        assert sorted(tags(chip_class).values()) == sorted(ours(struct_class).values()), name
        if not name.endswith("Response"):
            assert by_name[name].id == chip_class.command_id, name
            if by_name[name].response is not None:
                assert by_name[name].response_id == getattr(sdk.Commands, f"{name}Response").command_id


def test_binding_ids_and_tags_match_the_sdk() -> None:
    sdk = Objects.Binding
    assert sdk.id == binding.CLUSTER_ID and sdk.Attributes.Binding.attribute_id == binding.BINDING
    assert tags(sdk.Structs.TargetStruct) == {"node": 1, "group": 2, "endpoint": 3, "cluster": 4, "fabricIndex": 254}
    assert sorted(ours(binding.TargetStruct).values()) == [1, 2, 3, 4, 254]


def test_our_encodings_decode_in_the_sdk() -> None:
    from chip.clusters.Types import NullValue
    from chip.tlv import TLVReader

    target = binding.TargetStruct(node=0x3344, endpoint=1, cluster=6)
    decoded = Objects.Binding.Structs.TargetStruct.FromTLV(target.encode())
    assert (decoded.node, decoded.endpoint, decoded.cluster, decoded.group) == (0x3344, 1, 6, None)

    add = Objects.Groups.Commands.AddGroup.FromTLV(groups.AddGroup(group_id=0x101, group_name="Kitchen").encode())
    assert (add.groupID, add.groupName) == (0x101, "Kitchen")

    # KeySetWrite as the reconciler sends it (tag 8 only for AllNodes).
    fields = key_set_write_request(key_set(0x42)).to_tlv()
    sdk = bytes(Objects.GroupKeyManagement.Commands.KeySetWrite(
        groupKeySet=Objects.GroupKeyManagement.Structs.GroupKeySetStruct(
            groupKeySetID=0x42, groupKeySecurityPolicy=0, epochKey0=b"\xa0" * 16, epochStartTime0=2220000,
            epochKey1=NullValue, epochStartTime1=NullValue, epochKey2=NullValue, epochStartTime2=NullValue)).ToTLV())
    assert TLVReader(tlv.encode(fields)).get()["Any"] == TLVReader(sdk).get()["Any"]
    all_nodes = key_set(0x43)
    all_nodes = type(all_nodes)(**{**{f.name: getattr(all_nodes, f.name) for f in all_nodes.FIELDS},
                                   "group_key_multicast_policy": GroupKeyMulticastPolicy.ALL_NODES})
    assert key_set_write_request(all_nodes).to_tlv()[0][8] == 1
    assert Objects.GroupKeyManagement.Commands.KeySetWrite.command_id == gkm.KEY_SET_WRITE


def test_group_names_are_cut_to_sixteen_bytes_on_a_character_boundary() -> None:
    assert group_name("Kitchen") == "Kitchen"
    assert group_name("x" * 32) == "x" * 16
    assert group_name("Küche und Wohnzimmer") == "Küche und Wohnz"  # ü is 2 bytes: 15 characters fit
    assert len(group_name("ééééééééé").encode()) == 16
