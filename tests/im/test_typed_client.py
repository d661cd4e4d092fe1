"""The typed client: requests, values and responses named by the cluster schemas (``codec.model.AttributeRef``,
``command_of``; ``im.client_messages.command_request`` / ``command_response`` / ``ReadResult.typed``;
``InteractionClient.send_command`` / ``read_value`` / ``write_value``), against our InteractionServer sans-IO (the
e2e suite runs them against matter.js: tests/e2e/test_case_initiator.py). The same schema tables serve both
sides, so a value written typed reads back equal."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any

import pytest

import clusters
from clusters.access_control import schema as ac
from clusters.access_control.server import AccessControlServer
from clusters.basic_information import schema as bi
from clusters.group_key_management import schema as gkm
from clusters.group_key_management.server import GroupKeyManagementServer
from clusters.groups import schema as groups
from jfds_device.codec import tlv
from jfds_device.codec.model import AuthMode, Privilege, command_of
from jfds_device.codec.schema import NULL
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.errors import DecodeError, IMStatusError, LocalProtocolError
from jfds_device.im import client_messages as cm
from jfds_device.im import interactions as ci
from jfds_device.im.client import InteractionClient
from jfds_device.im.provider import CommandPath, ListOperation, RequestContext, Status, SubjectDescriptor
from jfds_device.im.server import InteractionServer

ROOT = DeviceType(device_type=0x0016, revision=3)
ADMIN = 0x0000_0000_0001_B669
ACL = ac.CLUSTER.attribute(ac.ACL)
KEY_SET = b"\xa5" * 16


def admin_ctx(fabric: int = 1) -> RequestContext:
    return RequestContext(SubjectDescriptor(AuthMode.CASE, ADMIN, fabric))


def admin_entry() -> ac.AccessControlEntryStruct:
    return ac.AccessControlEntryStruct(privilege=Privilege.ADMINISTER, auth_mode=AuthMode.CASE, subjects=[ADMIN],
                                       targets=NULL)


def view_entry(subject: int) -> ac.AccessControlEntryStruct:
    return ac.AccessControlEntryStruct(privilege=Privilege.VIEW, auth_mode=AuthMode.CASE, subjects=[subject],
                                       targets=NULL)


@pytest.fixture
def im() -> InteractionServer:
    """A node with AccessControl (holding our admin entry on fabric 1) and GroupKeyManagement."""
    node = Node()
    access = AccessControlServer()
    node.add_endpoint(0, [ROOT], [access, GroupKeyManagementServer()])
    node.set_acl_source(access)
    node.write_attribute(admin_ctx(), cm.AttributePath(0, ac.CLUSTER_ID, ac.ACL), [admin_entry().to_tlv()],
                         ListOperation.REPLACE)
    return InteractionServer(node)


def converse(server: InteractionServer, interaction: ci.Interaction, ctx: RequestContext) -> None:
    """Run a client interaction against the server on one exchange (sans-IO, as tests/im/test_client.py does)."""
    step: ci.Send | None = interaction.start()
    while step is not None:
        outs = server.on_message(1, ctx, step.opcode, step.payload, 0.0)
        if not step.expect_response:
            break
        [out] = outs
        step = interaction.receive(out.opcode, out.payload)


def read(im: InteractionServer, *paths: cm.PathLike) -> cm.ReadResult:
    interaction = ci.ReadInteraction(cm.build_read_request(paths))
    converse(im, interaction, admin_ctx())
    assert interaction.done, interaction.error
    result: cm.ReadResult = interaction.result
    return result


def invoke(im: InteractionServer, request: Any) -> Any:
    call, command = cm.command_request(0, request)
    interaction = ci.InvokeInteraction(cm.build_invoke_request([call]))
    converse(im, interaction, admin_ctx())
    assert interaction.done, interaction.error
    [result] = interaction.result
    return cm.command_response(command, result)


def write(im: InteractionServer, value: Any, data_version: int | None) -> cm.AttributeStatus:
    writes = [cm.AttributeWrite(0, ACL.cluster_id, ACL.attribute_id, value, data_version)]
    interaction = ci.WriteInteraction(cm.build_write_requests(writes))
    converse(im, interaction, admin_ctx())
    assert interaction.done, interaction.error
    [status] = cm.summarize_write(writes, interaction.result)
    return status


# ---------------------------------------------------------------------------------------------- schema lookups


def test_a_request_struct_names_its_cluster_and_command() -> None:
    cluster, command = command_of(groups.AddGroup(group_id=0x101, group_name="Kitchen"))
    assert (cluster.id, command.id, command.response) == (groups.CLUSTER_ID, groups.ADD_GROUP, groups.AddGroupResponse)
    cluster, command = command_of(gkm.KeySetRemove(group_key_set_id=3))
    assert (cluster.id, command.id, command.response) == (gkm.CLUSTER_ID, gkm.KEY_SET_REMOVE, None)
    with pytest.raises(LocalProtocolError, match="not the request of a known command"):
        command_of(gkm.GroupKeyMapStruct(group_id=1, group_key_set_id=1))
    with pytest.raises(LocalProtocolError, match="no attribute"):
        ac.CLUSTER.attribute(0x0042)


def test_the_provisional_multicast_policy_rides_in_key_set_write_and_never_shows_keys() -> None:
    extended = gkm.GroupKeySetWithMulticastPolicy(
        group_key_set_id=7, group_key_security_policy=gkm.GroupKeySecurityPolicyEnum.TRUST_FIRST,
        epoch_key0=KEY_SET, epoch_start_time0=1, epoch_key1=NULL, epoch_start_time1=NULL, epoch_key2=NULL,
        epoch_start_time2=NULL, group_key_multicast_policy=gkm.GroupKeyMulticastPolicyEnum.ALL_NODES)
    call, command = cm.command_request(0, gkm.KeySetWrite(group_key_set=extended))
    assert (call.cluster, call.command, command.id) == (gkm.CLUSTER_ID, gkm.KEY_SET_WRITE, gkm.KEY_SET_WRITE)
    fields = call.fields.to_tlv()[0]
    assert sorted(fields) == list(range(9)) and fields[8] == 1  # the base struct's tags 0..7, then 8 = ALL_NODES
    [ib] = tlv.decode(cm.build_invoke_request([call]))[2]  # InvokeRequests (Core spec 10.7.9)
    assert ib[1][0][8] == 1  # CommandFields.GroupKeySet.GroupKeyMulticastPolicy on the wire
    assert KEY_SET.hex() not in repr(extended) and str(KEY_SET) not in repr(extended)


def test_decode_item_keeps_out_what_does_not_fit_the_schema() -> None:
    assert ACL.decode_item(admin_entry().to_tlv()) == admin_entry()
    assert ACL.decode_item({1: 9, 2: 2, 3: None, 4: None}) is None  # privilege 9 is not a Privilege
    assert ACL.decode_item("garbage") is None
    with pytest.raises(LocalProtocolError):
        bi.CLUSTER.attribute(bi.NODE_LABEL).decode_item("x")  # not a list attribute


def test_command_response_decodes_refuses_and_reports_bad_responses() -> None:
    cluster, command = command_of(groups.AddGroup(group_id=1, group_name=""))
    path = CommandPath(1, cluster.id, command.response_id or 0)
    response = cm.command_response(command, cm.InvokeResult(path, fields={0: Status.SUCCESS.value, 1: 0x101}))
    assert response == groups.AddGroupResponse(status=0, group_id=0x101)
    assert cm.command_response(command, cm.InvokeResult(path)) is None  # answered SUCCESS without data
    with pytest.raises(IMStatusError) as refused:
        cm.command_response(command, cm.InvokeResult(path, Status.UNSUPPORTED_ACCESS))
    assert refused.value.status == Status.UNSUPPORTED_ACCESS
    with pytest.raises(DecodeError):
        cm.command_response(command, cm.InvokeResult(path, fields={1: 0x101}))  # Status missing


# ---------------------------------------------------------------------------------------------- sans-IO, server


def test_typed_read_gives_schema_values_with_the_one_privilege_enum(im: InteractionServer) -> None:
    result = read(im, (0, ACL.cluster_id, ACL.attribute_id), (0, ac.CLUSTER_ID, ac.SUBJECTS_PER_ACCESS_CONTROL_ENTRY))
    [entry] = result.typed(0, ACL)
    assert isinstance(entry, ac.AccessControlEntryStruct) and entry.subjects == [ADMIN] and entry.fabric_index == 1
    assert entry.privilege is Privilege.ADMINISTER and entry.auth_mode is AuthMode.CASE
    assert result.typed(0, ac.CLUSTER.attribute(ac.SUBJECTS_PER_ACCESS_CONTROL_ENTRY)) == 4
    with pytest.raises(KeyError):
        result.typed(0, ac.CLUSTER.attribute(ac.TARGETS_PER_ACCESS_CONTROL_ENTRY))  # not asked for


def test_typed_write_is_conditioned_on_the_data_version_it_read(im: InteractionServer) -> None:
    first = read(im, (0, ACL.cluster_id, ACL.attribute_id))
    version = first.data_versions[(0, ac.CLUSTER_ID)]
    ours = [*first.typed(0, ACL), view_entry(0x55)]
    assert write(im, ours, version).ok
    stale = write(im, [*ours, view_entry(0x66)], version)  # the list changed since that read
    assert stale.status == Status.DATA_VERSION_MISMATCH
    after = read(im, (0, ACL.cluster_id, ACL.attribute_id))
    assert [e.subjects for e in after.typed(0, ACL)] == [[ADMIN], [0x55]]
    assert after.data_versions[(0, ac.CLUSTER_ID)] != version


def test_typed_commands_round_trip_through_the_server(im: InteractionServer) -> None:
    assert invoke(im, gkm.KeySetReadAllIndices()) == gkm.KeySetReadAllIndicesResponse(group_key_set_ids=[])
    key_set = gkm.GroupKeySetStruct(
        group_key_set_id=0x42, group_key_security_policy=gkm.GroupKeySecurityPolicyEnum.TRUST_FIRST,
        epoch_key0=KEY_SET, epoch_start_time0=2220000, epoch_key1=NULL, epoch_start_time1=NULL, epoch_key2=NULL,
        epoch_start_time2=NULL)
    assert invoke(im, gkm.KeySetWrite(group_key_set=key_set)) is None  # SUCCESS, no response struct
    response = invoke(im, gkm.KeySetReadAllIndices())
    assert isinstance(response, gkm.KeySetReadAllIndicesResponse) and response.group_key_set_ids == [0x42]
    read_back = invoke(im, gkm.KeySetRead(group_key_set_id=0x42))
    assert read_back.group_key_set.group_key_set_id == 0x42 and read_back.group_key_set.epoch_key0 is NULL
    with pytest.raises(IMStatusError) as refused:
        invoke(im, gkm.KeySetRemove(group_key_set_id=0x43))
    assert refused.value.status == Status.NOT_FOUND


# ---------------------------------------------------------------------------------------------- the asyncio client


class ServerBackedClient(InteractionClient):
    """The asyncio client with its exchange driving replaced by a straight conversation with our server: what
    ``send_command`` / ``read_value`` / ``write_value`` build and parse is all that is left to test here (the
    exchange driving has its own tests, and the e2e suite runs the typed client against matter.js)."""

    def __init__(self, server: InteractionServer) -> None:
        super().__init__(None, None)  # type: ignore[arg-type]  # no endpoint, no router: _run is replaced
        self.server = server

    async def _run(self, session: Any, interaction: ci.Interaction) -> Any:
        converse(self.server, interaction, admin_ctx())
        if interaction.error is not None:
            raise interaction.error
        assert interaction.done
        return interaction.result


async def test_send_command_read_value_and_write_value(im: InteractionServer) -> None:
    client = ServerBackedClient(im)
    assert await client.read_value(None, 0, ACL) == [dataclasses.replace(admin_entry(), fabric_index=1)]
    assert await client.send_command(None, 0, gkm.KeySetReadAllIndices()) == gkm.KeySetReadAllIndicesResponse(
        group_key_set_ids=[])
    with pytest.raises(IMStatusError) as refused:
        await client.send_command(None, 0, gkm.KeySetRemove(group_key_set_id=0))
    assert refused.value.status == Status.INVALID_COMMAND  # key set 0 is the IPK
    with pytest.raises(IMStatusError) as absent:
        await client.send_command(None, 0, groups.RemoveGroup(group_id=1))  # no Groups server here
    assert absent.value.status == Status.UNSUPPORTED_CLUSTER

    version = (await client.read(None, [(0, ACL.cluster_id, ACL.attribute_id)])).data_versions[(0, ac.CLUSTER_ID)]
    with pytest.raises(IMStatusError) as stale:
        await client.write_value(None, 0, ACL, [admin_entry(), view_entry(0x55)], data_version=version + 1)
    assert stale.value.status == Status.DATA_VERSION_MISMATCH
    await client.write_value(None, 0, ACL, [admin_entry(), view_entry(0x55)], data_version=version)
    assert [e.subjects for e in await client.read_value(None, 0, ACL)] == [[ADMIN], [0x55]]


# ---------------------------------------------------------------------------------------------- every schema


def _cluster_defs() -> list[Any]:
    found = []
    for info in pkgutil.iter_modules(clusters.__path__):
        module = importlib.import_module(f"clusters.{info.name}.schema")
        found.append(module.CLUSTER)
    return found


def test_every_command_of_every_cluster_is_found_from_its_request() -> None:
    """The request struct alone names its cluster and command: no two commands share a request class."""
    commands = [(cluster, command) for cluster in _cluster_defs() for command in cluster.commands]
    assert len(commands) > 40
    for cluster, command in commands:
        request = object.__new__(command.request)  # the lookup goes by type only
        assert command_of(request) == (cluster, command), f"{cluster.name}.{command.name}"


def test_every_attribute_of_every_cluster_has_its_ref() -> None:
    for cluster in _cluster_defs():
        for definition in cluster.attributes:
            ref = cluster.attribute(definition.id)
            assert (ref.cluster_id, ref.attribute_id, ref.definition) == (cluster.id, definition.id, definition)
            assert str(ref) == f"{cluster.name}.{definition.name}"


def test_typed_values_of_a_report(im: InteractionServer) -> None:
    result = read(im, (0, ACL.cluster_id, ACL.attribute_id), (0, ac.CLUSTER_ID, 0x0042))
    with pytest.raises(IMStatusError) as missing:
        result.typed(0, dataclasses.replace(ACL, definition=dataclasses.replace(ACL.definition, id=0x0042)))
    assert missing.value.status == Status.UNSUPPORTED_ATTRIBUTE
    assert ACL.decode(None) is None  # a top-level null
    with pytest.raises(DecodeError):
        ACL.decode(7)  # not a list
