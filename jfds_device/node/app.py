"""The process shell of a node: CLI config, storage, DNS-SD, signals and printing around the one ``Stack``.

``Device.start`` opens the state (database, fabric table, root node layout, the anchor role), builds the ``Stack``
(``stack.py``: endpoint, sessions, handshakes, IM server, client side, peer connections, and the routing of every
transport event) over the UDP link, starts DNS-SD and the reconciler, and prints the onboarding lines. What a
message means is decided in the stack and below; this module reacts to fabric and window changes (advertising,
closing sessions, the commissioning attempt) and owns the process lifecycle.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from clusters.basic_information.server import BasicInformationConfig
from clusters.joint_fabric_datastore.schema import MAX_NODES
from jfds_device.clock import LoopClock
from jfds_device.crypto.attestation import AttestationMaterial, load_attestation
from jfds_device.crypto.certs import MatterCertificate
from jfds_device.datamodel.commissioning_window import CommissioningWindow
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import CertificateError, MatterError, StorageError
from jfds_device.fabrics import FabricInfo, SqliteResumptionStore
from jfds_device.im.admission import Limits
from jfds_device.im.events import EventStore
from jfds_device.node.anchor import AnchorRole
from jfds_device.node.banner import startup_lines
from jfds_device.node.commissioning_attempt import CommissioningAttempt
from jfds_device.node.config import NodeConfig
from jfds_device.node.dnssd import Advertiser, CommissionableInfo, MrpIntervals, Resolver
from jfds_device.node.links import udp_link
from jfds_device.node.live_state import LiveState
from jfds_device.node.root import RootNode, RootNodeConfig, build_root_node
from jfds_device.node.stack import SessionBudget, Stack
from jfds_device.node.storage_dir import StartupError, prepare_storage_dir
from jfds_device.onboarding import SetupPayload
from jfds_device.reconciler import OwnIdentity, Reconciler, ReconcilerConfig
from jfds_device.reconciler.tasks import TaskEngine
from jfds_device.transport.sessions import (
    DEFAULT_OUTBOUND_SESSIONS,
    MIN_CASE_SESSIONS_PER_FABRIC,
    SecureSession,
    SessionAuthMode,
)
from jfds_device.transport.udp import UdpBindError

log = logging.getLogger("jfds_device")

GLOBAL_COUNTER = "global_unencrypted"
EVENT_COUNTER = "event_number"
# How long the stop path waits for the subscribers to acknowledge the ShutDown report (MRP retransmits included).
SHUTDOWN_FLUSH_SECONDS = 1.5
STATE_FILE = "jfds.sqlite3"


class Device:
    """One running jfds-device node."""

    def __init__(self, config: NodeConfig, *, reconciler_config: ReconcilerConfig | None = None) -> None:
        self.config = config
        self.reconciler_config = reconciler_config  # None: the default; no CLI option (a seam for benchmarks)
        self.loop = asyncio.get_running_loop()
        self.clock = LoopClock(self.loop)
        self.db: Database | None = None
        self.root: RootNode | None = None
        self.stack: Stack | None = None
        self.events = EventStore()  # replaced in start() by one numbered from the storage's counter
        self.window = CommissioningWindow(config.passcode, config.discriminator)
        self.advertiser: Advertiser | None = None
        self.resolver: Resolver | None = None
        self.reconciler: Reconciler | None = None
        self.tasks: TaskEngine | None = None
        self.live_state: LiveState | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._advertised: set[tuple[bytes, int]] = set()
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
            monotonic=self.clock.now,
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
            now=self.clock.now,
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
        self.events = EventStore(db.counter_limit(EVENT_COUNTER) or 0, reserve=self._reserve_event_numbers)
        started_at = self.clock.now()
        root.node.attach_events(self.events, lambda: int((self.clock.now() - started_at) * 1000))
        self.stack = stack = Stack(
            events=self.events,
            data_model=root.node,
            im_limits=Limits.for_fabrics(self.fabrics.max_fabrics),
            window=self.window,
            identities=self.fabrics.identities,
            resumption=self.resumption,
            # Inbound: 3 CASE sessions per supported fabric + 2, as the CHIP SDK sizes its pool (CHIPConfig.h);
            # outbound (the reconciler's peers) has its own budget, so reconciling never evicts a controller.
            # Outbound: one per node the datastore can manage (NodeList's maximum, Core spec 11.24.6.5) plus room,
            # so every managed peer keeps the session its live subscription rides on (a secure session is ~2 KiB).
            budget=SessionBudget(max_inbound_sessions=MIN_CASE_SESSIONS_PER_FABRIC * self.fabrics.max_fabrics + 2,
                                 max_outbound_sessions=MAX_NODES + DEFAULT_OUTBOUND_SESSIONS,
                                 global_counter_start=db.counter_limit(GLOBAL_COUNTER),
                                 on_counter_reserve=self._reserve_global_counter),
            clock=self.clock,
            on_pase_established=self._pase_established,
            on_session_closed=self._session_closed,
        )
        try:
            await stack.open(udp_link(config.port, interface=config.interface))
        except UdpBindError as exc:
            db.close()
            self.db = None
            raise StartupError(str(exc)) from exc
        stack.add_timer(root.get_timer, root.handle_timer)
        stack.add_timer(self.window.get_timer, self.window.handle_timer)
        host, port = stack.endpoint.local_address[:2]
        # Every PASE session runs under the fail-safe; its expiry, loss or commit ends the attempt (never deaf).
        self.commissioning = CommissioningAttempt(self.window, root.failsafe,
                                                  end_pase_sessions=stack.close_pase_sessions)
        params = stack.session_params
        self.advertiser = Advertiser(
            config.interface,
            port=port,
            mrp=MrpIntervals(params.idle_interval_ms or 500, params.active_interval_ms or 300,
                             params.active_threshold_ms or 4000),
        )
        await self.advertiser.start()
        self.resolver = Resolver(config.interface, zeroconf=self.advertiser.zeroconf)
        await self.resolver.start()
        stack.peers.resolver = self.resolver
        # Issue 6: converge the anchor fabric's nodes to the datastore (idle until the datastore is bootstrapped).
        self.reconciler = Reconciler(self.anchor.store, stack.client, stack.peers, clock=self.clock,
                                     fabric_index=lambda: self.anchor.anchor_fabric_index,
                                     own_identity=self._own_identity, config=self.reconciler_config)
        self.reconciler.start()
        # Issue 14: that the node runs and what its reconciler sees reachable, for `jfds-device status`.
        self.live_state = LiveState(storage, db)
        self.live_state.start(self.reconciler)
        # Issue 11: multi-step tasks (key rotation, group membership) over the reconciler, resumed after a restart.
        self.tasks = TaskEngine(self.anchor.store, self.reconciler)
        self.tasks.start()
        self.window.add_listener(self._window_changed)
        for fabric in self.fabrics.fabrics():
            self.fabric_pending(fabric)
        if not self.fabrics.fabrics():
            self.window.open_initial(self.clock.now())
        log.info("listening on [%s]:%d (UDP, IPv6 and IPv4)%s", host, port,
                 f" on {config.interface}" if config.interface else "")
        self._listening = True
        # Core spec 11.1.6.1 StartUp and 11.12.8.4 BootReason, once the node is reachable.
        root.basic_information.emit_start_up()
        root.general_diagnostics.emit_boot_reason()
        self._print_onboarding()
        stack.rearm()

    async def stop(self) -> None:
        if self.stack is not None and self.root is not None and self._listening:
            # ShutDown (11.1.6.2) reaches the subscribers before the sessions close, bounded in time.
            self.root.basic_information.emit_shut_down()
            try:
                await self.stack.flush_event_reports(SHUTDOWN_FLUSH_SECONDS)
            except Exception:  # stopping must go on whatever the flush met
                log.exception("flushing the ShutDown event failed")
        if self.stack is not None:
            self.stack.cancel_timer()  # no fail-safe or window deadline runs while the node shuts down
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.tasks is not None:
            await self.tasks.stop()  # live tasks stay live in storage and resume at the next start
        if self.reconciler is not None:
            await self.reconciler.stop()  # before the sessions it uses go away
        if self.live_state is not None:
            self.live_state.stop()
        if self.stack is not None:
            await self.stack.close()  # CloseSession to the peers, then the socket
        if self.resolver is not None:
            await self.resolver.stop()
        if self.advertiser is not None:
            await self.advertiser.stop()  # goodbye packets for every record
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
        if self.stack is not None:
            # A rolled-back UpdateNOC ends the fabric's sessions, but after the message being handled is answered:
            # an ArmFailSafe(0) that expired the fail-safe gets its InvokeResponse on one of them first. The CHIP
            # SDK posts its fail-safe cleanup as an event (src/platform/FailSafeContext.cpp,
            # ScheduleFailSafeCleanup) and expires the fabric's sessions there (src/app/server/Server.cpp).
            self.loop.call_soon(self.stack.close_fabric_sessions, info.fabric_index)
        self.fabric_pending(info)

    def fabric_added(self, info: FabricInfo) -> None:
        self.anchor.fabric_committed(info)

    def fabric_removed(self, fabric_index: int) -> None:
        self.anchor.fabric_removed(fabric_index)
        self.events.forget_fabric(fabric_index)
        if self.stack is not None:
            if self.stack.im is not None:
                self.stack.im.on_fabric_removed(fabric_index)
            self.loop.call_soon(self.stack.close_fabric_sessions, fabric_index)  # after the RemoveFabric response
        self._withdraw_gone_operational()  # before it: a removed fabric's controller must not find us any more
        if not self.fabrics.fabrics() and not self.window.is_open:
            self.window.open_initial(self.clock.now())  # no fabric left: commissionable again

    def _withdraw_gone_operational(self) -> None:
        """Withdraw the records of fabrics that are gone, at once (registry and goodbye); keep the others."""
        if self.advertiser is None:
            return
        live = {(f.compressed_fabric_id, f.node_id) for f in self.fabrics.fabrics(include_pending=True)}
        for key in list(self._advertised):
            if key not in live:
                self.advertiser.withdraw_operational_now(*key)
                self._advertised.discard(key)

    # --- stack hooks -------------------------------------------------------------------------------------------

    def _pase_established(self, session: SecureSession) -> None:
        self.commissioning.pase_established(session.local_session_id, self.clock.now())

    def _session_closed(self, session: SecureSession) -> None:
        if session.auth_mode is SessionAuthMode.PASE and self.root is not None:
            # A commissioner went away mid-way: its fail-safe expires (rollback) and the window listens again.
            with self.root.node.atomic():
                self.commissioning.pase_session_closed(session.local_session_id)

    def _own_identity(self, fabric_index: int) -> OwnIdentity | None:
        """Who we are on ``fabric_index`` (node id and NOC CATs): the reconciler keeps our own ACL entry."""
        info = self.fabrics.get(fabric_index)
        if info is None:
            return None
        try:
            cats = MatterCertificate.decode_tlv(info.noc).cats
        except MatterError:
            cats = ()
        return OwnIdentity(info.node_id, tuple(cats))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run an advertisement update in the background, in order, keeping a reference until it ends."""
        task = self.loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _reserve_event_numbers(self, upto: int) -> None:
        assert self.db is not None
        self.db.reserve(EVENT_COUNTER, upto, 0)

    def _reserve_global_counter(self, upto: int) -> None:
        assert self.db is not None
        self.db.reserve(GLOBAL_COUNTER, upto, 0, modulus=1 << 32)


async def run_until_signalled(config: NodeConfig, *, on_started: Callable[[Device], None] | None = None,
                              reconciler_config: ReconcilerConfig | None = None) -> int:
    """Run a Device until SIGINT or SIGTERM, then shut it down cleanly; returns the exit status. ``on_started``
    sees the started device (a seam for test-support launchers, e.g. to set ``Reconciler.before_list_write``);
    ``reconciler_config`` replaces the reconciler's default (a seam for benchmarks, e.g. polling vs live)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before start(): a signal during start-up still stops cleanly
        loop.add_signal_handler(sig, stop.set)
    device = Device(config, reconciler_config=reconciler_config)
    try:
        await device.start()
        if on_started is not None:
            on_started(device)
        await stop.wait()
    finally:
        await device.stop()
    return 0
