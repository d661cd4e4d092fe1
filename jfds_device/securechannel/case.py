"""CASE (Core spec §4.14.2) as two sans-IO state machines: the node's responder and its initiator.

Flow (initiator → responder)::

    Sigma1                →                         AWAIT_SIGMA1 → AWAIT_SIGMA3
                          ←  Sigma2 {.., TBEData2 sealed with S2K}
    Sigma3 {TBEData3}     →                         AWAIT_SIGMA3 → DONE
                          ←  StatusReport(SUCCESS, SecureChannel, SESSION_ESTABLISHMENT_SUCCESS)

Resumption (Core spec §4.14.2, "Session Resumption")::

    Sigma1 {.., resumptionID, initiatorResumeMIC}  →   AWAIT_SIGMA1 → AWAIT_RESUME_STATUS
                          ←  Sigma2_Resume {new resumptionID, sigma2ResumeMIC}
    StatusReport(SUCCESS) →                         AWAIT_RESUME_STATUS → DONE

The responder resumes only when its store knows the resumption id, the record's fabric is still ours and
the MIC verifies; otherwise it runs the full exchange from the same Sigma1 (which always carries a
destination id and an ephemeral key for that reason), as connectedhomeip and matter.js do.

Shape and failure handling mirror ``pase``: one ``(state, opcode) → handler`` table per role, ``receive()``
returning what to send, ``result``/``error`` once ``done``/``failed``. Peer input never raises: a failure
ends the handshake with one StatusReport to send — NO_SHARED_TRUST_ROOTS when no fabric matches the
destination id, BUSY when no session id is free, INVALID_PARAMETER for anything else (bad TLV, bad point,
MIC, signature or certificate chain) — and a StatusReport from the peer ends it without a reply.
Neither machine persists anything: the caller stores ``result.resumption_record`` in its ResumptionStore.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any, ClassVar, Final

from jfds_device.codec.message import SecureChannelOpcode
from jfds_device.crypto.case_keys import (
    TBE_DATA2_NONCE,
    TBE_DATA3_NONCE,
    ResumeStep,
    destination_id,
    resume_mic,
    sigma2_key,
    sigma3_key,
    verify_resume_mic,
)
from jfds_device.crypto.certs import MAX_OPERATIONAL_NODE_ID, MIN_OPERATIONAL_NODE_ID
from jfds_device.crypto.primitives import P256Keypair
from jfds_device.crypto.session_keys import (
    RESUMPTION_ID_LENGTH,
    SessionKeys,
    case_resumption_session_keys,
    case_session_keys,
)
from jfds_device.errors import CryptoError, DecodeError, LocalProtocolError, MatterError, RemoteProtocolError
from jfds_device.securechannel import case_messages as cm
from jfds_device.securechannel.case_identity import (
    InMemoryResumptionStore,
    OperationalIdentity,
    ResumptionRecord,
    ResumptionStore,
    verify_peer,
)
from jfds_device.securechannel.pase import (
    FAILURE_REPORT,
    SUCCESS_REPORT,
    Message,
    RandomBytes,
    check_session_id,
    draw,
)
from jfds_device.securechannel.session_params import SessionParameters
from jfds_device.securechannel.status import GeneralCode, SecureChannelProtocolCode, StatusReport, StatusReportError

__all__ = [
    "BUSY_WAIT_MS",
    "NO_SHARED_TRUST_ROOTS_REPORT",
    "CaseError",
    "CaseInitiator",
    "CaseResponder",
    "CaseResult",
    "CaseState",
    "InMemoryResumptionStore",
    "OperationalIdentity",
    "ResumptionRecord",
    "ResumptionStore",
]

_SC = SecureChannelOpcode
NO_SHARED_TRUST_ROOTS_REPORT: Final = StatusReport.secure_channel(
    GeneralCode.FAILURE, SecureChannelProtocolCode.NO_SHARED_TRUST_ROOTS
)
# connectedhomeip CASEServer answers a Sigma1 it cannot take now with BUSY and a 5000 ms minimum wait.
BUSY_WAIT_MS: Final = 5000


class CaseState(Enum):
    # responder
    AWAIT_SIGMA1 = "await Sigma1"
    AWAIT_SIGMA3 = "await Sigma3"
    AWAIT_RESUME_STATUS = "await StatusReport after Sigma2_Resume"
    # initiator
    IDLE = "idle"
    AWAIT_SIGMA2 = "await Sigma2 or Sigma2_Resume"
    AWAIT_STATUS = "await StatusReport after Sigma3"
    # both
    DONE = "done"
    FAILED = "failed"


class CaseError(RemoteProtocolError):
    """A handshake failure and the StatusReport that answers it (INVALID_PARAMETER unless stated)."""

    def __init__(self, message: str, report: StatusReport = FAILURE_REPORT) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True, slots=True)
class CaseResult:
    """What a completed CASE hands to the session table (``SessionTable.add_secure`` takes these fields)."""

    local_session_id: int
    peer_session_id: int
    keys: SessionKeys
    is_initiator: bool
    local_node_id: int
    peer_session_params: SessionParameters | None
    resumption_record: ResumptionRecord
    """To persist: resuming this session later starts from it (it replaces the peer's previous record). It
    also names the peer, so the subject properties below read from it."""
    resumed: bool

    @property
    def fabric_index(self) -> int:
        return self.resumption_record.fabric_index

    @property
    def peer_node_id(self) -> int:
        return self.resumption_record.peer_node_id

    @property
    def peer_cats(self) -> tuple[int, ...]:
        """The peer's CASE Authenticated Tags (Core spec §6.6.2.1.2), from its NOC or the resumed record."""
        return self.resumption_record.peer_cats


Handler = Callable[[Any, bytes], Message | None]


class _CaseRole:
    """What both roles share: state, outcome, the dispatch loop, the failure path and the final StatusReport."""

    _HANDLERS: ClassVar[dict[tuple[CaseState, int], Handler]] = {}

    def __init__(
        self,
        state: CaseState,
        random_bytes: RandomBytes,
        ephemeral_keypair: Callable[[], P256Keypair],
        session_params: SessionParameters | None,
        now: int | float | datetime | None,
    ) -> None:
        self.state = state
        self.result: CaseResult | None = None
        self.error: MatterError | None = None
        self._random_bytes = random_bytes
        self._ephemeral_keypair = ephemeral_keypair
        self._session_params = session_params
        self._now = now
        self._pending: CaseResult | None = None  # set while only the peer's SUCCESS StatusReport is missing
        self._shared_secret = b""

    @property
    def done(self) -> bool:
        return self.state is CaseState.DONE

    @property
    def failed(self) -> bool:
        return self.state is CaseState.FAILED

    def abort(self, error: MatterError | None = None) -> None:
        """End the handshake from our side (exchange timeout or closed); nothing is sent. No-op once ended."""
        if self.state not in (CaseState.DONE, CaseState.FAILED):
            self._end(error or LocalProtocolError("CASE aborted locally"))

    def _end(self, error: MatterError) -> None:
        self.state = CaseState.FAILED
        self.error = error
        self._forget_secrets()

    def _finish(self, result: CaseResult) -> None:
        self.result = result
        self.state = CaseState.DONE
        self._forget_secrets()

    def _forget_secrets(self) -> None:
        """Drop ephemeral key material once the handshake is over, whatever the outcome."""
        self._pending = None
        self._shared_secret = b""

    def _dispatch(self, opcode: int, payload: bytes) -> Message | None:
        if self.state in (CaseState.DONE, CaseState.FAILED):
            return None
        payload = bytes(payload)  # the salts hash it; a memoryview from the transport must not change
        if opcode == _SC.STATUS_REPORT:
            return self._on_status_report(payload)
        handler = self._HANDLERS.get((self.state, opcode))
        if handler is None:
            return self._fail(RemoteProtocolError(f"unexpected opcode {opcode:#04x} in state '{self.state.value}'"))
        try:
            return handler(self, payload)
        except (RemoteProtocolError, CryptoError) as exc:  # DecodeError, CaseError; CertificateError is a CryptoError
            return self._fail(exc)

    def _fail(self, error: MatterError) -> Message:
        self._end(error)
        report = error.report if isinstance(error, CaseError) else FAILURE_REPORT
        return (_SC.STATUS_REPORT, report.encode())

    def _on_status_report(self, payload: bytes) -> None:
        # SUCCESS completes a handshake that only waits for it; anything else (or garbage) ends it, unanswered.
        try:
            report = StatusReport.decode(payload)
        except DecodeError as exc:
            self._end(exc)
            return
        success = report.is_secure_channel(GeneralCode.SUCCESS, SecureChannelProtocolCode.SESSION_ESTABLISHMENT_SUCCESS)
        if success and self._pending is not None:
            self._finish(self._pending)
        else:
            self._end(StatusReportError(report))


# ---------------------------------------------------------------------------------------------- responder


class CaseResponder(_CaseRole):
    """Node side: answers a Sigma1 for any of ``fabrics``.

    ``local_session_id`` is the id to offer, or a callable that allocates one once a Sigma1 is accepted and
    returns None when no session is free (answered with BUSY); the id in use is ``self.local_session_id``
    afterwards, so the caller can release it if the handshake fails. ``now`` (Matter epoch seconds or a
    datetime) checks the initiator's certificate validity periods; None skips that check.
    """

    def __init__(
        self,
        fabrics: Sequence[OperationalIdentity],
        resumption: ResumptionStore,
        *,
        local_session_id: int | Callable[[], int | None],
        session_params: SessionParameters | None = None,
        now: int | float | datetime | None = None,
        random_bytes: RandomBytes = secrets.token_bytes,
        ephemeral_keypair: Callable[[], P256Keypair] = P256Keypair.generate,
        busy_wait_ms: int = BUSY_WAIT_MS,
    ) -> None:
        super().__init__(CaseState.AWAIT_SIGMA1, random_bytes, ephemeral_keypair, session_params, now)
        self._fabrics = tuple(fabrics)
        self._store = resumption
        self._allocate = local_session_id if callable(local_session_id) else None
        self.local_session_id: int | None = None if callable(local_session_id) else check_session_id(local_session_id)
        self._busy_report = StatusReport.busy(busy_wait_ms)
        self._fabric: OperationalIdentity | None = None
        self._ipk = b""
        self._sigma1 = b""
        self._sigma2 = b""
        self._eph_public = b""
        self._peer_eph_public = b""
        self._peer_session_id = 0
        self._peer_params: SessionParameters | None = None
        self._resumption_id = b""

    def receive(self, opcode: int, payload: bytes) -> list[Message]:
        """Feed one secure-channel message from the initiator; return the messages to send back."""
        reply = self._dispatch(opcode, payload)
        return [] if reply is None else [reply]

    def _take_session_id(self) -> int:
        if self._allocate is not None:
            session_id = self._allocate()
            if session_id is None:
                raise CaseError("no free session id", self._busy_report)
            self.local_session_id = check_session_id(session_id)
        if self.local_session_id is None:  # pragma: no cover - set just above or in __init__
            raise LocalProtocolError("no local session id")
        return self.local_session_id

    def _on_sigma1(self, payload: bytes) -> Message:
        sigma1 = cm.decode_message(cm.Sigma1, payload)
        if (sigma1.resumption_id is None) != (sigma1.initiator_resume_mic is None):
            raise CaseError("Sigma1 carries only one of resumptionID and initiatorResumeMIC")
        self._peer_session_id = sigma1.initiator_session_id
        self._peer_params = sigma1.initiator_session_params
        resumable = self._find_resumable(sigma1)
        if resumable is not None:
            return self._send_sigma2_resume(sigma1, *resumable)
        return self._send_sigma2(sigma1, payload)

    def _find_resumable(self, sigma1: cm.Sigma1) -> tuple[ResumptionRecord, OperationalIdentity] | None:
        """The record to resume from, or None to fall back to the full exchange (unknown id, fabric gone,
        MIC wrong): Core spec §4.14.2 lets the responder ignore a resumption attempt it cannot honour."""
        if sigma1.resumption_id is None or sigma1.initiator_resume_mic is None:
            return None
        record = self._store.get_by_id(sigma1.resumption_id)
        if record is None or record.resumption_id != sigma1.resumption_id:
            return None
        fabric = next((f for f in self._fabrics if f.fabric_index == record.fabric_index), None)
        if fabric is None:
            return None
        mic, random = sigma1.initiator_resume_mic, sigma1.initiator_random
        try:
            verify_resume_mic(ResumeStep.SIGMA1, record.shared_secret, random, record.resumption_id, mic)
        except CryptoError:
            return None
        return record, fabric

    def _send_sigma2_resume(self, sigma1: cm.Sigma1, record: ResumptionRecord, fabric: OperationalIdentity) -> Message:
        session_id = self._take_session_id()
        new_id = draw(self._random_bytes, RESUMPTION_ID_LENGTH)
        # S2RK is salted with the *new* id; the session keys with the id the initiator presented (case_keys).
        mic = resume_mic(ResumeStep.SIGMA2, record.shared_secret, sigma1.initiator_random, new_id)
        message = cm.Sigma2Resume(
            resumption_id=new_id,
            sigma2_resume_mic=mic,
            responder_session_id=session_id,
            responder_session_params=self._session_params,
        ).encode()
        self._pending = CaseResult(
            local_session_id=session_id,
            peer_session_id=self._peer_session_id,
            keys=case_resumption_session_keys(record.shared_secret, sigma1.initiator_random, record.resumption_id),
            is_initiator=False,
            local_node_id=fabric.node_id,
            peer_session_params=self._peer_params,
            resumption_record=replace(record, resumption_id=new_id),
            resumed=True,
        )
        self.state = CaseState.AWAIT_RESUME_STATUS
        return (_SC.CASE_SIGMA2_RESUME, message)

    def _match_destination(self, sigma1: cm.Sigma1) -> tuple[OperationalIdentity, bytes]:
        """Core spec §4.14.2.3: the fabric (and IPK) whose destination id the initiator computed."""
        for fabric in self._fabrics:
            for ipk in (fabric.ipk, *fabric.other_ipks):
                candidate = destination_id(
                    ipk, sigma1.initiator_random, fabric.root_public_key, fabric.fabric_id, fabric.node_id
                )
                if hmac.compare_digest(candidate, sigma1.destination_id):
                    return fabric, ipk
        raise CaseError("no fabric matches the Sigma1 destinationId", NO_SHARED_TRUST_ROOTS_REPORT)

    def _send_sigma2(self, sigma1: cm.Sigma1, payload: bytes) -> Message:
        fabric, ipk = self._match_destination(sigma1)
        session_id = self._take_session_id()
        eph = self._ephemeral_keypair()
        shared_secret = eph.ecdh(sigma1.initiator_eph_pub_key)  # CryptoError for an invalid point
        responder_random = draw(self._random_bytes, cm.RANDOM_LENGTH)
        resumption_id = draw(self._random_bytes, RESUMPTION_ID_LENGTH)
        tbs = cm.TbsData(
            sender_noc=fabric.noc,
            sender_icac=fabric.icac,
            sender_eph_pub_key=eph.public_key_bytes,
            receiver_eph_pub_key=sigma1.initiator_eph_pub_key,
        )
        tbe = cm.TbeData2(
            responder_noc=fabric.noc,
            responder_icac=fabric.icac,
            signature=fabric.keypair.sign(tbs.encode()),
            resumption_id=resumption_id,
        )
        s2k = sigma2_key(shared_secret, ipk, responder_random, eph.public_key_bytes, payload)
        sigma2 = cm.Sigma2(
            responder_random=responder_random,
            responder_session_id=session_id,
            responder_eph_pub_key=eph.public_key_bytes,
            encrypted2=cm.seal_tbe(s2k, TBE_DATA2_NONCE, tbe),
            responder_session_params=self._session_params,
        ).encode()
        self._fabric, self._ipk, self._shared_secret = fabric, ipk, shared_secret
        self._sigma1, self._sigma2, self._resumption_id = payload, sigma2, resumption_id
        self._eph_public, self._peer_eph_public = eph.public_key_bytes, sigma1.initiator_eph_pub_key
        self.state = CaseState.AWAIT_SIGMA3
        return (_SC.CASE_SIGMA2, sigma2)

    def _on_sigma3(self, payload: bytes) -> Message:
        sigma3 = cm.decode_message(cm.Sigma3, payload)
        fabric = self._fabric
        if fabric is None or self.local_session_id is None:  # pragma: no cover - guarded by the state
            raise LocalProtocolError("Sigma3 handled before Sigma1")
        s3k = sigma3_key(self._shared_secret, self._ipk, self._sigma1, self._sigma2)
        tbe = cm.open_tbe(cm.TbeData3, s3k, TBE_DATA3_NONCE, sigma3.encrypted3)
        peer = verify_peer(
            fabric,
            tbe.initiator_noc,
            tbe.initiator_icac,
            tbe.signature,
            sender_eph=self._peer_eph_public,
            receiver_eph=self._eph_public,
            now=self._now,
        )
        record = ResumptionRecord(
            self._resumption_id, self._shared_secret, fabric.fabric_index, peer.node_id, peer.cats
        )
        self._finish(
            CaseResult(
                local_session_id=self.local_session_id,
                peer_session_id=self._peer_session_id,
                keys=case_session_keys(self._shared_secret, self._ipk, self._sigma1, self._sigma2, payload),
                is_initiator=False,
                local_node_id=fabric.node_id,
                peer_session_params=self._peer_params,
                resumption_record=record,
                resumed=False,
            )
        )
        return (_SC.STATUS_REPORT, SUCCESS_REPORT.encode())

    _HANDLERS: ClassVar[dict[tuple[CaseState, int], Handler]] = {
        (CaseState.AWAIT_SIGMA1, _SC.CASE_SIGMA1): _on_sigma1,
        (CaseState.AWAIT_SIGMA3, _SC.CASE_SIGMA3): _on_sigma3,
    }


# ---------------------------------------------------------------------------------------------- initiator


class CaseInitiator(_CaseRole):
    """Node side when we open a session to ``peer_node_id`` on ``identity``'s fabric.

    With a ``resumption_record`` (from ``ResumptionStore.get_by_peer``) Sigma1 offers resumption; the
    responder may still answer with a full Sigma2, which is then handled as usual.
    """

    def __init__(
        self,
        identity: OperationalIdentity,
        peer_node_id: int,
        *,
        local_session_id: int,
        session_params: SessionParameters | None = None,
        resumption_record: ResumptionRecord | None = None,
        now: int | float | datetime | None = None,
        random_bytes: RandomBytes = secrets.token_bytes,
        ephemeral_keypair: Callable[[], P256Keypair] = P256Keypair.generate,
    ) -> None:
        super().__init__(CaseState.IDLE, random_bytes, ephemeral_keypair, session_params, now)
        if not MIN_OPERATIONAL_NODE_ID <= peer_node_id <= MAX_OPERATIONAL_NODE_ID:
            raise LocalProtocolError(f"peer node id 0x{peer_node_id:016X} is not an operational node id")
        record = resumption_record
        if record is not None and (record.fabric_index, record.peer_node_id) != (identity.fabric_index, peer_node_id):
            raise LocalProtocolError("the resumption record belongs to another peer")
        self.identity = identity
        self.peer_node_id = peer_node_id
        self.local_session_id = check_session_id(local_session_id)
        self._record = record
        self._eph: P256Keypair | None = None
        self._initiator_random = b""
        self._sigma1 = b""

    def start(self) -> Message:
        """The Sigma1 that opens the exchange."""
        if self.state is not CaseState.IDLE:
            raise LocalProtocolError("CaseInitiator.start() called twice")
        identity, record = self.identity, self._record
        self._initiator_random = random = draw(self._random_bytes, cm.RANDOM_LENGTH)
        self._eph = self._ephemeral_keypair()
        self._sigma1 = cm.Sigma1(
            initiator_random=random,
            initiator_session_id=self.local_session_id,
            destination_id=destination_id(
                identity.ipk, random, identity.root_public_key, identity.fabric_id, self.peer_node_id
            ),
            initiator_eph_pub_key=self._eph.public_key_bytes,
            initiator_session_params=self._session_params,
            resumption_id=None if record is None else record.resumption_id,
            initiator_resume_mic=(
                None
                if record is None
                else resume_mic(ResumeStep.SIGMA1, record.shared_secret, random, record.resumption_id)
            ),
        ).encode()
        self.state = CaseState.AWAIT_SIGMA2
        return (_SC.CASE_SIGMA1, self._sigma1)

    def receive(self, opcode: int, payload: bytes) -> Message | None:
        """Feed one secure-channel message from the responder; return the reply to send, if any."""
        if self.state is CaseState.IDLE:
            raise LocalProtocolError("CaseInitiator.receive() before start()")
        return self._dispatch(opcode, payload)

    def _forget_secrets(self) -> None:
        super()._forget_secrets()
        self._eph = None

    def _on_sigma2(self, payload: bytes) -> Message:
        sigma2 = cm.decode_message(cm.Sigma2, payload)
        identity, eph = self.identity, self._eph
        if eph is None:  # pragma: no cover - guarded by the state
            raise LocalProtocolError("Sigma2 handled before start()")
        shared_secret = eph.ecdh(sigma2.responder_eph_pub_key)  # CryptoError for an invalid point
        s2k = sigma2_key(
            shared_secret, identity.ipk, sigma2.responder_random, sigma2.responder_eph_pub_key, self._sigma1
        )
        tbe2 = cm.open_tbe(cm.TbeData2, s2k, TBE_DATA2_NONCE, sigma2.encrypted2)
        peer = verify_peer(
            identity,
            tbe2.responder_noc,
            tbe2.responder_icac,
            tbe2.signature,
            sender_eph=sigma2.responder_eph_pub_key,
            receiver_eph=eph.public_key_bytes,
            now=self._now,
        )
        if peer.node_id != self.peer_node_id:  # the node id our destination id named (Core spec §4.14.2.3)
            raise CaseError(f"responder NOC names node 0x{peer.node_id:016X}, not 0x{self.peer_node_id:016X}")

        tbs3 = cm.TbsData(
            sender_noc=identity.noc,
            sender_icac=identity.icac,
            sender_eph_pub_key=eph.public_key_bytes,
            receiver_eph_pub_key=sigma2.responder_eph_pub_key,
        )
        tbe3 = cm.TbeData3(
            initiator_noc=identity.noc, initiator_icac=identity.icac, signature=identity.keypair.sign(tbs3.encode())
        )
        s3k = sigma3_key(shared_secret, identity.ipk, self._sigma1, payload)
        sigma3 = cm.Sigma3(encrypted3=cm.seal_tbe(s3k, TBE_DATA3_NONCE, tbe3)).encode()
        record = ResumptionRecord(tbe2.resumption_id, shared_secret, identity.fabric_index, peer.node_id, peer.cats)
        self._shared_secret = shared_secret
        self._pending = CaseResult(
            local_session_id=self.local_session_id,
            peer_session_id=sigma2.responder_session_id,
            keys=case_session_keys(shared_secret, identity.ipk, self._sigma1, payload, sigma3),
            is_initiator=True,
            local_node_id=identity.node_id,
            peer_session_params=sigma2.responder_session_params,
            resumption_record=record,
            resumed=False,
        )
        self.state = CaseState.AWAIT_STATUS
        return (_SC.CASE_SIGMA3, sigma3)

    def _on_sigma2_resume(self, payload: bytes) -> Message:
        resume = cm.decode_message(cm.Sigma2Resume, payload)
        record = self._record
        if record is None:
            raise CaseError("Sigma2_Resume, but we offered no resumption")
        # A wrong MIC is a CryptoError → INVALID_PARAMETER, as the SDK's HandleSigma2Resume answers.
        mic, random = resume.sigma2_resume_mic, self._initiator_random
        verify_resume_mic(ResumeStep.SIGMA2, record.shared_secret, random, resume.resumption_id, mic)
        self._finish(
            CaseResult(
                local_session_id=self.local_session_id,
                peer_session_id=resume.responder_session_id,
                keys=case_resumption_session_keys(record.shared_secret, self._initiator_random, record.resumption_id),
                is_initiator=True,
                local_node_id=self.identity.node_id,
                peer_session_params=resume.responder_session_params,
                resumption_record=replace(record, resumption_id=resume.resumption_id),
                resumed=True,
            )
        )
        return (_SC.STATUS_REPORT, SUCCESS_REPORT.encode())

    _HANDLERS: ClassVar[dict[tuple[CaseState, int], Handler]] = {
        (CaseState.AWAIT_SIGMA2, _SC.CASE_SIGMA2): _on_sigma2,
        (CaseState.AWAIT_SIGMA2, _SC.CASE_SIGMA2_RESUME): _on_sigma2_resume,
    }
