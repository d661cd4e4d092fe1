"""Composition root: builds storage -> data model -> IM -> transport -> secure channel, and runs them.

Everything protocol-shaped is a sans-IO machine; this module is the asyncio shell that owns the socket,
the clock and the timers, and routes transport events to the handshakes or to the Interaction Model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from clusters.basic_information.server import BasicInformationConfig
from jfds_device.codec.message import ProtocolId
from jfds_device.crypto.attestation import AttestationMaterial, load_attestation
from jfds_device.datamodel.commissioning_attempt import CommissioningAttempt
from jfds_device.datamodel.commissioning_window import CommissioningWindow
from jfds_device.datamodel.root import RootNode, RootNodeConfig, build_root_node
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import CertificateError, MatterError, StorageError
from jfds_device.fabrics import FabricInfo, SqliteResumptionStore
from jfds_device.im.admission import Limits
from jfds_device.im.client import InteractionClient
from jfds_device.im.provider import AuthMode, RequestContext, SubjectDescriptor
from jfds_device.im.server import InteractionServer
from jfds_device.node.anchor import AnchorRole
from jfds_device.node.banner import startup_lines
from jfds_device.node.config import NodeConfig
from jfds_device.node.dnssd import Advertiser, CommissionableInfo, MrpIntervals, Resolver
from jfds_device.node.handshakes import HandshakeManager
from jfds_device.node.im_routing import ImRouter
from jfds_device.node.peers import ExchangeDispatcher, PeerConnections
from jfds_device.node.storage_dir import StartupError, prepare_storage_dir
from jfds_device.onboarding import SetupPayload
from jfds_device.reconciler import Reconciler
from jfds_device.securechannel.session_params import SessionParameters
from jfds_device.transport.exchange import ExchangeClosed, ExchangeManager, MessageReceived, SessionClosed
from jfds_device.transport.mrp import MrpParameters
from jfds_device.transport.sessions import MIN_CASE_SESSIONS_PER_FABRIC, SecureSession, SessionAuthMode, SessionTable
from jfds_device.transport.udp import UdpBindError, UdpEndpoint

log = logging.getLogger("jfds_device")

GLOBAL_COUNTER = "global_unencrypted"
STATE_FILE = "jfds.sqlite3"


class Device:
    """One running jfds-device node."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.db: Database | None = None
        self.root: RootNode | None = None
        self.im: InteractionServer | None = None
        self.router: ImRouter | None = None
        self.endpoint: UdpEndpoint | None = None
        self.sessions: SessionTable | None = None
        self.handshakes: HandshakeManager | None = None
        self.window = CommissioningWindow(config.passcode, config.discriminator)
        self.advertiser: Advertiser | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._advertised: set[tuple[bytes, int]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.dispatcher = ExchangeDispatcher()  # exchanges we initiate as a client (reconciler) go here first
        self.resolver: Resolver | None = None
        self.peers: PeerConnections | None = None
        self.client: InteractionClient | None = None
        self.reconciler: Reconciler | None = None
        self._timer_at: float | None = None
        self._listening = False  # start() completed; a failed start ends with its one error line, no "stopped"

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def _open_state(self, storage: Path, attestation: AttestationMaterial) -> tuple[Database, RootNode]:
        """The database and everything that loads from it: the fabric table, the data model, the datastore."""
        config = self.config
        self.db = db = Database(storage / STATE_FILE)
        self.root = root = build_root_node(
            db,
            RootNodeConfig(
                basic_information=BasicInformationConfig(vendor_id=config.vendor_id, product_id=config.product_id),
                interface_name=config.interface or "eth0",
            ),
            monotonic=self.loop.time,
            attestation=attestation,
            window=self.window,
        )
        self.fabrics = root.fabric_table
        self.resumption = SqliteResumptionStore(db)
        self.fabrics.add_listener(self.resumption)
        self.fabrics.add_listener(self)
        self.anchor = AnchorRole(
            JfdsStore(db),
            root,
            friendly_name=config.friendly_name,
            now=self.loop.time,
        )
        return db, root

    async def start(self) -> None:
        config = self.config
        storage = Path(config.storage)
        prepare_storage_dir(storage)
        os.umask(0o077)  # the state file holds operational private keys; SQLite recreates its WAL/SHM files
        try:
            attestation = load_attestation(config.certs_dir)
        except CertificateError as exc:
            raise StartupError(f"unusable attestation material: {exc}") from exc
        try:
            db, root = self._open_state(storage, attestation)
        except StorageError as exc:
            if self.db is not None:
                self.db.close()
                self.db = None
            raise StartupError(f"unusable state in {storage}: {exc}") from exc
        self.im = InteractionServer(
            root.node, wakeup=self._schedule_rearm, limits=Limits.for_fabrics(self.fabrics.max_fabrics)
        )
        self.sessions = SessionTable(
            # Inbound: 3 CASE sessions per supported fabric + 2, as the CHIP SDK sizes its pool (CHIPConfig.h);
            # outbound (the reconciler's peers) has its own budget, so reconciling never evicts a controller.
            max_inbound_sessions=MIN_CASE_SESSIONS_PER_FABRIC * self.fabrics.max_fabrics + 2,
            in_use=self._session_in_use,
            global_counter_start=db.counter_limit(GLOBAL_COUNTER),
            on_counter_reserve=self._reserve_global_counter,
        )
        local_mrp = MrpParameters()
        manager = ExchangeManager(self.sessions, local_mrp=local_mrp)
        try:
            self.endpoint = await UdpEndpoint.open(
                manager, port=config.port, interface=config.interface, on_event=self._on_event
            )
        except UdpBindError as exc:
            self.db.close()
            self.db = None
            raise StartupError(str(exc)) from exc
        session_params = SessionParameters(
            idle_interval_ms=round(local_mrp.idle_interval * 1000),
            active_interval_ms=round(local_mrp.active_interval * 1000),
            active_threshold_ms=round(local_mrp.active_threshold * 1000),
        )
        self.router = ImRouter(self.endpoint, self.sessions, self.im)
        self.handshakes = HandshakeManager(
            self.endpoint,
            self.sessions,
            self.window,
            session_params,
            identities=self.fabrics.identities,
            resumption=self.resumption,
            on_pase_established=self._pase_established,
        )
        host, port = self.endpoint.local_address[:2]
        # Every PASE session runs under the fail-safe; its expiry, loss or commit ends the attempt (never deaf).
        self.commissioning = CommissioningAttempt(self.window, self.root.failsafe,
                                                  end_pase_sessions=self._end_pase_sessions)
        self.advertiser = Advertiser(
            config.interface,
            port=port,
            mrp=MrpIntervals(session_params.idle_interval_ms or 500, session_params.active_interval_ms or 300,
                             session_params.active_threshold_ms or 4000),
        )
        await self.advertiser.start()
        self.resolver = Resolver(config.interface, zeroconf=self.advertiser.zeroconf)
        await self.resolver.start()
        self.peers = PeerConnections(self.endpoint, self.dispatcher, self.fabrics.identities, self.resumption,
                                     self.resolver)
        self.client = InteractionClient(self.endpoint, self.dispatcher)
        # Issue 6: converge the anchor fabric's nodes to the datastore (idle until the datastore is bootstrapped).
        self.reconciler = Reconciler.for_device(self)
        self.reconciler.start()
        self.window.add_listener(self._window_changed)
        for fabric in self.fabrics.fabrics():
            self.fabric_pending(fabric)
        if not self.fabrics.fabrics():
            self.window.open_initial(self.loop.time())
        log.info("listening on [%s]:%d (UDP, IPv6 and IPv4)%s", host, port,
                 f" on {config.interface}" if config.interface else "")
        self._listening = True
        self._print_onboarding()
        self._rearm()

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.reconciler is not None:
            await self.reconciler.stop()  # before the sessions it uses go away
        if self.peers is not None:
            await self.peers.close()
        if self.client is not None:
            await self.client.close()
        if self.resolver is not None:
            await self.resolver.stop()
        if self.advertiser is not None:
            await self.advertiser.stop()  # goodbye packets for every record
        if self.endpoint is not None:
            self.endpoint.close()
        if self.db is not None:
            self.db.close()
        if self._listening:
            log.info("stopped")

    def _print_onboarding(self) -> None:
        payload = SetupPayload(
            discriminator=self.config.discriminator,
            passcode=self.config.passcode,
            vendor_id=self.config.vendor_id,
            product_id=self.config.product_id,
        )
        for line in startup_lines(payload, commissionable=self.window.accepting_pase,
                                  fabric_count=len(self.fabrics.fabrics()), picture=sys.stdout.isatty()):
            print(line, flush=True)

    def _window_changed(self, window: CommissioningWindow) -> None:
        info = (
            CommissionableInfo(
                discriminator=window.discriminator,
                vendor_id=self.config.vendor_id,
                product_id=self.config.product_id,
                commissioning_mode=int(window.commissioning_mode),
            )
            if window.accepting_pase
            else None
        )
        if self.advertiser is not None:
            self._spawn(self.advertiser.set_commissionable(info))

    # --- fabric table listener (called by FabricTable) -----------------------------------------------------

    def fabric_pending(self, info: FabricInfo) -> None:
        # The commissioner reaches us over CASE before CommissioningComplete: advertise as soon as AddNOC stages.
        if self.advertiser is not None:
            self._advertised.add((info.compressed_fabric_id, info.node_id))
            self._spawn(self.advertiser.add_operational(info.compressed_fabric_id, info.node_id))

    def fabric_reverted(self, info: FabricInfo) -> None:
        # A rolled-back UpdateNOC ends the fabric's sessions, but after the message being handled is answered: an
        # ArmFailSafe(0) that expired the fail-safe gets its InvokeResponse on one of them first. The CHIP SDK
        # posts its fail-safe cleanup as an event (src/platform/FailSafeContext.cpp, ScheduleFailSafeCleanup) and
        # expires the fabric's sessions there (src/app/server/Server.cpp), after the response is sent.
        self.loop.call_soon(self._close_fabric_sessions, info.fabric_index)
        self.fabric_pending(info)

    def fabric_added(self, info: FabricInfo) -> None:
        self.anchor.fabric_committed(info)

    def fabric_removed(self, fabric_index: int) -> None:
        self.anchor.fabric_removed(fabric_index)
        if self.im is not None:
            self.im.on_fabric_removed(fabric_index)
        self.loop.call_soon(self._close_fabric_sessions, fabric_index)  # after the RemoveFabric response
        self._withdraw_gone_operational()  # before it: a removed fabric's controller must not find us any more
        if not self.fabrics.fabrics() and not self.window.is_open:
            self.window.open_initial(self.loop.time())  # no fabric left: commissionable again

    def _withdraw_gone_operational(self) -> None:
        """Withdraw the records of fabrics that are gone, at once (registry and goodbye); keep the others."""
        if self.advertiser is None:
            return
        live = {(f.compressed_fabric_id, f.node_id) for f in self.fabrics.fabrics(include_pending=True)}
        for key in list(self._advertised):
            if key not in live:
                self.advertiser.withdraw_operational_now(*key)
                self._advertised.discard(key)

    def _close_fabric_sessions(self, fabric_index: int) -> None:
        assert self.sessions is not None
        for session in self.sessions.sessions_for_fabric(fabric_index):
            self._close_session(session)

    def _pase_established(self, session: SecureSession) -> None:
        self.commissioning.pase_established(session.local_session_id, self.loop.time())

    def _end_pase_sessions(self) -> None:
        """Fail-safe expiry (Core spec 11.10.7.2.1) or CommissioningComplete ends the PASE sessions."""
        assert self.sessions is not None
        for session in self.sessions.secure_sessions():
            if session.auth_mode is SessionAuthMode.PASE:
                # Deferred: an ArmFailSafe(0) that expired it still gets its response on this session first.
                self.loop.call_soon(self._close_session, session)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run an advertisement update in the background, in order, keeping a reference until it ends."""
        task = self.loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _session_in_use(self, session: SecureSession) -> bool:
        """A subscription lives on ``session``: a peer's to us, or ours to a peer. Its eviction would end it, so the
        session table evicts it last of its rank (transport/eviction.py)."""
        if self.im is not None and any(s.session_id == session.local_session_id for s in self.im.subscriptions):
            return True
        return self.dispatcher.has_report_routes(session)

    def _reserve_global_counter(self, upto: int) -> None:
        assert self.db is not None
        self.db.reserve(GLOBAL_COUNTER, upto, 0, modulus=1 << 32)

    # --- transport events ----------------------------------------------------------------------------------------

    def _on_event(self, event: object) -> None:
        try:
            if self.dispatcher.dispatch(event):  # a reply on an exchange our client opened
                return
            if isinstance(event, MessageReceived):
                self._on_message(event)
            elif isinstance(event, ExchangeClosed):
                self._on_exchange_closed(event)
            elif isinstance(event, SessionClosed) and isinstance(event.session, SecureSession):
                self._on_session_closed(event.session)
        finally:
            self._rearm()

    def _close_session(self, session: SecureSession) -> None:
        """Tell the peer (StatusReport CloseSession, Core spec 4.10.1.3) and drop the session."""
        from jfds_device.codec.message import SecureChannelOpcode
        from jfds_device.securechannel.status import GeneralCode, SecureChannelProtocolCode, StatusReport

        assert self.endpoint is not None and self.sessions is not None
        if session not in self.sessions:
            return
        report = StatusReport.secure_channel(GeneralCode.SUCCESS, SecureChannelProtocolCode.CLOSE_SESSION)
        with contextlib.suppress(MatterError):
            exchange = self.endpoint.new_exchange(session)
            self.endpoint.send(exchange, ProtocolId.SECURE_CHANNEL, SecureChannelOpcode.STATUS_REPORT,
                               report.encode(), reliable=False)
            self.endpoint.close_exchange(exchange)
        self.sessions.mark_for_close(session)

    def _on_session_closed(self, session: SecureSession) -> None:
        if self.im is not None:
            self.im.on_session_closed(session.local_session_id)
        if session.auth_mode is SessionAuthMode.PASE and self.root is not None:
            # A commissioner went away mid-way: its fail-safe expires (rollback) and the window listens again.
            with self.root.node.atomic():
                self.commissioning.pase_session_closed(session.local_session_id)

    def _on_message(self, event: MessageReceived) -> None:
        assert self.handshakes is not None and self.endpoint is not None
        session = event.session
        if not isinstance(session, SecureSession):
            if event.protocol_id == ProtocolId.SECURE_CHANNEL:
                self.handshakes.on_message(event)
            else:
                log.debug("dropping protocol 0x%04x on an unsecured session", event.protocol_id)
                self.endpoint.close_exchange(event.exchange)
            return
        if event.protocol_id == ProtocolId.INTERACTION_MODEL:
            self._on_im_message(event, session)
        elif event.protocol_id == ProtocolId.SECURE_CHANNEL:
            self._on_secure_channel(event, session)
        else:
            log.debug("unsupported protocol 0x%04x on session %d", event.protocol_id, session.local_session_id)
            self.endpoint.close_exchange(event.exchange)

    def _on_secure_channel(self, event: MessageReceived, session: SecureSession) -> None:
        from jfds_device.codec.message import SecureChannelOpcode
        from jfds_device.securechannel.status import SecureChannelProtocolCode, StatusReport

        assert self.endpoint is not None and self.sessions is not None
        if event.opcode == SecureChannelOpcode.STATUS_REPORT:
            with contextlib.suppress(MatterError):
                report = StatusReport.decode(event.payload)
                if report.protocol_code == SecureChannelProtocolCode.CLOSE_SESSION:
                    log.info("peer closed session %d", session.local_session_id)
                    self.endpoint.close_exchange(event.exchange)
                    self.sessions.mark_for_close(session)
                    return
        self.endpoint.close_exchange(event.exchange)

    def _on_im_message(self, event: MessageReceived, session: SecureSession) -> None:
        assert self.router is not None
        ctx = RequestContext(
            subject=self._subject(session),
            session_id=session.local_session_id,
            attestation_challenge=session.attestation_challenge,
            bind_fabric=self._binder(session) if session.auth_mode is SessionAuthMode.PASE else None,
        )
        self.router.on_message(event, ctx)

    def _on_exchange_closed(self, event: ExchangeClosed) -> None:
        assert self.handshakes is not None and self.router is not None
        self.handshakes.on_exchange_closed(event.exchange)
        self.router.on_exchange_closed(event)

    @staticmethod
    def _binder(session: SecureSession) -> Callable[[int], None]:
        def bind(fabric_index: int) -> None:
            session.fabric_index = fabric_index  # AddNOC over PASE: the session now acts for the new fabric

        return bind

    def _subject(self, session: SecureSession) -> SubjectDescriptor:
        if session.auth_mode is SessionAuthMode.PASE:
            # A PASE session holds implicit Administer while the node is being commissioned (Core spec 6.6.2.9).
            return SubjectDescriptor(AuthMode.PASE, 0, session.fabric_index, (), is_commissioning=True)
        return SubjectDescriptor(AuthMode.CASE, session.peer_node_id, session.fabric_index, tuple(session.cats))

    # --- timers ------------------------------------------------------------------------------------------------

    def _schedule_rearm(self) -> None:
        self.loop.call_soon(self._rearm)

    def _rearm(self) -> None:
        candidates = (
            self.root.get_timer() if self.root else None,
            self.im.next_deadline() if self.im else None,
            self.window.get_timer(),
        )
        deadlines = [d for d in candidates if d is not None]
        when = min(deadlines) if deadlines else None
        if when == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_at = None
        if when is not None:
            self._timer_at = when
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        now = max(self.loop.time(), self._timer_at or 0.0)
        self._timer = self._timer_at = None
        try:
            if self.root is not None:
                self.root.handle_timer(now)
            self.window.handle_timer(now)
            if self.router is not None:
                self.router.on_timer(now)
        except Exception:  # a timer bug must not stop the node; it is logged with its traceback
            log.exception("timer handling failed")
        finally:
            self._rearm()


async def run_until_signalled(config: NodeConfig, *, on_started: Callable[[Device], None] | None = None) -> int:
    """Run a Device until SIGINT or SIGTERM, then shut it down cleanly; returns the exit status. ``on_started``
    sees the started device (a seam for test-support launchers, e.g. to set ``Reconciler.before_list_write``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before start(): a signal during start-up still stops cleanly
        loop.add_signal_handler(sig, stop.set)
    device = Device(config)
    try:
        await device.start()
        if on_started is not None:
            on_started(device)
        await stop.wait()
    finally:
        await device.stop()
    return 0
