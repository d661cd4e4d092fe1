"""The one error tree (jfds_device/errors.py): whose fault each error is and which status it becomes, the one
mapping of schema errors to statuses, and the one Privilege and AuthMode every layer shares."""

from __future__ import annotations

import pytest

from clusters.access_control import schema as ac
from clusters.joint_fabric_datastore import schema as jfds
from jfds_device import errors
from jfds_device.codec import schema
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.datastore import jfds_records
from jfds_device.errors import Status
from jfds_device.im import provider
from jfds_device.transport import sessions

DATASTORE_STATUSES = [
    (errors.DatastoreError, Status.FAILURE),
    (errors.NotBootstrappedError, Status.INVALID_IN_STATE),
    (errors.WrongStateError, Status.FAILURE),
    (errors.DuplicateEntryError, Status.CONSTRAINT_ERROR),
    (errors.EntryNotFoundError, Status.NOT_FOUND),
    (errors.InvalidEntryError, Status.CONSTRAINT_ERROR),
]


@pytest.mark.parametrize(("cls", "status"), DATASTORE_STATUSES)
def test_datastore_refusals_carry_their_status(cls: type[errors.DatastoreError], status: Status) -> None:
    error = cls("refused")
    assert isinstance(error, errors.MatterError) and error.status == status
    assert getattr(jfds_records, cls.__name__) is cls  # the datastore raises the tree's classes


def test_capacity_error_is_resource_exhausted_and_names_its_table() -> None:
    error = errors.CapacityError(jfds_records.Table.NODES, 1024)
    assert error.status == Status.RESOURCE_EXHAUSTED and "1024" in str(error) and error.limit == 1024


def test_statuses_travel_in_the_errors_that_become_them() -> None:
    action = errors.ActionError(Status.FAILURE, 0x02)
    assert (action.status, action.cluster_status) == (Status.FAILURE, 0x02)
    assert str(action) == "FAILURE (cluster status 0x02)"
    refused = errors.IMStatusError(0x92, message="write 1/0x001E/0x0000")
    assert str(refused) == "write 1/0x001E/0x0000: DATA_VERSION_MISMATCH" and refused.status == 0x92
    assert str(errors.IMStatusError(0x42)) == "0x42"  # a status we do not know by name
    request = errors.RequestError(Status.INVALID_ACTION, "ListIndex in a read path")
    assert isinstance(request, errors.RemoteProtocolError) and request.status == Status.INVALID_ACTION
    too_large = errors.ReportTooLargeError(3000, 2000, 3)
    assert isinstance(too_large, errors.RemoteProtocolError) and too_large.status == Status.RESOURCE_EXHAUSTED
    assert errors.TransportError("no route").status == Status.TIMEOUT
    assert errors.TransportError("busy", Status.BUSY).status == Status.BUSY
    assert errors.InteractionError("timeout").status is None  # nobody answered: no status of its own
    assert errors.LocalProtocolError("misuse").status is None
    assert errors.TLVDecodeError("truncated").status == Status.INVALID_ACTION
    assert errors.RemoteProtocolError("bad", 0x85).status == 0x85


def test_the_caller_and_the_peer_see_distinct_classes() -> None:
    """A cluster's answer (ActionError) and a peer's refusal of our request (IMStatusError) share StatusError but
    never catch each other."""
    assert issubclass(errors.ActionError, errors.StatusError) and issubclass(errors.IMStatusError, errors.StatusError)
    assert not issubclass(errors.ActionError, errors.IMStatusError)
    assert not issubclass(errors.IMStatusError, errors.ActionError)


SCHEMA_STATUSES = [  # (error, for a write, for a command)
    (schema.WrongTypeError, Status.CONSTRAINT_ERROR, Status.INVALID_COMMAND),
    (schema.MissingFieldError, Status.CONSTRAINT_ERROR, Status.INVALID_COMMAND),
    (schema.ConstraintError, Status.CONSTRAINT_ERROR, Status.CONSTRAINT_ERROR),
    (errors.SchemaError, Status.CONSTRAINT_ERROR, Status.INVALID_COMMAND),
]


@pytest.mark.parametrize(("cls", "write", "command"), SCHEMA_STATUSES)
def test_schema_error_status_is_the_one_mapping(cls: type[errors.SchemaError], write: Status, command: Status) -> None:
    assert errors.schema_error_status(cls("x"), command=False) == write
    assert errors.schema_error_status(cls("x"), command=True) == command
    assert getattr(errors, cls.__name__) is cls  # codec.schema raises the tree's classes


def test_an_out_of_range_command_field_is_constraint_error_a_wrong_type_invalid_command() -> None:
    with pytest.raises(errors.SchemaError) as wrong_type:
        ac.AccessControlEntryStruct.from_tlv({1: "x", 2: 2, 3: None, 4: None})
    with pytest.raises(errors.SchemaError) as out_of_range:
        ac.AccessControlEntryStruct.from_tlv({1: 9, 2: 2, 3: None, 4: None})
    assert errors.schema_error_status(wrong_type.value, command=True) == Status.INVALID_COMMAND
    assert errors.schema_error_status(out_of_range.value, command=True) == Status.CONSTRAINT_ERROR


def test_one_privilege_and_one_auth_mode() -> None:
    assert ac.AccessControlEntryPrivilegeEnum is Privilege and jfds.AccessControlEntryPrivilege is Privilege
    assert ac.AccessControlEntryAuthModeEnum is AuthMode and jfds.AccessControlEntryAuthMode is AuthMode
    assert provider.Status is Status and provider.AuthMode is AuthMode
    assert sessions.SessionAuthMode is AuthMode  # the old name of the same enum
    decoded = ac.AccessControlEntryStruct.from_tlv({1: 5, 2: 2, 3: [1], 4: None})
    assert decoded.privilege is Privilege.ADMINISTER and decoded.auth_mode is AuthMode.CASE
    assert jfds.AccessControlEntry.from_tlv({1: 3, 2: 3, 3: [0x0101], 4: None}).privilege is Privilege.OPERATE
