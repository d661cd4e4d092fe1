"""PASE (Core spec §4.14.1) as two sans-IO state machines: the device's responder and the commissioner's
initiator.

Flow (initiator → responder)::

    PBKDFParamRequest  →                        AWAIT_PBKDF_REQUEST → AWAIT_PAKE1
                       ←  PBKDFParamResponse
    Pake1 {pA}         →                        AWAIT_PAKE1 → AWAIT_PAKE3
                       ←  Pake2 {pB, cB}
    Pake3 {cA}         →                        AWAIT_PAKE3 → DONE
                       ←  StatusReport(SUCCESS, SecureChannel, SESSION_ESTABLISHMENT_SUCCESS)

Shape: both roles are explicit state machines with one dispatch table, ``(state, opcode) → handler``
(as python-hyper/h11 tabulates its transitions), rather than aiohomekit-style generators. PASE is three linear
steps, and every step needs the same wrapper (decode or abort with INVALID_PARAMETER); the table makes "wrong
opcode for this state" a single lookup miss, and avoids priming a generator for the responder, which speaks
second.

Failure handling: the machines never raise on peer input. A protocol violation (undecodable TLV, a value
out of range, a wrong opcode for the state, a non-zero passcode id, a mismatched random, an invalid point,
a failed key confirmation) ends the handshake in FAILED, records ``error`` and yields one
StatusReport(FAILURE, SecureChannel, INVALID_PARAMETER) to send, as connectedhomeip's PASESession does.
A StatusReport from the peer ends it too, without a reply (no status ping-pong). Messages after the end
are ignored. Neither machine reads a clock: the caller owns the exchange timeout and calls ``abort()``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Final

from jfds_device.codec.message import SecureChannelOpcode
from jfds_device.crypto.session_keys import SessionKeys, pase_session_keys
from jfds_device.crypto.spake2p import (
    P256_ORDER,
    PaseVerifier,
    Spake2pProver,
    Spake2pVerifier,
    compute_w0_w1,
    pase_context,
)
from jfds_device.errors import CryptoError, DecodeError, LocalProtocolError, MatterError, RemoteProtocolError
from jfds_device.securechannel import pase_messages as pm
from jfds_device.securechannel.session_params import SessionParameters
from jfds_device.securechannel.status import GeneralCode, SecureChannelProtocolCode, StatusReport, StatusReportError

__all__ = [
    "FAILURE_REPORT",
    "SUCCESS_REPORT",
    "Message",
    "PaseAttemptLimiter",
    "PaseInitiator",
    "PaseResponder",
    "PaseResult",
    "PaseState",
    "RandomBytes",
]

Message = tuple[SecureChannelOpcode, bytes]
RandomBytes = Callable[[int], bytes]
"""A source of ``n`` random bytes, e.g. ``secrets.token_bytes``; tests inject fixed bytes."""

_SC = SecureChannelOpcode
SUCCESS_REPORT: Final = StatusReport.secure_channel(
    GeneralCode.SUCCESS, SecureChannelProtocolCode.SESSION_ESTABLISHMENT_SUCCESS
)
FAILURE_REPORT: Final = StatusReport.secure_channel(GeneralCode.FAILURE, SecureChannelProtocolCode.INVALID_PARAMETER)
_FAILURE: Final[Message] = (_SC.STATUS_REPORT, FAILURE_REPORT.encode())
_MAX_SCALAR_DRAWS = 16  # a 32-byte draw is out of [1, n) with probability < 2**-32


class PaseState(Enum):
    # responder
    AWAIT_PBKDF_REQUEST = "await PBKDFParamRequest"
    AWAIT_PAKE1 = "await Pake1"
    AWAIT_PAKE3 = "await Pake3"
    # initiator
    IDLE = "idle"
    AWAIT_PBKDF_RESPONSE = "await PBKDFParamResponse"
    AWAIT_PAKE2 = "await Pake2"
    AWAIT_STATUS = "await StatusReport"
    # both
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PaseResult:
    """What a completed PASE hands to the session table."""

    local_session_id: int
    peer_session_id: int
    keys: SessionKeys
    peer_session_params: SessionParameters | None
    is_initiator: bool


def draw(random_bytes: RandomBytes, n: int) -> bytes:
    """``n`` bytes from the injected random source (PASE and CASE share it), checked for length."""
    data = random_bytes(n)
    if len(data) != n:
        raise LocalProtocolError(f"random source returned {len(data)} bytes, wanted {n}")
    return data


def _random_scalar(random_bytes: RandomBytes) -> int:
    """A uniform SPAKE2+ ephemeral in [1, n) by rejection sampling, so a fixed draw gives a fixed scalar."""
    for _ in range(_MAX_SCALAR_DRAWS):
        value = int.from_bytes(draw(random_bytes, 32), "big")
        if 0 < value < P256_ORDER:
            return value
    raise LocalProtocolError("random source keeps returning out-of-range scalars")


def check_session_id(session_id: int) -> int:
    if not 1 <= session_id <= 0xFFFF:
        raise LocalProtocolError(f"local session id {session_id} outside 1..65535")
    return session_id


Handler = Callable[[Any, bytes], Message | None]


class _PaseRole:
    """What both roles share: state, outcome, the dispatch loop and the failure path."""

    _HANDLERS: ClassVar[dict[tuple[PaseState, int], Handler]] = {}

    def __init__(self, state: PaseState, random_bytes: RandomBytes) -> None:
        self.state = state
        self.result: PaseResult | None = None
        self.error: MatterError | None = None
        self._random_bytes = random_bytes

    @property
    def done(self) -> bool:
        return self.state is PaseState.DONE

    @property
    def failed(self) -> bool:
        return self.state is PaseState.FAILED

    def abort(self, error: MatterError | None = None) -> None:
        """End the handshake from our side (exchange timeout or closed); nothing is sent. No-op once ended."""
        if self.state not in (PaseState.DONE, PaseState.FAILED):
            self._end(error or LocalProtocolError("PASE aborted locally"))

    def _end(self, error: MatterError) -> None:
        self.state = PaseState.FAILED
        self.error = error
        self._forget_secrets()

    def _forget_secrets(self) -> None:
        """Drop ephemeral key material once the handshake is over, whatever the outcome."""

    def _dispatch(self, opcode: int, payload: bytes) -> Message | None:
        if self.state in (PaseState.DONE, PaseState.FAILED):
            return None
        payload = bytes(payload)  # the context hashes it; a memoryview from the transport must not change
        if opcode == _SC.STATUS_REPORT:
            return self._on_status_report(payload)
        handler = self._HANDLERS.get((self.state, opcode))
        if handler is None:
            return self._fail(RemoteProtocolError(f"unexpected opcode {opcode:#04x} in state '{self.state.value}'"))
        try:
            return handler(self, payload)
        except (RemoteProtocolError, CryptoError) as exc:  # DecodeError is a RemoteProtocolError
            return self._fail(exc)

    def _fail(self, error: MatterError) -> Message:
        self._end(error)
        return _FAILURE

    def _on_status_report(self, payload: bytes) -> Message | None:
        # The peer gave up (or sent garbage where a StatusReport should be): end without answering.
        try:
            report = StatusReport.decode(payload)
        except DecodeError as exc:
            self._end(exc)
            return None
        self._end(StatusReportError(report))
        return None


class PaseResponder(_PaseRole):
    """Device side: holds the verifier (w0, L), never the passcode.

    ``local_session_id`` is either the id to offer or a callable that allocates one when a valid
    PBKDFParamRequest arrives; either way the id in use is ``self.local_session_id`` afterwards, so the caller
    can release it if the handshake fails.
    """

    def __init__(
        self,
        verifier: PaseVerifier,
        *,
        salt: bytes,
        iterations: int,
        local_session_id: int | Callable[[], int],
        session_params: SessionParameters | None = None,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        super().__init__(PaseState.AWAIT_PBKDF_REQUEST, random_bytes)
        if not pm.PBKDF_SALT_MIN_LENGTH <= len(salt) <= pm.PBKDF_SALT_MAX_LENGTH:
            raise LocalProtocolError(f"PBKDF salt must be {pm.PBKDF_SALT_MIN_LENGTH}..{pm.PBKDF_SALT_MAX_LENGTH} bytes")
        if not pm.PBKDF_ITERATIONS_MIN <= iterations <= pm.PBKDF_ITERATIONS_MAX:
            raise LocalProtocolError(f"PBKDF iterations must be {pm.PBKDF_ITERATIONS_MIN}..{pm.PBKDF_ITERATIONS_MAX}")
        self._verifier = verifier
        self._pbkdf = pm.PbkdfParameters(iterations=iterations, salt=bytes(salt))
        self._allocate = local_session_id if callable(local_session_id) else None
        self.local_session_id: int | None = None if callable(local_session_id) else check_session_id(local_session_id)
        self._session_params = session_params
        self._peer_session_id = 0
        self._peer_params: SessionParameters | None = None
        self._context = b""
        self._spake: Spake2pVerifier | None = None
        self.failed_confirmation = False
        """True when this attempt consumed a passcode guess without succeeding: it failed after we sent Pake2
        (cA did not verify, the initiator rejected our cB with a StatusReport, or it was aborted). Feed it to
        ``PaseAttemptLimiter``: a commissioner learns whether its guess was right from cB alone, so counting
        only bad cA values would let it probe passcodes without ever being counted."""

    def receive(self, opcode: int, payload: bytes) -> list[Message]:
        """Feed one secure-channel message from the initiator; return the messages to send back."""
        reply = self._dispatch(opcode, payload)
        return [] if reply is None else [reply]

    def _end(self, error: MatterError) -> None:
        if self.state is PaseState.AWAIT_PAKE3:
            self.failed_confirmation = True
        super()._end(error)

    def _forget_secrets(self) -> None:
        self._spake = None

    def _on_pbkdf_param_request(self, payload: bytes) -> Message:
        request = pm.decode_message(pm.PbkdfParamRequest, payload)
        if request.passcode_id != pm.DEFAULT_PASSCODE_ID:
            raise RemoteProtocolError(f"passcode id {request.passcode_id}: only the default (0) is offered")
        if self._allocate is not None:
            self.local_session_id = check_session_id(self._allocate())
        session_id = self.local_session_id
        if session_id is None:  # pragma: no cover - set just above or in __init__
            raise LocalProtocolError("no local session id")
        response = pm.PbkdfParamResponse(
            initiator_random=request.initiator_random,
            responder_random=draw(self._random_bytes, pm.RANDOM_LENGTH),
            responder_session_id=session_id,
            pbkdf_parameters=None if request.has_pbkdf_parameters else self._pbkdf,
            responder_session_params=self._session_params,
        ).encode()
        # The context covers both payloads exactly as they crossed the wire (Core spec §4.14.1).
        self._context = pase_context(payload, response)
        self._peer_session_id = request.initiator_session_id
        self._peer_params = request.initiator_session_params
        self.state = PaseState.AWAIT_PAKE1
        return (_SC.PBKDF_PARAM_RESPONSE, response)

    def _on_pake1(self, payload: bytes) -> Message:
        pake1 = pm.decode_message(pm.Pake1, payload)
        w0, L = self._verifier
        self._spake = Spake2pVerifier(self._context, w0, L, y=_random_scalar(self._random_bytes))
        pb, cb = self._spake.respond(pake1.pa)  # CryptoError for an off-curve or degenerate pA
        self.state = PaseState.AWAIT_PAKE3
        return (_SC.PASE_PAKE2, pm.Pake2(pb=pb, cb=cb).encode())

    def _on_pake3(self, payload: bytes) -> Message:
        pake3 = pm.decode_message(pm.Pake3, payload)
        if self._spake is None or self.local_session_id is None:  # pragma: no cover - guarded by the state
            raise LocalProtocolError("Pake3 handled before Pake1")
        ke = self._spake.finish(pake3.ca)  # CryptoError: wrong passcode → failed_confirmation via _end
        self.result = PaseResult(
            local_session_id=self.local_session_id,
            peer_session_id=self._peer_session_id,
            keys=pase_session_keys(ke),
            peer_session_params=self._peer_params,
            is_initiator=False,
        )
        self.state = PaseState.DONE
        self._forget_secrets()
        return (_SC.STATUS_REPORT, SUCCESS_REPORT.encode())

    _HANDLERS: ClassVar[dict[tuple[PaseState, int], Handler]] = {
        (PaseState.AWAIT_PBKDF_REQUEST, _SC.PBKDF_PARAM_REQUEST): _on_pbkdf_param_request,
        (PaseState.AWAIT_PAKE1, _SC.PASE_PAKE1): _on_pake1,
        (PaseState.AWAIT_PAKE3, _SC.PASE_PAKE3): _on_pake3,
    }


class PaseInitiator(_PaseRole):
    """Commissioner side. ``pbkdf_parameters`` are the salt and iterations if known in advance (then the
    request sets hasPBKDFParameters and the responder leaves them out)."""

    def __init__(
        self,
        passcode: int,
        *,
        local_session_id: int,
        session_params: SessionParameters | None = None,
        pbkdf_parameters: pm.PbkdfParameters | None = None,
        random_bytes: RandomBytes = secrets.token_bytes,
    ) -> None:
        super().__init__(PaseState.IDLE, random_bytes)
        if not 0 <= passcode <= 0xFFFF_FFFF:
            raise LocalProtocolError("passcode must fit in 32 bits")
        self._passcode = passcode
        self.local_session_id = check_session_id(local_session_id)
        self._session_params = session_params
        self._pbkdf = pbkdf_parameters
        self._request = b""
        self._initiator_random = b""
        self._peer_session_id = 0
        self._peer_params: SessionParameters | None = None
        self._spake: Spake2pProver | None = None
        self._keys: SessionKeys | None = None

    def start(self) -> Message:
        """The PBKDFParamRequest that opens the exchange."""
        if self.state is not PaseState.IDLE:
            raise LocalProtocolError("PaseInitiator.start() called twice")
        self._initiator_random = draw(self._random_bytes, pm.RANDOM_LENGTH)
        self._request = pm.PbkdfParamRequest(
            initiator_random=self._initiator_random,
            initiator_session_id=self.local_session_id,
            passcode_id=pm.DEFAULT_PASSCODE_ID,
            has_pbkdf_parameters=self._pbkdf is not None,
            initiator_session_params=self._session_params,
        ).encode()
        self.state = PaseState.AWAIT_PBKDF_RESPONSE
        return (_SC.PBKDF_PARAM_REQUEST, self._request)

    def receive(self, opcode: int, payload: bytes) -> Message | None:
        """Feed one secure-channel message from the responder; return the reply to send, if any."""
        if self.state is PaseState.IDLE:
            raise LocalProtocolError("PaseInitiator.receive() before start()")
        return self._dispatch(opcode, payload)

    def _forget_secrets(self) -> None:
        self._spake = None
        self._keys = None

    def _on_pbkdf_param_response(self, payload: bytes) -> Message:
        response = pm.decode_message(pm.PbkdfParamResponse, payload)
        if response.initiator_random != self._initiator_random:
            raise RemoteProtocolError("PBKDFParamResponse does not echo our initiatorRandom")
        # The responder should omit them when we sent ours; if it sends them anyway, they are the truth.
        pbkdf = response.pbkdf_parameters or self._pbkdf
        if pbkdf is None:
            raise RemoteProtocolError("PBKDFParamResponse lacks the PBKDF parameters we asked for")
        w0, w1 = compute_w0_w1(self._passcode, pbkdf.salt, pbkdf.iterations)
        context = pase_context(self._request, payload)
        self._spake = Spake2pProver(context, w0, w1, x=_random_scalar(self._random_bytes))
        self._peer_session_id = response.responder_session_id
        self._peer_params = response.responder_session_params
        self.state = PaseState.AWAIT_PAKE2
        return (_SC.PASE_PAKE1, pm.Pake1(pa=self._spake.share).encode())

    def _on_pake2(self, payload: bytes) -> Message:
        pake2 = pm.decode_message(pm.Pake2, payload)
        if self._spake is None:  # pragma: no cover - guarded by the state
            raise LocalProtocolError("Pake2 handled before the PBKDFParamResponse")
        ca, ke = self._spake.finish(pake2.pb, pake2.cb)  # CryptoError: bad pB, or cB wrong (wrong passcode)
        self._keys = pase_session_keys(ke)
        self.state = PaseState.AWAIT_STATUS
        return (_SC.PASE_PAKE3, pm.Pake3(ca=ca).encode())

    def _on_status_report(self, payload: bytes) -> Message | None:
        if self.state is not PaseState.AWAIT_STATUS or self._keys is None:
            return super()._on_status_report(payload)
        try:
            report = StatusReport.decode(payload)
        except DecodeError as exc:
            self._end(exc)
            return None
        if not report.is_secure_channel(GeneralCode.SUCCESS, SecureChannelProtocolCode.SESSION_ESTABLISHMENT_SUCCESS):
            self._end(StatusReportError(report))
            return None
        self.result = PaseResult(
            local_session_id=self.local_session_id,
            peer_session_id=self._peer_session_id,
            keys=self._keys,
            peer_session_params=self._peer_params,
            is_initiator=True,
        )
        self.state = PaseState.DONE
        self._forget_secrets()
        return None

    _HANDLERS: ClassVar[dict[tuple[PaseState, int], Handler]] = {
        (PaseState.AWAIT_PBKDF_RESPONSE, _SC.PBKDF_PARAM_RESPONSE): _on_pbkdf_param_response,
        (PaseState.AWAIT_PAKE2, _SC.PASE_PAKE2): _on_pake2,
    }


class PaseAttemptLimiter:
    """Counts failed PASE attempts in one commissioning window.

    Core spec §13.3, as connectedhomeip's CommissioningWindowManager cites it: a node SHALL exit commissioning
    mode after 20 failed commissioning attempts. The node records a failure per responder whose
    ``failed_confirmation`` is set, closes the window once ``closed``, and calls ``reset()`` when a new window
    opens.
    """

    MAX_FAILED_ATTEMPTS: ClassVar[int] = 20

    def __init__(self, max_failed_attempts: int = MAX_FAILED_ATTEMPTS) -> None:
        if max_failed_attempts < 1:
            raise LocalProtocolError("max_failed_attempts must be at least 1")
        self.max_failed_attempts = max_failed_attempts
        self._failed = 0

    @property
    def failed_attempts(self) -> int:
        return self._failed

    @property
    def closed(self) -> bool:
        return self._failed >= self.max_failed_attempts

    def record_failure(self) -> bool:
        """Count one failed attempt; return True if the window must now close."""
        self._failed += 1
        return self.closed

    def observe(self, responder: PaseResponder) -> bool:
        """Count ``responder`` if it consumed a passcode guess; return ``closed``. Call once per responder."""
        if responder.failed_confirmation:
            self._failed += 1
        return self.closed

    def reset(self) -> None:
        self._failed = 0
