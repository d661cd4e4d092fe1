"""StatusReport codec (Core spec Appendix D) and the secure-channel protocol codes.

Byte vectors are built from the Appendix D layout: GeneralCode u16 LE, ProtocolId u32 LE
((vendor << 16) | protocol), ProtocolCode u16 LE, then ProtocolData.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jfds_device.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from jfds_device.securechannel.status import (
    SECURE_CHANNEL_PROTOCOL_ID,
    GeneralCode,
    SecureChannelProtocolCode,
    StatusReport,
    StatusReportError,
)

h = bytes.fromhex
SC = SecureChannelProtocolCode

# (report, exact wire bytes)
VECTORS = [
    # PASE/CASE success, as sent after Pake3 / Sigma3: all eight bytes zero.
    (StatusReport.secure_channel(GeneralCode.SUCCESS, SC.SESSION_ESTABLISHMENT_SUCCESS), h("0000 00000000 0000")),
    # The handshake failure connectedhomeip's PASESession sends: FAILURE / SecureChannel / INVALID_PARAMETER.
    (StatusReport.secure_channel(GeneralCode.FAILURE, SC.INVALID_PARAMETER), h("0100 00000000 0200")),
    (StatusReport.secure_channel(GeneralCode.FAILURE, SC.NO_SHARED_TRUST_ROOTS), h("0100 00000000 0100")),
    (StatusReport.secure_channel(GeneralCode.SUCCESS, SC.CLOSE_SESSION), h("0000 00000000 0300")),
    (StatusReport.secure_channel(GeneralCode.FAILURE, SC.SESSION_NOT_FOUND), h("0100 00000000 0500")),
    (StatusReport.secure_channel(GeneralCode.FAILURE, SC.GENERAL_FAILURE), h("0100 00000000 ffff")),
    # BUSY carries the minimum wait in ms: 500 = 0x01f4.
    (StatusReport.busy(500), h("0800 00000000 0400 f401")),
    # Interaction Model protocol (vendor 0, protocol 1).
    (StatusReport(GeneralCode.UNSUPPORTED, 0x0000_0001, 0x0000), h("0500 01000000 0000")),
    # A vendor protocol: vendor 0xFFF1, protocol 0x0002, with protocol data.
    (StatusReport(GeneralCode.DATA_LOSS, 0xFFF1_0002, 0x1234, b"\xde\xad"), h("1000 0200f1ff 3412 dead")),
]


@pytest.mark.parametrize(("report", "wire"), VECTORS, ids=[r.describe() for r, _ in VECTORS])
def test_vectors_encode_and_decode(report: StatusReport, wire: bytes) -> None:
    assert report.encode() == wire
    assert StatusReport.decode(wire) == report


def test_decoded_fields() -> None:
    report = StatusReport.decode(h("1000 0200f1ff 3412 dead"))
    assert report.general_code is GeneralCode.DATA_LOSS
    assert (report.vendor_id, report.protocol, report.protocol_code) == (0xFFF1, 0x0002, 0x1234)
    assert report.protocol_data == b"\xde\xad"
    assert not report.is_success


def test_success_helpers() -> None:
    ok = StatusReport.decode(bytes(8))
    assert ok.is_success
    assert ok.protocol_id == SECURE_CHANNEL_PROTOCOL_ID == 0
    assert ok.is_secure_channel(GeneralCode.SUCCESS, SC.SESSION_ESTABLISHMENT_SUCCESS)
    assert not ok.is_secure_channel(GeneralCode.SUCCESS, SC.CLOSE_SESSION)
    # Same codes under another protocol are not a secure-channel success.
    other = StatusReport(GeneralCode.SUCCESS, 0x0000_0001, 0)
    assert other.is_success and not other.is_secure_channel(GeneralCode.SUCCESS, SC.SESSION_ESTABLISHMENT_SUCCESS)


def test_busy_wait() -> None:
    assert StatusReport.busy(0xFFFF).busy_wait_ms == 0xFFFF
    assert StatusReport.secure_channel(GeneralCode.BUSY, SC.BUSY).busy_wait_ms is None  # no data
    assert StatusReport.secure_channel(GeneralCode.FAILURE, SC.INVALID_PARAMETER).busy_wait_ms is None
    with pytest.raises(LocalProtocolError):
        StatusReport.busy(0x1_0000)


def test_unknown_codes_are_kept() -> None:
    # A general code from a later revision decodes to its integer, and re-encodes identically.
    wire = h("1100 00000000 0700")
    report = StatusReport.decode(wire)
    assert report.general_code == 17 and not isinstance(report.general_code, GeneralCode)
    assert report.protocol_code == 7
    assert report.encode() == wire
    assert report.describe() == "17 (SecureChannel:7)"


def test_describe() -> None:
    assert StatusReport.decode(h("0100 00000000 0200")).describe() == "FAILURE (SecureChannel:INVALID_PARAMETER)"
    assert StatusReport.busy(1).describe() == "BUSY (SecureChannel:BUSY) data=0100"
    assert StatusReport(GeneralCode.FAILURE, 0xFFF1_0002, 9).describe() == "FAILURE (fff1:0002:9)"


@pytest.mark.parametrize("length", range(8))
def test_truncated_is_decode_error(length: int) -> None:
    with pytest.raises(DecodeError):
        StatusReport.decode(bytes(length))


def test_non_bytes_is_decode_error() -> None:
    with pytest.raises(DecodeError):
        StatusReport.decode("00000000")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"general_code": 0x1_0000, "protocol_id": 0, "protocol_code": 0},
        {"general_code": -1, "protocol_id": 0, "protocol_code": 0},
        {"general_code": 0, "protocol_id": 0x1_0000_0000, "protocol_code": 0},
        {"general_code": 0, "protocol_id": 0, "protocol_code": 0x1_0000},
    ],
)
def test_out_of_range_fields_are_local_errors(kwargs: dict[str, int]) -> None:
    with pytest.raises(LocalProtocolError):
        StatusReport(**kwargs)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=24))
def test_decode_is_total_and_round_trips(data: bytes) -> None:
    try:
        report = StatusReport.decode(data)
    except DecodeError:
        assert len(data) < 8
        return
    assert report.encode() == data


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF_FFFF),
    st.integers(0, 0xFFFF),
    st.binary(max_size=16),
)
def test_encode_decode_round_trip(general: int, protocol_id: int, code: int, data: bytes) -> None:
    report = StatusReport(general, protocol_id, code, data)
    wire = report.encode()
    assert len(wire) == 8 + len(data)
    assert StatusReport.decode(wire) == report


def test_status_report_error_carries_the_report() -> None:
    report = StatusReport.decode(h("0100 00000000 0200"))
    error = StatusReportError(report)
    assert isinstance(error, RemoteProtocolError)
    assert error.report is report
    assert "INVALID_PARAMETER" in str(error)
    assert str(StatusReportError(report, "custom")) == "custom"
