"""Session establishment glue: runs PASE and CASE responders on unsecured exchanges.

The handshakes themselves are sans-IO machines in ``securechannel/``; this module feeds them the messages of
their exchange, sends their replies, installs the secure session they produce, persists CASE resumption
state and counts failed passcode guesses against the commissioning window (Core spec 5.5: the window
closes after 20 failed attempts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from jfds_device.codec.message import ProtocolId, SecureChannelOpcode
from jfds_device.datamodel.commissioning_window import CommissioningWindow
from jfds_device.errors import MatterError
from jfds_device.securechannel.case import CaseResponder, CaseResult
from jfds_device.securechannel.case_identity import OperationalIdentity, ResumptionStore
from jfds_device.securechannel.pase import PaseResponder, PaseResult
from jfds_device.securechannel.session_params import SessionParameters
from jfds_device.securechannel.status import StatusReport
from jfds_device.transport.exchange import ExchangeRef, MessageReceived
from jfds_device.transport.mrp import MrpParameters
from jfds_device.transport.sessions import SecureSession, SessionAuthMode, SessionTable
from jfds_device.transport.udp import UdpEndpoint

log = logging.getLogger(__name__)

BUSY_WAIT_MS = 500


Responder = PaseResponder | CaseResponder


class HandshakeManager:
    """Owns the in-progress handshakes, keyed by their unsecured exchange."""

    def __init__(
        self,
        endpoint: UdpEndpoint,
        sessions: SessionTable,
        window: CommissioningWindow,
        session_params: SessionParameters,
        *,
        identities: Callable[[], Sequence[OperationalIdentity]] = list,
        resumption: ResumptionStore | None = None,
        on_pase_established: Callable[[SecureSession], None] | None = None,
    ) -> None:
        """``on_pase_established`` takes over what a new PASE session means for commissioning (the node arms
        the fail-safe, see ``CommissioningAttempt``); by default the window just stops listening."""
        self._endpoint = endpoint
        self._sessions = sessions
        self._window = window
        self._session_params = session_params
        self._identities = identities
        self._resumption = resumption
        self._on_pase_established = on_pase_established or (lambda _session: window.session_established())
        self._handshakes: dict[ExchangeRef, Responder] = {}

    def on_message(self, event: MessageReceived) -> None:
        ref = event.exchange
        responder = self._handshakes.get(ref)
        if responder is None:
            responder = self._start(event) if event.new_exchange else None
            if responder is None:
                return
            self._handshakes[ref] = responder
        replies = responder.receive(event.opcode, event.payload)
        finished = responder.done or responder.failed
        for index, (opcode, payload) in enumerate(replies):
            self._reply(ref, opcode, payload, last=finished and index == len(replies) - 1)
        if responder.done:
            self._establish(ref, responder)
        elif responder.failed:
            self._abandon(ref, responder)
        elif not replies:
            log.debug("PASE message ignored on %r", ref)

    def _start(self, event: MessageReceived) -> Responder | None:
        ref = event.exchange
        if event.opcode == SecureChannelOpcode.PBKDF_PARAM_REQUEST:
            verifier = self._window.pase_verifier
            if not self._window.accepting_pase or verifier is None:
                log.info("PASE refused: no commissioning window is accepting PASE")
                self._reply(ref, SecureChannelOpcode.STATUS_REPORT, StatusReport.busy(BUSY_WAIT_MS).encode(), last=True)
                return None
            return PaseResponder(
                verifier,
                salt=self._window.salt,
                iterations=self._window.iterations,
                local_session_id=self._sessions.allocate_session_id,
                session_params=self._session_params,
            )
        if event.opcode == SecureChannelOpcode.CASE_SIGMA1 and self._resumption is not None:
            return CaseResponder(
                self._identities(),
                self._resumption,
                local_session_id=self._try_allocate,
                session_params=self._session_params,
                now=datetime.now(UTC),  # certificate validity is checked against wall-clock time
            )
        log.debug("ignoring secure-channel opcode 0x%02x outside a handshake", event.opcode)
        self._endpoint.close_exchange(ref)
        return None

    def _try_allocate(self) -> int | None:
        try:
            return self._sessions.allocate_session_id()
        except MatterError:  # the table is full: CASE answers BUSY
            return None

    def on_exchange_closed(self, ref: ExchangeRef) -> None:
        responder = self._handshakes.get(ref)
        if responder is not None and not responder.done:
            responder.abort()
            self._abandon(ref, responder)

    def _reply(self, ref: ExchangeRef, opcode: int, payload: bytes, *, last: bool) -> None:
        self._endpoint.send(ref, ProtocolId.SECURE_CHANNEL, opcode, payload, expect_response=not last)
        if last:
            self._endpoint.close_exchange(ref)

    def _establish(self, ref: ExchangeRef, responder: Responder) -> None:
        del self._handshakes[ref]
        result = responder.result
        assert result is not None  # done implies a result
        encrypt_key, decrypt_key = result.keys.for_role(result.is_initiator)
        params = result.peer_session_params
        common = {
            "local_session_id": result.local_session_id,
            "peer_session_id": result.peer_session_id,
            "encrypt_key": encrypt_key,
            "decrypt_key": decrypt_key,
            "peer_addr": ref.session.peer_addr,
            "now": self._endpoint.now(),
            "peer_mrp": MrpParameters.from_ms(
                params.idle_interval_ms if params else None,
                params.active_interval_ms if params else None,
                params.active_threshold_ms if params else None,
            ),
            "attestation_challenge": result.keys.attestation_challenge,
        }
        session: SecureSession
        if isinstance(result, PaseResult):
            session = self._sessions.add_secure(auth_mode=SessionAuthMode.PASE, **common)
        else:
            session = self._add_case_session(result, common)
        log.info("%s session %d established with %s", session.auth_mode.name, session.local_session_id,
                 ref.session.peer_addr)
        if session.auth_mode is SessionAuthMode.PASE:
            self._on_pase_established(session)

    def _add_case_session(self, result: CaseResult, common: dict[str, object]) -> SecureSession:
        if self._resumption is not None:
            self._resumption.put(result.resumption_record)
        return self._sessions.add_secure(
            auth_mode=SessionAuthMode.CASE,
            local_node_id=result.local_node_id,
            peer_node_id=result.peer_node_id,
            fabric_index=result.fabric_index,
            cats=tuple(result.peer_cats),
            **common,  # type: ignore[arg-type]
        )

    def _abandon(self, ref: ExchangeRef, responder: Responder) -> None:
        self._handshakes.pop(ref, None)
        if responder.local_session_id is not None:
            self._sessions.release_session_id(responder.local_session_id)
        if isinstance(responder, PaseResponder) and self._window.observe_pase(responder):
            log.warning("%d failed PASE attempts: closing the commissioning window",
                        self._window.limiter.failed_attempts)
        log.info("%s handshake failed: %s", type(responder).__name__, responder.error)
