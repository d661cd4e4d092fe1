"""The typed schema layer: round trips of every JFDS/JFA struct and the typed errors for bad values."""

from __future__ import annotations

import contextlib
import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusters.joint_fabric_administrator import schema as jfa
from clusters.joint_fabric_datastore import schema as jfds
from jfds_device.codec import schema, tlv
from jfds_device.codec.schema import NULL, ConstraintError, MissingFieldError, WrongTypeError
from jfds_device.errors import DecodeError, SchemaError
from tests.strategies import for_struct

ALL_STRUCTS = sorted(
    {
        value
        for module in (jfds, jfa)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, schema.Struct) and value is not schema.Struct
    },
    key=lambda c: c.__name__,
)


@pytest.mark.parametrize("cls", ALL_STRUCTS, ids=lambda c: c.__name__)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_round_trip(cls: type[schema.Struct], data: st.DataObject) -> None:
    value = data.draw(for_struct(cls))
    assert cls.decode(value.encode()) == value


class Color(enum.IntEnum):
    RED = 1
    GREEN = 2


class Flags(enum.IntFlag):
    A = 1
    B = 4


@schema.struct
class Sample(schema.Struct):
    count: int = schema.field(0, schema.UInt(8, 1, 100))
    name: str = schema.field(1, schema.Str(max_length=4))
    color: Color = schema.field(2, schema.Enum(Color))
    flags: Flags = schema.field(3, schema.Bitmap(Flags), default=Flags.A)
    offset: int = schema.field(4, schema.INT16, default=0)
    label: Any = schema.field(5, schema.Str(), optional=True, nullable=True)
    blob: Any = schema.field(6, schema.Octets(min_length=2, max_length=2), nullable=True)


@schema.struct
class Ordered(schema.Struct):
    TAGS_ASCENDING = True
    a: int = schema.field(1, schema.UINT8)
    b: int = schema.field(2, schema.UINT8)


GOOD = {0: 5, 1: "ab", 2: 1, 3: 5, 4: tlv.SInt(-3), 6: b"xy"}


def with_(**changes: Any) -> dict[int, Any]:
    out = dict(GOOD)
    for tag, value in changes.items():
        index = int(tag[1:])
        if value is ...:
            out.pop(index)
        else:
            out[index] = value
    return out


def test_good_value_decodes_and_absent_optional_is_none() -> None:
    value = Sample.from_tlv(GOOD)
    assert value == Sample(count=5, name="ab", color=Color.RED, flags=Flags.A | Flags.B, offset=-3, blob=b"xy")
    assert value.label is None
    assert Sample.from_tlv(value.to_tlv()) == value


def test_null_and_absent_stay_distinct() -> None:
    value = Sample.from_tlv(with_(t5=None))
    assert value.label is NULL
    assert 5 in value.to_tlv() and value.to_tlv()[5] is None
    assert 5 not in Sample.from_tlv(GOOD).to_tlv()


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (with_(t0=tlv.SInt(5)), WrongTypeError),  # signed where unsigned is declared
        (with_(t0="5"), WrongTypeError),
        (with_(t1=b"ab"), WrongTypeError),  # octets where a string is declared
        (with_(t4=4), WrongTypeError),  # unsigned where signed is declared
        (with_(t0=None), WrongTypeError),  # null in a non-nullable field
        (with_(t0=...), MissingFieldError),
        (with_(t6=...), MissingFieldError),  # nullable but not optional: must be present
        (with_(t0=0), ConstraintError),
        (with_(t0=101), ConstraintError),
        (with_(t1="abcde"), ConstraintError),
        (with_(t1="ééé"), ConstraintError),  # 6 bytes: limits count bytes
        (with_(t2=3), ConstraintError),  # not an enum member
        (with_(t3=2), ConstraintError),  # undefined bitmap bit
        (with_(t6=b"x"), ConstraintError),
        ([1, 2], WrongTypeError),
    ],
)
def test_bad_values_raise_typed_errors(raw: Any, error: type[SchemaError]) -> None:
    with pytest.raises(error):
        Sample.from_tlv(raw)


def test_unknown_tags_are_ignored() -> None:
    assert Sample.from_tlv({**GOOD, 200: "future"}) == Sample.from_tlv(GOOD)


def test_canonical_order_where_the_schema_demands_it() -> None:
    assert Ordered.from_tlv({1: 1, 2: 2}) == Ordered(a=1, b=2)
    with pytest.raises(SchemaError):
        Ordered.from_tlv({2: 2, 1: 1})
    assert Sample.from_tlv(dict(reversed(GOOD.items()))) == Sample.from_tlv(GOOD)


def test_encoding_validates_too() -> None:
    with pytest.raises(ConstraintError):
        Sample(count=0, name="a", color=Color.RED, blob=NULL).encode()
    with pytest.raises(WrongTypeError):
        Sample(count="1", name="a", color=Color.RED, blob=NULL).encode()
    with pytest.raises(ConstraintError):
        Sample(count=1, name="a", color=7, blob=NULL).encode()
    with pytest.raises(MissingFieldError):
        Sample(count=1, name=None, color=Color.RED, blob=NULL).encode()


def test_jfds_epoch_keys_are_exactly_16_bytes() -> None:
    key_set = jfds.GroupKeySet(
        group_key_set_id=1,
        group_key_security_policy=jfds.GroupKeySecurityPolicy.TRUST_FIRST,
        epoch_key0=bytes(15),
        epoch_start_time0=1,
        group_key_multicast_policy=jfds.GroupKeyMulticastPolicy.PER_GROUP_ID,
    )
    with pytest.raises(ConstraintError):
        key_set.encode()


def test_struct_classes_must_declare_fields() -> None:
    with pytest.raises(TypeError):

        @schema.struct
        class Broken(schema.Struct):
            x: int = 3


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_only_raise_decode_errors(data: bytes) -> None:
    for cls in (jfds.ACLEntry, jfds.AddGroup, jfds.GroupKeySet):
        with contextlib.suppress(DecodeError):
            cls.decode(data)
