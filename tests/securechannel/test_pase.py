"""PASE responder and initiator (Core spec §4.14.1): pair runs, captured exchanges, failures and fuzzing.

Vectors are published Matter PASE vectors (connectedhomeip and matter.js test sources); each constant names its
upstream source (repository, path, commit). Randomness is injected (``FixedRandom``), so the responder reproduces
captured messages exactly.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from Crypto.PublicKey.ECC import EccPoint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jfds_device.codec import tlv
from jfds_device.codec.message import SecureChannelOpcode as Op
from jfds_device.crypto.spake2p import M_BYTES, PaseVerifier, make_verifier, pase_context
from jfds_device.errors import CryptoError, DecodeError, LocalProtocolError, RemoteProtocolError, SchemaError
from jfds_device.securechannel.pase import (
    FAILURE_REPORT,
    SUCCESS_REPORT,
    PaseAttemptLimiter,
    PaseInitiator,
    PaseResponder,
    PaseState,
)
from jfds_device.securechannel.pase_messages import (
    Pake1,
    Pake2,
    Pake3,
    PbkdfParameters,
    PbkdfParamRequest,
    PbkdfParamResponse,
    decode_message,
)
from jfds_device.securechannel.session_params import SessionParameters
from jfds_device.securechannel.status import StatusReport, StatusReportError
from tests.strategies import for_struct

h = bytes.fromhex
FAILURE = (Op.STATUS_REPORT, FAILURE_REPORT.encode())


def _point(uncompressed: bytes) -> EccPoint:
    return EccPoint(int.from_bytes(uncompressed[1:33], "big"), int.from_bytes(uncompressed[33:], "big"), "p256")


def _point_bytes(point: EccPoint) -> bytes:
    return b"\x04" + int(point.x).to_bytes(32, "big") + int(point.y).to_bytes(32, "big")


M_POINT = _point(M_BYTES)
G_POINT = EccPoint(  # P-256 generator, SEC 2 §2.4.2
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
    "p256",
)
SUCCESS = (Op.STATUS_REPORT, SUCCESS_REPORT.encode())

# --- "Default test verifier": connectedhomeip scripts/tools/spake2p/README.md @ aee7f7842dbd
PASSCODE = 20202021
SALT = b"SPAKE2P Key Salt"
ITERATIONS = 1000
VERIFIER_B64 = (
    "uWFwqugDNGiEck/po7KHwwMwwqZgN10XuyBajPGuyzUEV/iree4lOrao5GuwnlQ65CJzbeUB49s31EH+NEkg0JVI5MGCQGMMT/SRPFNRODm3"
    "wH/MBiehuFc6FJ/NH6Rmzw=="
)
VERIFIER = PaseVerifier.from_bytes(base64.b64decode(VERIFIER_B64))

# --- "SPAKE2+ Context hash": matter.js packages/general/test/crypto/Spake2pTest.ts @ b851ce019504
# (captured from connectedhomeip). Both messages carry session parameters {idle 5000 ms, active 300 ms}.
CTX_REQUEST = h(
    "15300120b2901e92036f7bca007a3a1bf24bd71f18772105e83479c92b7a8af35e8182742502498d240300280435052501881325022c011818"
)
CTX_RESPONSE = h(
    "15300120b2901e92036f7bca007a3a1bf24bd71f18772105e83479c92b7a8af35e81827430022008070f685f2077779b824adf91e4ba"
    "b6253b9d1a3c0f6615c6d447780f0feef325039c8d35042501e803300220163f8501fbbc0e6a8f69a9b999d038ca388ecffccc18fe25"
    "9c4253f26e494dda1835052501881325022c011818"
)
CTX_HASH = h("c49718b0275b6f81fd6a081f6c34c5833382b75b3bd997895d13a51c71a02855")

# --- "PASE exchange A/B": matter.js packages/protocol/test/session/secure/PasePairingTest.ts
# @ b851ce019504 (device side). cA and the session keys are derived from the published inputs, not upstream.
EXCHANGES: dict[str, dict[str, Any]] = {
    "A (w0 with a leading zero byte)": {
        "salt": h("03959ebc20b8fcbda262d97f9a7a9e76e32d7a1b9c5166b6a3721e88acad8808"),
        "w0": h("00177867f1e564cc4d9f347edfc28263ee5a50f1e21177cfb9a7dc2504437ccb"),
        "L": h(
            "04cf26d253cae2dd44c6954d443c7badc1e8811b8484eaae2d7bf43ec2f7e3173527877ea4a554513063036f55d2871e87e294"
            "dfdc18cd39edd6519fb4dfcde976"
        ),
        "request": h("1530012094eab5c37d101df5ef01b2c8ecada03a7c3b0cf5e26a08feda72617f9cd391a6240247240300280418"),
        "response": h(
            "1530012094eab5c37d101df5ef01b2c8ecada03a7c3b0cf5e26a08feda72617f9cd391a630022022820a42684102fd4a92c0ba"
            "d66ad1f21f3c5366f5a6d84203035e2c7caf3bae250357de35042501e80330022003959ebc20b8fcbda262d97f9a7a9e76e32d"
            "7a1b9c5166b6a3721e88acad88081818"
        ),
        "initiator_session_id": 71,
        "responder_session_id": 56919,
        "context": h("64e59c36646d7b6cf4103b78228313325c275c5aa9b5f21da9a482661f7b5e88"),
        "X": h(
            "04cce1e192a645d54a3ac9a3a3f0b334f37c03400b826b14d873124dfb96a35815f80202f05c72d055b6da24942d0a6cac18ca"
            "f310100ecef23248ac8fd2ced196"
        ),
        "y": h("de583b5685529de9544b92c9c8cba696751b14d65092d13458879b3bc9814b53"),
        "Y": h(
            "0404f972c7232cde8911de7d93e37ad752b90ad095888ac83da5f3a1d5a7eb063288ed6d358e9092a8606dac6cd6b8fdfc0b39"
            "60df85434ed60c6b6091d23da7bb"
        ),
        "cB": h("d6a13c26b6c5b7c514033a0370b1830dff5116fd53de43eb2374737e9b64e4bb"),
        "cA": h("05030c97e72b884cd0ebf0f2e6f91bfd377a8f37601bb7f633d468e289437cf7"),
        "session_keys": h(
            "b03f700bae9a3fd1a72a55e10d73b0a6abbf4a36abc099a5a7e2dac8b3d138fc750257bcfca549ba7025f11634026daa"
        ),
    },
    "B": {
        "salt": h("2bb41e9d75f30c2e6b2f059410c56965717cc2bf14ed6c73a169435326a89652"),
        "w0": h("501f85a83d1da77983ff6f0c1f742d6d98f6d0ab0ba740a38032200099c8981f"),
        "L": h(
            "0463e7f225296bcd9b100e605d636a3d2c84524665cbd9b8b75e737d04bca1241486b37bdba74284de76f2db9df271d2c5bda2"
            "1b8e26bc0943dcbf0542665c3aa8"
        ),
        "request": h("15300120913cc0622eca85f8d4c132c89663c5d7afa780667be930e5c11bec865479c6172502e68b240300280418"),
        "response": h(
            "15300120913cc0622eca85f8d4c132c89663c5d7afa780667be930e5c11bec865479c6173002205682c0732b37c045ebeb4169"
            "04c187a58b5341088e0172123becfb855f94a72c2503844235042501e8033002202bb41e9d75f30c2e6b2f059410c569657"
            "17cc2bf14ed6c73a169435326a896521818"
        ),
        "initiator_session_id": 35814,
        "responder_session_id": 17028,
        "context": h("15d8fb91f68f9b456a5ee4df0b0eec392e12ea8438a92c65d9b3c161a2b163b7"),
        "X": h(
            "04db4f7c7f4dbf478440753d578825da01ae177c89dad6637f9c91ef86880e8d67571b2fdc0e0564985cd6b2cbbee82ab5655b"
            "0fbae7254ff4b13f88a30076612c"
        ),
        "y": h("fee695b4972a4f620951010c87390d3fe1313efce399fbc2c9c7cdc04d22b4c6"),
        "Y": h(
            "04cd3a2937c598cfd46e197e786e4194e65164ed1a0bf23f224947b4f4c140f72b4742792b86ae6c427ae9d4a6d345cd6e1f9a"
            "e0f950d5399d38c8031d7975ca82"
        ),
        "cB": h("52b9b5cb79dafd150b8729102ede22795d0f522ad884d29452818d8c54ca7508"),
        "cA": h("24f14df6bb3df64e12c5916df4db02e27644932121e19c14ae32e9af392aa1b1"),
        "session_keys": h(
            "640c9c9b265a8ea9a5613c59d0ed260f08bd409daba63369b77e37a26d794f92e944a5a9519f5d238d710fa40d2a6b7b"
        ),
    },
}


class FixedRandom:
    """A random source that hands out prepared chunks in order, then fails the test if asked for more."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = list(chunks)

    def __call__(self, n: int) -> bytes:
        assert self._chunks, "unexpected extra draw from the random source"
        chunk = self._chunks.pop(0)
        assert len(chunk) == n
        return chunk


def make_responder(**overrides: Any) -> PaseResponder:
    kwargs: dict[str, Any] = {"salt": SALT, "iterations": ITERATIONS, "local_session_id": 0x1234}
    kwargs.update(overrides)
    verifier = kwargs.pop("verifier", VERIFIER)
    return PaseResponder(verifier, **kwargs)


def make_initiator(passcode: int = PASSCODE, **overrides: Any) -> PaseInitiator:
    kwargs: dict[str, Any] = {"local_session_id": 0x4321}
    kwargs.update(overrides)
    return PaseInitiator(passcode, **kwargs)


def run_pair(initiator: PaseInitiator, responder: PaseResponder) -> list[tuple[str, int, bytes]]:
    """Shuttle messages between the two machines until neither has anything to send; return the transcript."""
    transcript: list[tuple[str, int, bytes]] = []
    message: tuple[int, bytes] | None = initiator.start()
    while message is not None:
        transcript.append(("I→R", *message))
        replies = responder.receive(*message)
        assert len(replies) <= 1
        if not replies:
            break
        transcript.append(("R→I", *replies[0]))
        message = initiator.receive(*replies[0])
    return transcript


def advance(responder: PaseResponder, initiator: PaseInitiator, to: PaseState) -> tuple[int, bytes]:
    """Run the pair until the responder reaches ``to``; return the initiator's next message (not yet delivered)."""
    message: tuple[int, bytes] | None = initiator.start()
    while responder.state is not to:
        assert message is not None
        (reply,) = responder.receive(*message)
        message = initiator.receive(*reply)
    assert message is not None
    return message


# --------------------------------------------------------------------------------------------- happy paths


def test_pair_agrees_on_keys_with_swapped_roles() -> None:
    params_i = SessionParameters(idle_interval_ms=5000, active_interval_ms=300)
    params_r = SessionParameters(idle_interval_ms=500, active_interval_ms=300, active_threshold_ms=4000)
    initiator = make_initiator(session_params=params_i)
    responder = make_responder(session_params=params_r)
    transcript = run_pair(initiator, responder)

    assert [(d, op) for d, op, _ in transcript] == [
        ("I→R", Op.PBKDF_PARAM_REQUEST),
        ("R→I", Op.PBKDF_PARAM_RESPONSE),
        ("I→R", Op.PASE_PAKE1),
        ("R→I", Op.PASE_PAKE2),
        ("I→R", Op.PASE_PAKE3),
        ("R→I", Op.STATUS_REPORT),
    ]
    assert transcript[-1][2] == bytes(8)  # SUCCESS / SecureChannel / SESSION_ESTABLISHMENT_SUCCESS
    assert initiator.done and responder.done
    ri, rr = initiator.result, responder.result
    assert ri is not None and rr is not None
    assert ri.keys == rr.keys
    encrypt_i, decrypt_i = ri.keys.for_role(ri.is_initiator)
    encrypt_r, decrypt_r = rr.keys.for_role(rr.is_initiator)
    assert (encrypt_i, decrypt_i) == (decrypt_r, encrypt_r) and encrypt_i != decrypt_i
    assert (ri.local_session_id, ri.peer_session_id) == (0x4321, 0x1234)
    assert (rr.local_session_id, rr.peer_session_id) == (0x1234, 0x4321)
    assert ri.peer_session_params == params_r and rr.peer_session_params == params_i
    assert initiator.error is None and responder.error is None and not responder.failed_confirmation


def test_pair_with_pbkdf_parameters_known_in_advance() -> None:
    initiator = make_initiator(pbkdf_parameters=PbkdfParameters(iterations=ITERATIONS, salt=SALT))
    responder = make_responder()
    transcript = run_pair(initiator, responder)
    request = decode_message(PbkdfParamRequest, transcript[0][2])
    response = decode_message(PbkdfParamResponse, transcript[1][2])
    assert request.has_pbkdf_parameters is True
    assert response.pbkdf_parameters is None  # Core spec §4.14.1.2: omitted when the initiator has them
    assert initiator.done and responder.done
    assert initiator.result is not None and responder.result is not None
    assert initiator.result.keys == responder.result.keys


def test_allocator_is_called_once_for_a_valid_request() -> None:
    calls: list[int] = []

    def allocate() -> int:
        calls.append(1)
        return 0xBEEF

    responder = make_responder(local_session_id=allocate)
    assert responder.local_session_id is None
    assert responder.receive(Op.PBKDF_PARAM_REQUEST, b"\x15\x18") == [FAILURE]  # invalid: no allocation
    assert calls == []
    responder = make_responder(local_session_id=allocate)
    run_pair(make_initiator(), responder)
    assert calls == [1] and responder.local_session_id == 0xBEEF
    assert responder.result is not None and responder.result.local_session_id == 0xBEEF


def test_default_verifier_vector() -> None:
    assert make_verifier(PASSCODE, SALT, ITERATIONS) == VERIFIER


# --------------------------------------------------------------------------------------------- captured exchanges


def test_captured_context_exchange_is_reproduced_byte_exactly() -> None:
    request = decode_message(PbkdfParamRequest, CTX_REQUEST)
    response = decode_message(PbkdfParamResponse, CTX_RESPONSE)
    assert request.initiator_session_params == SessionParameters(idle_interval_ms=5000, active_interval_ms=300)
    assert response.pbkdf_parameters is not None

    # Initiator: same random, session id and parameters → the same request bytes.
    initiator = make_initiator(
        local_session_id=request.initiator_session_id,
        session_params=request.initiator_session_params,
        random_bytes=FixedRandom(request.initiator_random),
    )
    assert initiator.start() == (Op.PBKDF_PARAM_REQUEST, CTX_REQUEST)

    # Responder: same random, session id, salt and parameters → the same response bytes, hence the same context.
    responder = make_responder(
        salt=response.pbkdf_parameters.salt,
        iterations=response.pbkdf_parameters.iterations,
        local_session_id=response.responder_session_id,
        session_params=response.responder_session_params,
        random_bytes=FixedRandom(response.responder_random),
    )
    assert responder.receive(Op.PBKDF_PARAM_REQUEST, CTX_REQUEST) == [(Op.PBKDF_PARAM_RESPONSE, CTX_RESPONSE)]
    assert pase_context(CTX_REQUEST, CTX_RESPONSE) == CTX_HASH


@pytest.mark.parametrize("name", EXCHANGES)
def test_captured_exchange_through_the_responder(name: str) -> None:
    v = EXCHANGES[name]
    verifier = PaseVerifier(int.from_bytes(v["w0"], "big"), v["L"])
    assert make_verifier(PASSCODE, v["salt"], ITERATIONS) == verifier
    captured = decode_message(PbkdfParamResponse, v["response"])

    responder = make_responder(
        verifier=verifier,
        salt=v["salt"],
        local_session_id=v["responder_session_id"],
        random_bytes=FixedRandom(captured.responder_random, v["y"]),
    )
    assert responder.receive(Op.PBKDF_PARAM_REQUEST, v["request"]) == [(Op.PBKDF_PARAM_RESPONSE, v["response"])]
    assert pase_context(v["request"], v["response"]) == v["context"]

    # Pake2 = anonymous struct {1: Y (65 bytes), 2: cB (32 bytes)}, byte for byte.
    expected_pake2 = b"\x15\x30\x01\x41" + v["Y"] + b"\x30\x02\x20" + v["cB"] + b"\x18"
    assert responder.receive(Op.PASE_PAKE1, Pake1(pa=v["X"]).encode()) == [(Op.PASE_PAKE2, expected_pake2)]

    assert responder.receive(Op.PASE_PAKE3, Pake3(ca=v["cA"]).encode()) == [SUCCESS]
    result = responder.result
    assert result is not None
    assert result.keys.i2r_key + result.keys.r2i_key + result.keys.attestation_challenge == v["session_keys"]
    assert (result.local_session_id, result.peer_session_id) == (v["responder_session_id"], v["initiator_session_id"])
    assert result.peer_session_params is None and not result.is_initiator


@pytest.mark.parametrize("name", EXCHANGES)
def test_captured_request_from_the_initiator(name: str) -> None:
    v = EXCHANGES[name]
    request = decode_message(PbkdfParamRequest, v["request"])
    initiator = make_initiator(
        local_session_id=v["initiator_session_id"],
        random_bytes=FixedRandom(request.initiator_random, bytes(31) + b"\x07"),
    )
    assert initiator.start() == (Op.PBKDF_PARAM_REQUEST, v["request"])
    # The captured response leads to Pake1 with pA = x·G + w0·M for our x = 7.
    reply = initiator.receive(Op.PBKDF_PARAM_RESPONSE, v["response"])
    assert reply is not None and reply[0] is Op.PASE_PAKE1
    expected = G_POINT * 7 + M_POINT * int.from_bytes(v["w0"], "big")
    assert decode_message(Pake1, reply[1]).pa == _point_bytes(expected)


# --------------------------------------------------------------------------------------------- wrong passcode


def test_wrong_passcode_detected_by_initiator_counts_on_the_responder() -> None:
    # A well-behaved commissioner sees the bad cB first and sends the failure StatusReport itself.
    initiator = make_initiator(passcode=20202022)
    responder = make_responder()
    transcript = run_pair(initiator, responder)
    assert transcript[-1][:2] == ("I→R", Op.STATUS_REPORT)
    assert transcript[-1][2] == FAILURE_REPORT.encode()
    assert initiator.failed and isinstance(initiator.error, CryptoError)
    assert responder.failed and responder.failed_confirmation
    assert isinstance(responder.error, StatusReportError) and responder.error.report == FAILURE_REPORT
    assert initiator.result is None and responder.result is None


def test_wrong_confirmation_in_pake3_fails_and_is_flagged() -> None:
    responder = make_responder()
    advance(responder, make_initiator(), PaseState.AWAIT_PAKE3)
    assert responder.receive(Op.PASE_PAKE3, Pake3(ca=bytes(32)).encode()) == [FAILURE]
    assert responder.failed and responder.failed_confirmation
    assert isinstance(responder.error, CryptoError)
    assert responder.result is None


def test_abort_after_pake2_counts_but_not_before() -> None:
    responder = make_responder()
    advance(responder, make_initiator(), PaseState.AWAIT_PAKE3)
    responder.abort()  # exchange timed out: the peer may have learned its guess was wrong from cB
    assert responder.failed and responder.failed_confirmation
    early = make_responder()
    advance(early, make_initiator(), PaseState.AWAIT_PAKE1)
    early.abort()
    assert early.failed and not early.failed_confirmation
    early.abort()  # idempotent
    assert isinstance(early.error, LocalProtocolError)


def test_attempt_limiter_closes_after_twenty_failures() -> None:
    assert PaseAttemptLimiter.MAX_FAILED_ATTEMPTS == 20
    limiter = PaseAttemptLimiter()
    for _ in range(19):
        assert limiter.record_failure() is False
    assert not limiter.closed and limiter.failed_attempts == 19
    assert limiter.record_failure() is True
    assert limiter.closed
    limiter.reset()
    assert not limiter.closed and limiter.failed_attempts == 0
    with pytest.raises(LocalProtocolError):
        PaseAttemptLimiter(0)


def test_attempt_limiter_counts_wrong_passcodes_end_to_end() -> None:
    limiter = PaseAttemptLimiter()
    # A success and an early protocol failure do not count.
    ok = make_responder()
    run_pair(make_initiator(), ok)
    assert limiter.observe(ok) is False
    garbage = make_responder()
    garbage.receive(Op.PASE_PAKE1, b"")
    assert limiter.observe(garbage) is False and limiter.failed_attempts == 0
    closed = []
    for attempt in range(PaseAttemptLimiter.MAX_FAILED_ATTEMPTS):
        responder = make_responder()
        run_pair(make_initiator(passcode=attempt + 1), responder)
        closed.append(limiter.observe(responder))
    assert closed == [False] * 19 + [True]


def test_context_binds_the_pbkdf_messages() -> None:
    # A man in the middle who rewrites the request's session id changes the responder's context, so the
    # initiator's cB check fails even though both sides know the passcode.
    initiator, responder = make_initiator(), make_responder()
    opcode, request = initiator.start()
    tampered = dataclasses.replace(PbkdfParamRequest.decode(request), initiator_session_id=9)
    (response,) = responder.receive(opcode, tampered.encode())
    pake1 = initiator.receive(*response)
    assert pake1 is not None
    (pake2,) = responder.receive(*pake1)
    assert initiator.receive(*pake2) == FAILURE
    assert isinstance(initiator.error, CryptoError)


# --------------------------------------------------------------------------------------------- violations


def test_wrong_passcode_id_is_rejected() -> None:
    request = PbkdfParamRequest(
        initiator_random=bytes(32), initiator_session_id=1, passcode_id=1, has_pbkdf_parameters=False
    )
    responder = make_responder()
    assert responder.receive(Op.PBKDF_PARAM_REQUEST, request.encode()) == [FAILURE]
    assert responder.failed and "passcode id" in str(responder.error)
    assert not responder.failed_confirmation


def test_session_id_zero_is_rejected() -> None:
    raw = {1: bytes(32), 2: 0, 3: 0, 4: False}
    responder = make_responder()
    assert responder.receive(Op.PBKDF_PARAM_REQUEST, tlv.encode(raw)) == [FAILURE]
    assert isinstance(responder.error, SchemaError)


def test_initiator_rejects_a_response_that_does_not_echo_its_random() -> None:
    initiator = make_initiator(random_bytes=FixedRandom(b"\x01" * 32))
    initiator.start()
    response = PbkdfParamResponse(
        initiator_random=b"\x02" * 32,
        responder_random=bytes(32),
        responder_session_id=7,
        pbkdf_parameters=PbkdfParameters(iterations=ITERATIONS, salt=SALT),
    )
    assert initiator.receive(Op.PBKDF_PARAM_RESPONSE, response.encode()) == FAILURE
    assert initiator.failed and "initiatorRandom" in str(initiator.error)


def test_initiator_needs_pbkdf_parameters_from_somewhere() -> None:
    initiator = make_initiator(random_bytes=FixedRandom(b"\x01" * 32))
    initiator.start()
    response = PbkdfParamResponse(initiator_random=b"\x01" * 32, responder_random=bytes(32), responder_session_id=7)
    assert initiator.receive(Op.PBKDF_PARAM_RESPONSE, response.encode()) == FAILURE
    assert isinstance(initiator.error, RemoteProtocolError)


@pytest.mark.parametrize(("iterations", "salt"), [(999, SALT), (100_001, SALT), (1000, bytes(15)), (1000, bytes(33))])
def test_initiator_rejects_out_of_range_pbkdf_parameters(iterations: int, salt: bytes) -> None:
    initiator = make_initiator(random_bytes=FixedRandom(b"\x01" * 32))
    initiator.start()
    raw = {1: b"\x01" * 32, 2: bytes(32), 3: 7, 4: {1: iterations, 2: salt}}
    assert initiator.receive(Op.PBKDF_PARAM_RESPONSE, tlv.encode(raw)) == FAILURE
    assert isinstance(initiator.error, SchemaError)


@pytest.mark.parametrize(
    "pa",
    [
        b"\x04" + bytes(64),  # not on the curve
        b"\x05" + bytes(64),  # not an uncompressed point
        _point_bytes(M_POINT * VERIFIER.w0),  # X − w0·M is the identity
    ],
    ids=["off-curve", "bad-prefix", "w0M"],
)
def test_invalid_pa_is_rejected(pa: bytes) -> None:
    responder = make_responder()
    advance(responder, make_initiator(), PaseState.AWAIT_PAKE1)
    assert responder.receive(Op.PASE_PAKE1, Pake1(pa=pa).encode()) == [FAILURE]
    assert isinstance(responder.error, CryptoError) and not responder.failed_confirmation


def test_invalid_pb_is_rejected_by_the_initiator() -> None:
    responder = make_responder()
    initiator = make_initiator()
    advance(responder, initiator, PaseState.AWAIT_PAKE1)
    assert initiator.receive(Op.PASE_PAKE2, Pake2(pb=b"\x04" + bytes(64), cb=bytes(32)).encode()) == FAILURE
    assert isinstance(initiator.error, CryptoError)


OUT_OF_ORDER = [
    (PaseState.AWAIT_PBKDF_REQUEST, Op.PASE_PAKE1),
    (PaseState.AWAIT_PBKDF_REQUEST, Op.PASE_PAKE3),
    (PaseState.AWAIT_PBKDF_REQUEST, Op.PBKDF_PARAM_RESPONSE),
    (PaseState.AWAIT_PAKE1, Op.PBKDF_PARAM_REQUEST),
    (PaseState.AWAIT_PAKE1, Op.PASE_PAKE3),
    (PaseState.AWAIT_PAKE3, Op.PASE_PAKE1),
    (PaseState.AWAIT_PAKE3, Op.PBKDF_PARAM_REQUEST),
    (PaseState.AWAIT_PAKE3, Op.CASE_SIGMA1),
    (PaseState.AWAIT_PAKE3, 0x99),
]


@pytest.mark.parametrize(("state", "opcode"), OUT_OF_ORDER)
def test_responder_rejects_out_of_order_messages(state: PaseState, opcode: int) -> None:
    responder = make_responder()
    initiator = make_initiator()
    message = advance(responder, initiator, state)
    # Even the message that would be valid in the right state is refused in the wrong one.
    payload = message[1] if opcode == message[0] else b"\x15\x18"
    assert responder.receive(opcode, payload) == [FAILURE]
    assert responder.failed and "unexpected opcode" in str(responder.error)
    assert responder.failed_confirmation is (state is PaseState.AWAIT_PAKE3)
    assert responder.receive(*message) == []  # ignored after the end


def test_initiator_rejects_out_of_order_messages() -> None:
    initiator = make_initiator()
    with pytest.raises(LocalProtocolError):
        initiator.receive(Op.PBKDF_PARAM_RESPONSE, b"")
    initiator.start()
    with pytest.raises(LocalProtocolError):
        initiator.start()
    assert initiator.receive(Op.PASE_PAKE2, Pake2(pb=bytes(65), cb=bytes(32)).encode()) == FAILURE
    assert initiator.failed and initiator.receive(Op.PASE_PAKE2, b"") is None


def test_peer_status_report_ends_the_handshake_without_reply() -> None:
    responder = make_responder()
    advance(responder, make_initiator(), PaseState.AWAIT_PAKE1)
    assert responder.receive(Op.STATUS_REPORT, StatusReport.busy(100).encode()) == []
    assert isinstance(responder.error, StatusReportError) and responder.error.report.busy_wait_ms == 100
    garbled = make_responder()
    assert garbled.receive(Op.STATUS_REPORT, b"\x01\x00") == []
    assert garbled.failed and isinstance(garbled.error, DecodeError)


@pytest.mark.parametrize(
    "report",
    [
        b"\x01\x00",  # truncated
        FAILURE_REPORT.encode(),
        StatusReport(0, 0x0000_0001, 0).encode(),  # success, but not the secure channel's
        StatusReport(0, 0, 3).encode(),  # CLOSE_SESSION is not SESSION_ESTABLISHMENT_SUCCESS
    ],
)
def test_initiator_needs_the_session_establishment_success(report: bytes) -> None:
    responder = make_responder()
    initiator = make_initiator()
    message = advance(responder, initiator, PaseState.AWAIT_PAKE3)
    assert message[0] is Op.PASE_PAKE3 and initiator.state is PaseState.AWAIT_STATUS
    assert initiator.receive(Op.STATUS_REPORT, report) is None
    assert initiator.failed and initiator.result is None
    assert isinstance(initiator.error, DecodeError | StatusReportError)


def test_messages_after_success_are_ignored() -> None:
    initiator, responder = make_initiator(), make_responder()
    transcript = run_pair(initiator, responder)
    for _, opcode, payload in transcript:
        assert responder.receive(opcode, payload) == []
        assert initiator.receive(opcode, payload) is None
    assert initiator.done and responder.done


@pytest.mark.parametrize("state", [PaseState.AWAIT_PBKDF_REQUEST, PaseState.AWAIT_PAKE1, PaseState.AWAIT_PAKE3])
def test_truncated_messages_fail_at_every_step(state: PaseState) -> None:
    message = advance(make_responder(), make_initiator(), state)
    for cut in range(len(message[1])):
        responder = make_responder()
        advance(responder, make_initiator(), state)
        assert responder.receive(message[0], message[1][:cut]) == [FAILURE], cut
        assert isinstance(responder.error, DecodeError)


def test_tagged_or_trailing_payloads_are_rejected() -> None:
    request = PbkdfParamRequest(
        initiator_random=bytes(32), initiator_session_id=1, passcode_id=0, has_pbkdf_parameters=False
    )
    with pytest.raises(SchemaError):
        decode_message(PbkdfParamRequest, request.encode(tag=1))
    responder = make_responder()
    assert responder.receive(Op.PBKDF_PARAM_REQUEST, request.encode() + b"\x00") == [FAILURE]


# --------------------------------------------------------------------------------------------- constructor checks


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    [
        (make_responder, {"salt": bytes(15)}),
        (make_responder, {"salt": bytes(33)}),
        (make_responder, {"iterations": 999}),
        (make_responder, {"iterations": 100_001}),
        (make_responder, {"local_session_id": 0}),
        (make_initiator, {"local_session_id": 0x1_0000}),
        (make_initiator, {"passcode": -1}),
    ],
)
def test_bad_local_configuration_is_a_local_error(factory: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        factory(**kwargs)


def test_bad_allocator_or_rng_is_a_local_error() -> None:
    request = make_initiator().start()[1]
    with pytest.raises(LocalProtocolError):
        make_responder(local_session_id=lambda: 0).receive(Op.PBKDF_PARAM_REQUEST, request)
    with pytest.raises(LocalProtocolError):
        make_responder(random_bytes=lambda n: bytes(n - 1)).receive(Op.PBKDF_PARAM_REQUEST, request)
    responder = make_responder(random_bytes=lambda n: b"\xff" * n)  # every scalar draw is ≥ n
    initiator = make_initiator()
    (response,) = responder.receive(*initiator.start())
    pake1 = initiator.receive(*response)
    assert pake1 is not None
    with pytest.raises(LocalProtocolError):
        responder.receive(*pake1)


# --------------------------------------------------------------------------------------------- messages


@pytest.mark.parametrize("cls", [PbkdfParamRequest, PbkdfParamResponse, Pake1, Pake2, Pake3, SessionParameters])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_messages_round_trip(cls: type[Any], data: st.DataObject) -> None:
    value = data.draw(for_struct(cls))
    assert decode_message(cls, value.encode()) == value


def test_session_parameters_clamped() -> None:
    assert SessionParameters().clamped() == (500, 300, 4000)
    assert SessionParameters(idle_interval_ms=0xFFFF_FFFF, active_interval_ms=10, active_threshold_ms=0).clamped() == (
        3_600_000,
        10,
        0,
    )


# --------------------------------------------------------------------------------------------- fuzzing

# Arbitrary TLV values, so the fuzzer reaches the schema layer with well-formed but wrongly typed input.
_tlv_scalars = st.one_of(
    st.integers(0, 2**64 - 1),
    st.integers(-(2**63), 2**63 - 1).map(tlv.SInt),
    st.booleans(),
    st.none(),
    st.binary(max_size=70),
    st.text(max_size=8),
)
_tlv_values = st.recursive(
    _tlv_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.integers(0, 8), inner, max_size=5)),
    max_leaves=12,
)
_payloads = st.one_of(
    st.binary(max_size=120),
    st.dictionaries(st.integers(0, 6), _tlv_values, max_size=6).map(tlv.encode),
)
_opcodes = st.sampled_from([*range(0x20, 0x25), 0x40, 0x10, 0x30, 0x00])
_RESPONDER_STATES = [PaseState.AWAIT_PBKDF_REQUEST, PaseState.AWAIT_PAKE1, PaseState.AWAIT_PAKE3]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_RESPONDER_STATES), _opcodes, _payloads)
def test_fuzz_responder_never_raises(state: PaseState, opcode: int, payload: bytes) -> None:
    responder = make_responder()
    advance(responder, make_initiator(), state)
    replies = responder.receive(opcode, payload)
    if responder.failed:
        assert replies in ([], [FAILURE])
    else:  # only a message that happens to be valid for this state moves it on
        assert len(replies) == 1 and replies[0] != FAILURE


_INITIATOR_STATES = [PaseState.AWAIT_PBKDF_RESPONSE, PaseState.AWAIT_PAKE2, PaseState.AWAIT_STATUS]


def _initiator_in(state: PaseState) -> PaseInitiator:
    initiator, responder = make_initiator(), make_responder()
    message: tuple[int, bytes] | None = initiator.start()
    while initiator.state is not state:
        assert message is not None
        (reply,) = responder.receive(*message)
        message = initiator.receive(*reply)
    return initiator


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_INITIATOR_STATES), _opcodes, _payloads)
def test_fuzz_initiator_never_raises(state: PaseState, opcode: int, payload: bytes) -> None:
    initiator = _initiator_in(state)
    reply = initiator.receive(opcode, payload)
    if initiator.failed:
        assert reply in (None, FAILURE)
    else:
        assert initiator.done or reply is not None
