"""Basic Information 0x0028 (Core spec 11.1): mandatory values, writable persisted settings, UniqueID."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from clusters.basic_information import schema
from clusters.basic_information.schema import ColorEnum, ProductAppearanceStruct, ProductFinishEnum
from clusters.basic_information.server import BasicInformationConfig, BasicInformationServer
from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.codec.schema import ConstraintError
from jfds_device.datamodel.node import DeviceType, Node
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import ActionError
from jfds_device.im.provider import AttributePath, ListOperation, RequestContext, Status
from jfds_device.im.provider import SubjectDescriptor as Subject

ROOT = DeviceType(device_type=0x0016, revision=3)
CTX = RequestContext(Subject(AuthMode.CASE, 0x1234, 1))


def make(db: Database | None = None, config: BasicInformationConfig | None = None) -> Node:
    node = Node(db)
    node.add_endpoint(0, [ROOT], [BasicInformationServer(config)])
    return node


def read(node: Node, attribute: int) -> Any:
    return node.read_attribute(CTX, AttributePath(0, schema.CLUSTER_ID, attribute))


def write(node: Node, attribute: int, value: Any) -> None:
    node.write_attribute(CTX, AttributePath(0, schema.CLUSTER_ID, attribute), value, ListOperation.NOT_A_LIST)


def test_mandatory_attributes() -> None:
    node = make()
    assert read(node, schema.DATA_MODEL_REVISION_ID) == 18
    assert read(node, schema.VENDOR_NAME) == "jfds-device"
    assert read(node, schema.VENDOR_ID) == 0xFFF1
    assert read(node, schema.PRODUCT_NAME) == "JFDS Device"
    assert read(node, schema.PRODUCT_ID) == 0x8000
    assert read(node, schema.NODE_LABEL) == ""
    assert read(node, schema.LOCATION) == "XX"
    assert read(node, schema.HARDWARE_VERSION) == 1
    assert read(node, schema.HARDWARE_VERSION_STRING) == "1"
    assert read(node, schema.SOFTWARE_VERSION) == 1
    assert read(node, schema.SOFTWARE_VERSION_STRING) == "0.1.0"
    assert read(node, schema.CAPABILITY_MINIMA) == {0: 3, 1: 3}
    assert read(node, schema.SPECIFICATION_VERSION_ID) == 0x0104_0200  # 1.4.2
    assert read(node, schema.MAX_PATHS_PER_INVOKE) == 1
    assert read(node, schema.LOCAL_CONFIG_DISABLED) is False
    assert re.fullmatch(r"[0-9A-F]{32}", read(node, schema.UNIQUE_ID))
    assert read(node, 0xFFFD) == 5  # the 1.4.2 revision
    assert read(node, 0xFFFB) == [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 18, 19, 21, 22, 0xFFF8, 0xFFF9, 0xFFFB, 0xFFFC, 0xFFFD,
    ]  # fmt: skip
    assert read(node, 0xFFF9) == []


def test_optional_attributes_from_config() -> None:
    appearance = ProductAppearanceStruct(finish=ProductFinishEnum.SATIN, primary_color=ColorEnum.GRAY)
    node = make(config=BasicInformationConfig(serial_number="SN-1", product_appearance=appearance))
    assert read(node, schema.SERIAL_NUMBER) == "SN-1"
    assert read(node, schema.PRODUCT_APPEARANCE) == {0: 2, 1: 7}
    assert schema.PRODUCT_APPEARANCE in read(node, 0xFFFB)


def test_invalid_config_is_refused() -> None:
    with pytest.raises(ConstraintError):
        BasicInformationServer(BasicInformationConfig(vendor_name="x" * 33))
    with pytest.raises(ConstraintError):
        BasicInformationServer(BasicInformationConfig(case_sessions_per_fabric=2))


def test_write_privileges_follow_the_spec() -> None:
    attrs = schema.CLUSTER.attribute_by_id
    assert attrs[schema.NODE_LABEL].write_privilege is Privilege.MANAGE
    assert attrs[schema.LOCATION].write_privilege is Privilege.ADMINISTER
    assert attrs[schema.LOCAL_CONFIG_DISABLED].write_privilege is Privilege.MANAGE
    assert [a.name for a in schema.CLUSTER.attributes if a.writable] == ["NodeLabel", "Location", "LocalConfigDisabled"]


@pytest.mark.parametrize(
    ("attribute", "value", "status"),
    [
        (schema.NODE_LABEL, "x" * 33, Status.CONSTRAINT_ERROR),
        (schema.LOCATION, "USA", Status.CONSTRAINT_ERROR),
        (schema.LOCATION, "U", Status.CONSTRAINT_ERROR),
        (schema.LOCAL_CONFIG_DISABLED, 1, Status.CONSTRAINT_ERROR),
        (schema.VENDOR_NAME, "other", Status.UNSUPPORTED_WRITE),
        (schema.UNIQUE_ID, "other", Status.UNSUPPORTED_WRITE),
    ],
)
def test_write_errors(attribute: int, value: Any, status: Status) -> None:
    with pytest.raises(ActionError) as info:
        write(make(), attribute, value)
    assert info.value.status is status


def test_settings_persist_and_unique_id_is_stable(tmp_path: Path) -> None:
    file = tmp_path / "node.sqlite"
    with Database(file) as db:
        node = make(db)
        unique_id = read(node, schema.UNIQUE_ID)
        write(node, schema.NODE_LABEL, "Kitchen admin")
        write(node, schema.LOCATION, "DE")
        write(node, schema.LOCAL_CONFIG_DISABLED, True)
    with Database(file) as db:
        node = make(db)
        assert read(node, schema.UNIQUE_ID) == unique_id
        assert read(node, schema.NODE_LABEL) == "Kitchen admin"
        assert read(node, schema.LOCATION) == "DE"
        assert read(node, schema.LOCAL_CONFIG_DISABLED) is True
        assert node.server_of(0, BasicInformationServer).local_config_disabled
    with Database(tmp_path / "other.sqlite") as db:
        assert read(make(db), schema.UNIQUE_ID) != unique_id  # random per node, not derived


def test_node_label_write_bumps_version() -> None:
    node = make()
    version = node.data_version(0, schema.CLUSTER_ID)
    write(node, schema.NODE_LABEL, "a")
    assert node.data_version(0, schema.CLUSTER_ID) == (version + 1) & 0xFFFF_FFFF
    assert node.server_of(0, BasicInformationServer).node_label == "a"
