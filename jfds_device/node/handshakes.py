"""Session establishment glue: runs PASE (and later CASE) responders on unsecured exchanges.

The handshakes themselves are sans-IO machines in ``securechannel/``; this module feeds them the messages of
their exchange, sends their replies, installs the secure session they produce and counts failed passcode
guesses against the commissioning window (Core spec 5.5: the window closes after 20 failed attempts).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from jfds_device.codec.message import ProtocolId, SecureChannelOpcode
from jfds_device.crypto.spake2p import PaseVerifier, make_verifier
from jfds_device.securechannel.pase import PaseAttemptLimiter, PaseResponder
from jfds_device.securechannel.session_params import SessionParameters
from jfds_device.securechannel.status import StatusReport
from jfds_device.transport.exchange import ExchangeRef, MessageReceived
from jfds_device.transport.mrp import MrpParameters
from jfds_device.transport.sessions import SecureSession, SessionAuthMode, SessionTable
from jfds_device.transport.udp import UdpEndpoint

log = logging.getLogger(__name__)

PBKDF_ITERATIONS = 1000  # the spec minimum; the CHIP SDK's default for on-device verifiers
BUSY_WAIT_MS = 500


@dataclass
class CommissioningWindow:
    """The basic commissioning window opened at start while the node has no fabric (Core spec 5.4.2.3)."""

    passcode: int
    discriminator: int
    is_open: bool = False
    salt: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    iterations: int = PBKDF_ITERATIONS
    limiter: PaseAttemptLimiter = field(default_factory=PaseAttemptLimiter)
    verifier: PaseVerifier | None = None
    on_change: Callable[[bool], None] | None = None

    def open(self) -> None:
        if self.verifier is None:
            self.verifier = make_verifier(self.passcode, self.salt, self.iterations)
        self.limiter.reset()
        self._set(True)

    def close(self) -> None:
        self._set(False)

    def _set(self, is_open: bool) -> None:
        if is_open != self.is_open:
            self.is_open = is_open
            log.info("commissioning window %s", "opened" if is_open else "closed")
            if self.on_change is not None:
                self.on_change(is_open)


class HandshakeManager:
    """Owns the in-progress handshakes, keyed by their unsecured exchange."""

    def __init__(
        self,
        endpoint: UdpEndpoint,
        sessions: SessionTable,
        window: CommissioningWindow,
        session_params: SessionParameters,
    ) -> None:
        self._endpoint = endpoint
        self._sessions = sessions
        self._window = window
        self._session_params = session_params
        self._pase: dict[ExchangeRef, PaseResponder] = {}

    def on_message(self, event: MessageReceived) -> None:
        ref = event.exchange
        responder = self._pase.get(ref)
        if responder is None:
            if not event.new_exchange or event.opcode != SecureChannelOpcode.PBKDF_PARAM_REQUEST:
                log.debug("ignoring secure-channel opcode 0x%02x outside a handshake", event.opcode)
                self._endpoint.close_exchange(ref)
                return
            if not self._window.is_open or self._window.verifier is None:
                log.info("PASE refused: the commissioning window is closed")
                self._reply(ref, SecureChannelOpcode.STATUS_REPORT, StatusReport.busy(BUSY_WAIT_MS).encode(), last=True)
                return
            responder = PaseResponder(
                self._window.verifier,
                salt=self._window.salt,
                iterations=self._window.iterations,
                local_session_id=self._sessions.allocate_session_id,
                session_params=self._session_params,
            )
            self._pase[ref] = responder
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

    def on_exchange_closed(self, ref: ExchangeRef) -> None:
        responder = self._pase.get(ref)
        if responder is not None and not responder.done:
            responder.abort()
            self._abandon(ref, responder)

    def _reply(self, ref: ExchangeRef, opcode: int, payload: bytes, *, last: bool) -> None:
        self._endpoint.send(ref, ProtocolId.SECURE_CHANNEL, opcode, payload, expect_response=not last)
        if last:
            self._endpoint.close_exchange(ref)

    def _establish(self, ref: ExchangeRef, responder: PaseResponder) -> None:
        del self._pase[ref]
        result = responder.result
        assert result is not None  # done implies a result
        encrypt_key, decrypt_key = result.keys.for_role(result.is_initiator)
        params = result.peer_session_params
        session: SecureSession = self._sessions.add_secure(
            local_session_id=result.local_session_id,
            peer_session_id=result.peer_session_id,
            encrypt_key=encrypt_key,
            decrypt_key=decrypt_key,
            auth_mode=SessionAuthMode.PASE,
            peer_addr=ref.session.peer_addr,
            now=self._endpoint.now(),
            peer_mrp=MrpParameters.from_ms(
                params.idle_interval_ms if params else None,
                params.active_interval_ms if params else None,
                params.active_threshold_ms if params else None,
            ),
            attestation_challenge=result.keys.attestation_challenge,
        )
        log.info("PASE session %d established with %s", session.local_session_id, ref.session.peer_addr)

    def _abandon(self, ref: ExchangeRef, responder: PaseResponder) -> None:
        self._pase.pop(ref, None)
        if responder.local_session_id is not None:
            self._sessions.release_session_id(responder.local_session_id)
        if self._window.limiter.observe(responder):
            log.warning("%d failed PASE attempts: closing the commissioning window",
                        self._window.limiter.failed_attempts)
            self._window.close()
        log.info("PASE handshake failed: %s", responder.error)
