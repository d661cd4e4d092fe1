"""Tests for jfds_device.codec.tlv (Matter TLV, Core spec Appendix A).

Reference vectors: 56 published encodings, the Core spec TLV appendix examples (as project-chip/rs-matter
rs-matter/src/tlv/write.rs @ ce693b88c582 tests them) and connectedhomeip
src/controller/python/test/unit_tests/test_tlv.py @ 0cf902257fbe; ``VECTORS`` names the source of each group.
Values are written in the codec's value model: unsigned = int, signed = SInt, Float32 / float, struct = dict,
array = list, list = TLVList of pairs.
"""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jfds_device.codec import tlv
from jfds_device.codec.tlv import CommonTag, Float32, ImplicitTag, ProfileTag, Raw, SInt, TLVList
from jfds_device.errors import LocalProtocolError, TLVDecodeError

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a: object, b: object) -> bool:
    """Structural equality that also demands identical Python types all the way down.

    Plain ``==`` is too lax here: ``SInt(1) == 1``, ``Float32(0.5) == 0.5``, ``TLVList() == []``,
    ``True == 1`` and ``CommonTag(1) == ImplicitTag(1)`` are all true.
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, float):  # bitwise, so that -0.0 and 0.0 differ
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, list | tuple):  # list, TLVList, (tag, value) pairs, CommonTag / ImplicitTag / ProfileTag
        return len(a) == len(b) and all(map(same, a, b))
    return a == b


# -------------------- vectors

FQ = 0xFFF1, 0xDEED  # vendor id, profile of the spec's fully-qualified tag examples
FQ1 = ProfileTag(*FQ, 1)

# Every published vector, grouped by source: (hex encoding, tag, value). All are minimal-width encodings, so each
# is checked in both directions (none of the 56 uses a deliberately non-minimal width).
VECTORS = [
    # Source: project-chip/rs-matter rs-matter/src/tlv/write.rs @ ce693b88c582, test_matter_spec_examples
    # (the examples of the Matter Core spec TLV appendix).
    pytest.param("08", None, False, id="spec-bool-false"),
    pytest.param("09", None, True, id="spec-bool-true"),
    pytest.param("002a", None, SInt(42), id="spec-sint8-42"),
    pytest.param("00ef", None, SInt(-17), id="spec-sint8-minus17"),
    pytest.param("042a", None, 42, id="spec-uint8-42"),
    pytest.param("01a601", None, SInt(422), id="spec-sint16-422"),
    pytest.param("02f067fdff", None, SInt(-170000), id="spec-sint32-minus170000"),
    pytest.param("0300902f5009000000", None, SInt(40000000000), id="spec-sint64-40e9"),
    pytest.param("0c0648656c6c6f21", None, "Hello!", id="spec-utf8-hello"),
    pytest.param("0c0754736368c3bc73", None, "Tschüs", id="spec-utf8-tschuess"),
    pytest.param("10050001020304", None, b"\x00\x01\x02\x03\x04", id="spec-octets"),
    pytest.param("14", None, None, id="spec-null"),
    pytest.param("0a00000000", None, Float32(0.0), id="spec-f32-zero"),
    pytest.param("0aabaaaa3e", None, Float32(0.3333333432674408), id="spec-f32-third"),
    pytest.param("0a33338f41", None, Float32(17.899999618530273), id="spec-f32-17.9"),
    pytest.param("0a0000807f", None, Float32(math.inf), id="spec-f32-inf"),
    pytest.param("0a000080ff", None, Float32(-math.inf), id="spec-f32-minus-inf"),
    pytest.param("0b0000000000000000", None, 0.0, id="spec-f64-zero"),
    pytest.param("0b555555555555d53f", None, 1 / 3, id="spec-f64-third"),
    pytest.param("0b6666666666e63140", None, 17.9, id="spec-f64-17.9"),
    pytest.param("0b000000000000f07f", None, math.inf, id="spec-f64-inf"),
    pytest.param("0b000000000000f0ff", None, -math.inf, id="spec-f64-minus-inf"),
    pytest.param("1518", None, {}, id="spec-empty-struct"),
    pytest.param("1618", None, [], id="spec-empty-array"),
    pytest.param("1718", None, TLVList(), id="spec-empty-list"),
    pytest.param("1520002a2001ef18", None, {0: SInt(42), 1: SInt(-17)}, id="spec-struct-ctx"),
    pytest.param("160000000100020003000418", None, [SInt(i) for i in range(5)], id="spec-array-sint8"),
    pytest.param(
        "17000120002a000200032000ef18",
        None,
        TLVList([(None, SInt(1)), (0, SInt(42)), (None, SInt(2)), (None, SInt(3)), (0, SInt(-17))]),
        id="spec-list-mixed-tags",
    ),
    pytest.param(
        "16002a02f067fdff15180a33338f410c0648656c6c6f2118",
        None,
        [SInt(42), SInt(-170000), {}, Float32(17.899999618530273), "Hello!"],
        id="spec-array-mixed",
    ),
    pytest.param("24012a", 1, 42, id="spec-ctx-tag"),
    pytest.param("4401002a", CommonTag(1), 42, id="spec-common2-tag"),
    pytest.param("64a08601002a", CommonTag(100000), 42, id="spec-common4-tag"),
    pytest.param("c4f1ffedde01002a", FQ1, 42, id="spec-fq6-tag"),
    pytest.param("e4f1ffeddeedfe55aa2a", ProfileTag(*FQ, 0xAA55FEED), 42, id="spec-fq8-tag"),
    pytest.param("d5f1ffedde0100c4f1ffedde55aa2a18", FQ1, {ProfileTag(*FQ, 0xAA55): 42}, id="spec-fq-struct"),
    # Source: project-chip/connectedhomeip src/controller/python/test/unit_tests/test_tlv.py @ 0cf902257fbe,
    # TestTLVWriter / TestTLVReader (integer width rules: smallest width that holds the value).
    pytest.param("03fe00caefbeadde00", None, SInt(0xDEADBEEFCA00FE), id="chip-sint64"),
    pytest.param("02efbead7c", None, SInt(0x7CADBEEF), id="chip-sint32"),
    pytest.param("01ad7c", None, SInt(0x7CAD), id="chip-sint16"),
    pytest.param("007c", None, SInt(0x7C), id="chip-sint8"),
    pytest.param("03abaaaaaaaaaaaaaa", None, SInt(-0x5555555555555555), id="chip-sint64-neg"),
    pytest.param("02abaaaaaa", None, SInt(-0x55555555), id="chip-sint32-neg"),
    pytest.param("01abaa", None, SInt(-0x5555), id="chip-sint16-neg"),
    pytest.param("00ab", None, SInt(-0x55), id="chip-sint8-neg"),
    pytest.param("03efbeadde00000000", None, SInt(0xDEADBEEF), id="chip-sint-widen-to-64"),
    pytest.param("02adde0000", None, SInt(0xDEAD), id="chip-sint-widen-to-32"),
    pytest.param("01ad00", None, SInt(0xAD), id="chip-sint-widen-to-16"),
    pytest.param("0356555555ffffffff", None, SInt(-0xAAAAAAAA), id="chip-sint-neg-widen-to-64"),
    pytest.param("025655ffff", None, SInt(-0xAAAA), id="chip-sint-neg-widen-to-32"),
    pytest.param("0156ff", None, SInt(-0xAA), id="chip-sint-neg-widen-to-16"),
    pytest.param("07fe0000caefbeadde", None, 0xDEADBEEFCA0000FE, id="chip-uint64"),
    pytest.param("06efbeadde", None, 0xDEADBEEF, id="chip-uint32"),
    pytest.param("05adde", None, 0xDEAD, id="chip-uint16"),
    pytest.param("04de", None, 0xDE, id="chip-uint8"),
    # Same file, TestTLVReader.test_structure: nested struct / array / list (attribute report shape).
    pytest.param(
        "1536011535012600bfa2551637012402002403282404001824020118181818",
        None,
        {1: [{1: {0: 374710975, 1: TLVList([(2, 0), (3, 40), (4, 0)]), 2: 1}}]},
        id="chip-report-uint",
    ),
    pytest.param(
        "1536011535012600bfa255163701240200240328240401182c02184e6f726469632053656d69636f6e647563746f7220415341"
        "18181818",
        None,
        {1: [{1: {0: 374710975, 1: TLVList([(2, 0), (3, 40), (4, 1)]), 2: "Nordic Semiconductor ASA"}}]},
        id="chip-report-str",
    ),
    pytest.param(
        "153601153501260019e67887370124020124030624040018280218181818",
        None,
        {1: [{1: {0: 2272847385, 1: TLVList([(2, 1), (3, 6), (4, 0)]), 2: False}}]},
        id="chip-report-bool",
    ),
]


def test_vector_count() -> None:
    assert len(VECTORS) == 56


@pytest.mark.parametrize(("hexstr", "tag", "value"), VECTORS)
def test_vector_decodes(hexstr: str, tag: tlv.Tag, value: object) -> None:
    assert same(tlv.decode_element(bytes.fromhex(hexstr)), (tag, value))


@pytest.mark.parametrize(("hexstr", "tag", "value"), VECTORS)
def test_vector_encodes(hexstr: str, tag: tlv.Tag, value: object) -> None:
    assert tlv.encode(value, tag).hex() == hexstr


# Integer width boundaries: 2^k - 1, 2^k, 2^k + 1 and their negations.
EDGES = sorted({s * 2**k + d for k in (7, 8, 15, 16, 31, 32, 63, 64) for s in (1, -1) for d in (-1, 0, 1)})


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("n", EDGES)
def test_integer_width_is_minimal(n: int, signed: bool) -> None:
    ranges = {w: (-(1 << 8 * w - 1), 1 << 8 * w - 1) if signed else (0, 1 << 8 * w) for w in (1, 2, 4, 8)}
    widths = [w for w, (lo, hi) in ranges.items() if lo <= n < hi]
    value = SInt(n) if signed else n
    if not widths:
        with pytest.raises(LocalProtocolError):
            tlv.encode(value)
    else:
        data = tlv.encode(value)
        assert len(data) == 1 + widths[0]
        assert same(tlv.decode(data), value)


# String length and tag form boundaries.
@pytest.mark.parametrize(
    ("value", "tag", "prefix"),
    [
        ("x" * 255, None, "0cff78"),
        ("x" * 256, None, "0d000178"),
        (b"\0" * 0x10000, None, "120000010000"),
        (False, 255, "28ff"),
        (False, CommonTag(0xFFFF), "48ffff"),
        (False, CommonTag(0x10000), "6800000100"),
        (False, ImplicitTag(0xFFFF), "88ffff"),
        (False, ImplicitTag(0x10000), "a800000100"),
        (False, ProfileTag(1, 2, 0xFFFF), "c801000200ffff"),
        (False, ProfileTag(1, 2, 0x10000), "e80100020000000100"),
    ],
)
def test_minimal_lengths_and_tags(value: object, tag: tlv.Tag, prefix: str) -> None:
    data = tlv.encode(value, tag)
    assert data.hex().startswith(prefix)
    assert same(tlv.decode_element(data), (tag, value))


def test_nan_round_trips_as_nan() -> None:  # NaN != NaN, so it is kept out of the round-trip property
    for value in (Float32(math.nan), math.nan):
        decoded = tlv.decode(tlv.encode(value))
        assert type(decoded) is type(value)
        assert math.isnan(decoded)


@pytest.mark.parametrize(
    ("hexstr", "tag", "value"),
    [
        ("0d02006869", None, "hi"),  # 2-byte length for a 2-byte string
        ("070000000000000000", None, 0),  # uint64 holding 0
        ("030100000000000000", None, SInt(1)),  # int64 holding 1
        ("6801000000", CommonTag(1), False),  # 4-byte common tag holding a 2-byte number
        ("e80100020003000000", ProfileTag(1, 2, 3), False),  # 8-byte fully-qualified tag, small number
    ],
)
def test_non_minimal_widths_decode(hexstr: str, tag: tlv.Tag, value: object) -> None:
    # Decoders must accept every width (only the encoder is minimal); re-encoding then comes out shorter.
    data = bytes.fromhex(hexstr)
    assert same(tlv.decode_element(data), (tag, value))
    assert len(tlv.encode(value, tag)) < len(data)


def test_struct_with_common_and_implicit_tag_of_same_number() -> None:
    # Common-profile tag 1 and implicit-profile tag 1 are different tags (A.2), so this structure is valid.
    members = tlv.decode(bytes.fromhex("1548010088010018"))  # {Matter::1 = false, implicit 1 = false}
    assert [type(k) for k in members] == [CommonTag, ImplicitTag]


# -------------------- round trip

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
member_tags = st.one_of(
    st.integers(0, 255),
    st.builds(CommonTag, u32),
    st.builds(ImplicitTag, u32),
    st.builds(ProfileTag, u16, u16, u32),
)
tags = st.none() | member_tags
scalars = st.one_of(
    st.integers(0, (1 << 64) - 1),
    st.integers(-(1 << 63), (1 << 63) - 1).map(SInt),
    st.booleans(),
    st.floats(width=32, allow_nan=False).map(Float32),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.none(),
)


def _containers(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(
        st.dictionaries(member_tags, children, max_size=4),
        st.lists(children, max_size=4),
        st.lists(st.tuples(tags, children), max_size=4).map(TLVList),
    )


trees = st.recursive(scalars, _containers, max_leaves=12)


@FAST
@given(trees, tags)
def test_round_trip(value: object, tag: tlv.Tag) -> None:
    data = tlv.encode(value, tag)
    decoded_tag, decoded = tlv.decode_element(data)
    assert same((decoded_tag, decoded), (tag, value))
    assert tlv.encode(decoded, decoded_tag) == data
    assert same(tlv.decode(memoryview(bytearray(data))), value)


def test_max_depth_boundary() -> None:
    ok, too_deep = (b"\x16" * d + b"\x18" * d for d in (tlv.MAX_DEPTH, tlv.MAX_DEPTH + 1))
    assert tlv.encode(tlv.decode(ok)) == ok
    with pytest.raises(TLVDecodeError):
        tlv.decode(too_deep)


# -------------------- raw splicing


@FAST
@given(trees, tags)
def test_raw_spliced_under_any_tag(value: object, tag: tlv.Tag) -> None:
    raw = Raw(tlv.encode(value))
    assert tlv.encode(raw, tag) == tlv.encode(value, tag)
    assert tlv.encode({7: raw}) == tlv.encode({7: value})
    assert tlv.encode([raw]) == tlv.encode([value])
    assert tlv.encode(TLVList([(tag, raw)])) == tlv.encode(TLVList([(tag, value)]))


@pytest.mark.parametrize("tag", [None, 5, CommonTag(9), ImplicitTag(1 << 20), FQ1, ProfileTag(*FQ, 1 << 20)])
def test_raw_examples(tag: tlv.Tag) -> None:
    for value in (42, SInt(-1), "Hello!", {0: SInt(42), 1: [1, 2]}, TLVList([(None, 1), (0, None)])):
        assert tlv.encode(Raw(tlv.encode(value)), tag) == tlv.encode(value, tag)


# -------------------- hostile input


def decode_or_reject(data: bytes) -> None:
    """Decoding may succeed or raise TLVDecodeError; any other exception fails the test."""
    with contextlib.suppress(TLVDecodeError):
        tlv.decode_element(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    decode_or_reject(data)


SOUP = b"\x00\x04\x07\x0c\x0f\x10\x13\x15\x16\x17\x18\x24\x35\x36\x37\xff"  # containers, lengths, tags


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(SOUP), max_size=40))
def test_fuzz_control_byte_soup(data: list[int]) -> None:  # reaches nested / truncated containers more
    decode_or_reject(bytes(data))


@FAST
@given(trees, tags, st.data())
def test_fuzz_mutated_encodings(value: object, tag: tlv.Tag, data: st.DataObject) -> None:
    buf = bytearray(tlv.encode(value, tag))
    i = data.draw(st.integers(0, len(buf) - 1))
    op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
    if op == "flip":
        buf[i] ^= data.draw(st.integers(1, 255))
    elif op == "insert":
        buf.insert(i, data.draw(st.integers(0, 255)))
    elif op == "delete":
        del buf[i]
    else:
        del buf[i:]
    decode_or_reject(bytes(buf))


@FAST
@given(trees, tags)
def test_every_prefix_and_any_suffix_rejected(value: object, tag: tlv.Tag) -> None:
    data = tlv.encode(value, tag)
    for end in range(len(data)):
        with pytest.raises(TLVDecodeError):
            tlv.decode_element(data[:end])
    with pytest.raises(TLVDecodeError):
        tlv.decode_element(data + b"\x14")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x16" * 10_000, id="deep-arrays-unterminated"),
        pytest.param(b"\x16" * 10_000 + b"\x18" * 10_000, id="deep-arrays-terminated"),
        pytest.param(b"\x15" + b"\x35\x01" * 10_000, id="deep-structs"),
        pytest.param(b"\x17" * 10_000, id="deep-lists"),
        pytest.param(b"\x0c\xff" + b"a" * 10, id="utf8-len1-overrun"),
        pytest.param(b"\x0e\xff\xff\xff\xff", id="utf8-len4-overrun"),
        pytest.param(b"\x0f" + b"\xff" * 8 + b"abc", id="utf8-len8-huge"),
        pytest.param(b"\x13" + b"\xff" * 8, id="octets-len8-huge"),
        pytest.param(b"\x0d\x01", id="length-field-truncated"),
        *(pytest.param(bytes([et]), id=f"reserved-{et:#04x}") for et in range(0x19, 0x20)),
        pytest.param(b"\x39\x01", id="reserved-ctx-tagged"),
        pytest.param(b"\x16\x1f\x18", id="reserved-in-array"),
        pytest.param(b"\x18", id="end-at-top-level"),
        pytest.param(b"\x38\x01", id="tagged-end-at-top-level"),
        pytest.param(b"\x15\x24\x01\x01\x38\x01", id="tagged-end-in-struct"),
        pytest.param(b"\x08\x00", id="trailing-byte"),
        pytest.param(b"\x15\x18\x18", id="trailing-end"),
        pytest.param(b"\x15", id="struct-unterminated"),
        pytest.param(b"\x17\x24\x01\x01", id="list-unterminated"),
        pytest.param(b"\x15\x24\x01\x01\x24\x01\x02\x18", id="duplicate-ctx-tag"),
        pytest.param(b"\x15\x48\x01\x00\x69\x01\x00\x00\x00\x18", id="duplicate-common-tag-widths"),
        pytest.param(b"\x15\x04\x01\x18", id="anonymous-in-struct"),
        pytest.param(b"\x16\x24\x01\x01\x18", id="tagged-in-array"),
        pytest.param(b"\x16\x44\x01\x00\x01\x18", id="common-tagged-in-array"),
        pytest.param(b"\x24", id="ctx-tag-missing"),
        pytest.param(b"\xc4\xf1\xff\xed", id="fq-tag-truncated"),
        pytest.param(b"\x02\x01\x02", id="int32-truncated"),
        pytest.param(b"\x0b\x00\x00", id="float64-truncated"),
        pytest.param(b"\x0c\x01\xff", id="utf8-invalid-byte"),
        pytest.param(b"\x0c\x02\xc0\xaf", id="utf8-overlong"),
        pytest.param(b"\x0c\x03\xed\xa0\x80", id="utf8-surrogate"),
        pytest.param(b"\x0c\x01\xc3", id="utf8-truncated-sequence"),
    ],
)
def test_malformed_rejected(data: bytes) -> None:
    with pytest.raises(TLVDecodeError):
        tlv.decode_element(data)


@pytest.mark.parametrize("data", ["1518", None, 21, [0x15, 0x18]])
def test_non_bytes_input_rejected(data: object) -> None:
    with pytest.raises(TLVDecodeError):
        tlv.decode(data)  # type: ignore[arg-type]


# -------------------- encoder errors


@pytest.mark.parametrize(
    ("value", "tag"),
    [
        pytest.param(1, 256, id="ctx-tag-256"),
        pytest.param(1, -1, id="ctx-tag-negative"),
        pytest.param(1, True, id="bool-as-tag"),
        pytest.param(1, "x", id="str-as-tag"),
        pytest.param({256: 1}, None, id="member-ctx-tag-256"),
        pytest.param({None: 1}, None, id="anonymous-struct-member"),
        pytest.param(TLVList([(300, 1)]), None, id="list-item-ctx-tag-300"),
        # Out-of-range tag fields and unencodable floats / strings must not leak struct.error, OverflowError
        # or UnicodeEncodeError either.
        pytest.param(1, CommonTag(1 << 32), id="common-tag-too-big"),
        pytest.param(1, CommonTag(-1), id="common-tag-negative"),
        pytest.param(1, ImplicitTag(1 << 32), id="implicit-tag-too-big"),
        pytest.param(1, ProfileTag(0x10000, 0, 0), id="vendor-id-too-big"),
        pytest.param(1, ProfileTag(0, 0x10000, 0), id="profile-too-big"),
        pytest.param(1, ProfileTag(0, 0, 1 << 32), id="profile-tag-number-too-big"),
        pytest.param(Float32(1e39), None, id="float32-overflow"),
        pytest.param("\ud800", None, id="str-lone-surrogate"),
        pytest.param(-1, None, id="negative-plain-int"),
        pytest.param([1, -5], None, id="negative-plain-int-in-array"),
        pytest.param(1 << 64, None, id="uint-65-bits"),
        pytest.param(SInt(1 << 63), None, id="sint-above-int64"),
        pytest.param(SInt(-(1 << 63) - 1), None, id="sint-below-int64"),
        pytest.param(object(), None, id="object"),
        pytest.param({1, 2}, None, id="set"),
        pytest.param(1 + 2j, None, id="complex"),
        pytest.param({0: [object()]}, None, id="nested-object"),
        pytest.param(Raw(b""), None, id="raw-empty"),
        pytest.param(Raw(b"\x24\x01\x01"), None, id="raw-tagged"),
    ],
)
def test_encoder_errors(value: object, tag: object) -> None:
    with pytest.raises(LocalProtocolError):
        tlv.encode(value, tag)  # type: ignore[arg-type]
