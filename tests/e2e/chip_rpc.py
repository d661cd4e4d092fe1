"""A CHIP SDK controller (home-assistant-chip-core) in a child process, driven over stdin/stdout.

Run by ``tests/e2e/harness.py`` inside the test's controller namespace with a private /data. Each request is
one line of base64(pickle((method, args, kwargs))); each answer one line ``OK <b64 pickle>`` or
``ERR <b64 pickle(dict)>``. ``method`` names a ChipDeviceController method (awaited if it is a coroutine)
or one of the ``rpc_*`` helpers below. The test process needs only the pure-Python cluster objects to build
requests and read answers; the native stack lives here, one per process as the SDK requires.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import inspect
import logging
import os
import pickle
import sys
import time
import traceback
from typing import Any

import chip.CertificateAuthority
import chip.logging
import chip.native
from chip.ChipStack import ChipStack


def encode(obj: Any) -> str:
    return base64.b64encode(pickle.dumps(obj)).decode()


def describe_error(exc: BaseException) -> dict[str, Any]:
    status = getattr(exc, "status", None)
    cluster_status = getattr(exc, "clusterStatus", None)
    code = getattr(exc, "code", None) or getattr(exc, "err", None)
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "status": int(status) if status is not None else None,
        "cluster_status": int(cluster_status) if cluster_status is not None else None,
        "code": int(code) if isinstance(code, int) else None,
        "traceback": traceback.format_exc(),
    }


def portable(value: Any) -> Any:
    """Make a result picklable: dataclasses become dicts, what still cannot cross the pipe becomes its repr."""
    try:
        pickle.dumps(value)
        return value
    except Exception:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: portable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, dict):
            return {portable(k): portable(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(portable(v) for v in value)
        return repr(value)


def _raw_command(cluster_id: int, command_id: int, fields: bytes) -> Any:
    """A command object whose ToTLV returns ``fields`` verbatim (the SDK sends that as CommandFields)."""
    from chip import ChipUtility
    from chip.clusters.ClusterObjects import ClusterCommand, ClusterObjectDescriptor

    class RawCommand(ClusterCommand):
        ids: tuple[int, int] | None = None  # unset while the SDK registers the class: it then skips it
        is_client = True
        response_type = None
        descriptor = ClusterObjectDescriptor(Fields=[])

        @ChipUtility.classproperty
        def cluster_id(cls) -> int:
            if cls.ids is None:
                raise NotImplementedError
            return cls.ids[0]

        @ChipUtility.classproperty
        def command_id(cls) -> int:
            if cls.ids is None:
                raise NotImplementedError
            return cls.ids[1]

        def ToTLV(self) -> bytes:
            return fields

    RawCommand.ids = (cluster_id, command_id)
    return RawCommand()


class Service:
    def __init__(self, storage: str, paa_dir: str, node_id: int, fabric_id: int, vendor_id: int) -> None:
        chip.logging.RedirectToPythonLogging()
        chip.native.Init()
        self.stack = ChipStack(persistentStoragePath=storage, enableServerInteractions=False)
        self.ca_manager = chip.CertificateAuthority.CertificateAuthorityManager(chipStack=self.stack)
        self.ca_manager.LoadAuthoritiesFromStorage()
        cas = self.ca_manager.activeCaList
        ca = cas[0] if cas else self.ca_manager.NewCertificateAuthority()
        self.admin = ca.adminList[0] if ca.adminList else ca.NewFabricAdmin(vendorId=vendor_id, fabricId=fabric_id)
        self.paa_dir = paa_dir
        self.ctrl = self.admin.NewController(nodeId=node_id, paaTrustStorePath=paa_dir)
        self.controllers = [self.ctrl]
        self.subscriptions: dict[int, Any] = {}
        self.reports: dict[int, list[Any]] = {}
        self.resubscriptions: dict[int, list[int]] = {}  # per subscription: the error of each resubscribe attempt

    async def rpc_info(self) -> dict[str, Any]:
        return {
            "node_id": self.ctrl.nodeId,
            "fabric_id": self.ctrl.fabricId,
            "compressed_fabric_id": self.ctrl.GetCompressedFabricId(),
            "root_public_key": bytes(self.ctrl.rootPublicKeyBytes),
        }

    async def rpc_new_controller(self, node_id: int, cats: list[int] | None = None) -> int:
        """Another CASE identity on the same fabric (e.g. to test ACLs); returns its index for ``_controller``."""
        controller = self.admin.NewController(nodeId=node_id, paaTrustStorePath=self.paa_dir, catTags=cats or [])
        self.controllers.append(controller)
        return len(self.controllers) - 1

    async def rpc_invoke_many(self, node_id: int, endpoint: int, commands: list[Any], timeout_ms: int) -> list[Any]:
        """Invoke ``commands`` one after another; stop at the first failure and return what each one answered
        (None for success, else the error description). Used to interrupt a burst by killing the device."""
        answers: list[Any] = []
        for command in commands:
            try:
                await self.ctrl.SendCommand(node_id, endpoint, command, interactionTimeoutMs=timeout_ms)
            except Exception as exc:
                answers.append(describe_error(exc))
                break
            answers.append(None)
        return answers

    async def rpc_invoke_raw(self, node_id: int, endpoint: int, cluster_id: int, command_id: int, fields: bytes,
                             timeout_ms: int = 5000) -> Any:
        """An invoke whose fields are the given TLV bytes exactly, bypassing the SDK's own type checks."""
        command = _raw_command(cluster_id, command_id, fields)
        return await self.ctrl.SendCommand(node_id, endpoint, command, interactionTimeoutMs=timeout_ms)

    async def rpc_subscribe(self, node_id: int, paths: list[Any], min_interval: int, max_interval: int,
                            controller: int = 0, keep_subscriptions: bool = False) -> int:
        """A subscription by ``self.controllers[controller]`` (an index from ``new_controller``); its reports and
        resubscribe attempts (the SDK's ReadClient resubscribes when the subscription's session or liveness is
        lost) are recorded. With ``keep_subscriptions`` the controller's earlier subscriptions to the node stay
        (Core spec 8.5.3.2)."""
        sub = await self.controllers[controller].ReadAttribute(
            node_id, paths, reportInterval=(min_interval, max_interval), keepSubscriptions=keep_subscriptions
        )
        key = max(self.reports, default=0) + 1  # never reused, even after a cancel
        self.subscriptions[key] = sub
        self.reports[key] = []
        self.resubscriptions[key] = []
        loop = asyncio.get_running_loop()

        def on_resubscribe(transaction: Any, error: int, next_interval_ms: int) -> None:
            loop.call_soon_threadsafe(self.resubscriptions[key].append, int(error))

        sub.SetResubscriptionAttemptedCallback(on_resubscribe)

        def on_change(path: Any, transaction: Any) -> None:
            value = transaction.GetAttribute(path)
            loop.call_soon_threadsafe(self.reports[key].append, (repr(path.Path), portable(value)))

        sub.SetAttributeUpdateCallback(on_change)
        return key

    async def rpc_subscribe_events(self, node_id: int, paths: list[Any], min_interval: int, max_interval: int,
                                   controller: int = 0) -> int:
        """An event subscription (``ReadEvent`` paths, e.g. ``[('*', 1)]`` for every event, urgent) whose events are
        recorded with the monotonic time they arrived (``rpc_events``); the SDK's ReadClient resubscribes on its own
        (from the last event number it saw) when the node goes away and comes back."""
        import time

        sub = await self.controllers[controller].ReadEvent(
            node_id, paths, reportInterval=(min_interval, max_interval), keepSubscriptions=True
        )
        key = max(self.reports, default=0) + 1
        self.subscriptions[key] = sub
        self.reports[key] = []
        self.resubscriptions[key] = []
        loop = asyncio.get_running_loop()

        def record(event: Any) -> dict[str, Any]:
            header = event.Header
            return {"endpoint": int(header.EndpointId), "cluster": int(header.ClusterId),
                    "event": int(header.EventId), "number": int(header.EventNumber),
                    "data": portable(event.Data), "at": time.monotonic()}

        for event in sub.GetEvents() or ():  # the priming report's events
            self.reports[key].append(record(event))

        def on_event(event: Any, transaction: Any) -> None:
            loop.call_soon_threadsafe(self.reports[key].append, record(event))

        def on_resubscribe(transaction: Any, error: int, next_interval_ms: int) -> None:
            loop.call_soon_threadsafe(self.resubscriptions[key].append, int(error))

        sub.SetEventUpdateCallback(on_event)
        sub.SetResubscriptionAttemptedCallback(on_resubscribe)
        return key

    async def rpc_hold_timed_requests(self, node_id: int, endpoint: int, command: Any, count: int,
                                      window_ms: int = 65_000, controller: int = 0) -> list[Any]:
        """Open ``count`` TimedRequest windows of ``window_ms`` and leave them open: each interaction gives up 1 ms
        after its TimedRequest (the SDK's CommandSender then never sends the Invoke), so the node keeps waiting for
        the Invoke until the window ends. Returns what each attempt ended with (None: the Invoke was answered)."""
        from chip.clusters import Command

        ctrl = self.controllers[controller]
        device = await ctrl.GetConnectedDevice(node_id, allowPASE=False)
        path = Command.CommandPath(EndpointId=endpoint, ClusterId=command.cluster_id, CommandId=command.command_id)
        loop = asyncio.get_running_loop()
        outcomes: list[Any] = []
        while len(outcomes) < count:
            future = loop.create_future()
            try:
                res = await Command.SendCommand(future, loop, None, device.deviceProxy, path, command,
                                                timedRequestTimeoutMs=window_ms, interactionTimeoutMs=1)
                res.raise_on_error()
                await future
            except Exception as exc:
                outcome = describe_error(exc)
                if "No memory" in outcome["message"]:  # our own exchange pool is full: nothing was sent, retry
                    await asyncio.sleep(0.05)
                    continue
                outcomes.append(outcome)
            else:
                outcomes.append(None)
            await asyncio.sleep(0.01)  # let the stack acknowledge the node's late answers before the next attempt
        return outcomes

    async def rpc_set_group_key_set(self, key_set_id: int, epoch_keys: list[tuple[bytes, int]], group_ids: list[int],
                                    policy: int = 0) -> dict[str, Any]:
        """Put a key set and GroupKeyMap entries into this controller's own group data, so that its group commands
        (``SendGroupCommand``) are encrypted with that key set's current key (``chip_group_keys.py``)."""
        from tests.e2e import chip_group_keys

        return chip_group_keys.install(self.stack, self.ctrl, key_set_id, epoch_keys, group_ids, policy)

    async def rpc_reports(self, key: int) -> list[Any]:
        return list(self.reports[key])

    async def rpc_resubscriptions(self, key: int) -> list[int]:
        return list(self.resubscriptions[key])

    async def rpc_open_sessions(self, node_id: int, count: int, via: int = 0, timeout_ms: int = 10000) -> int:
        """Open ``count`` CASE sessions to ``node_id`` through controller ``via``, one after another: each time the
        controller forgets its session (ExpireSessions: nothing is sent, the node keeps its side) and connects
        again. Returns how many connects succeeded."""
        controller = self.controllers[via]
        opened = 0
        for _ in range(count):
            controller.ExpireSessions(node_id)
            await controller.GetConnectedDevice(node_id, allowPASE=False, timeoutMs=timeout_ms)
            opened += 1
        return opened

    async def rpc_cancel(self, key: int) -> None:
        self.subscriptions.pop(key).Shutdown()

    async def rpc_issue_noc_chain(self, csr_elements: bytes, node_id: int) -> Any:
        from chip.clusters import Objects

        chain = await self.ctrl.IssueNOCChain(
            Objects.OperationalCredentials.Commands.CSRResponse(NOCSRElements=csr_elements, attestationSignature=b""),
            node_id,
        )
        return {
            "noc": chain.nocBytes, "icac": chain.icacBytes, "rcac": chain.rcacBytes, "ipk": chain.ipkBytes,
            "admin_subject": chain.adminSubject,
        }

    async def rpc_time_calls(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                             count: int) -> list[float]:
        """Call controller ``method`` ``count`` times back to back; the seconds each took, timed here so the
        pipe to the test is not part of it (bench/interaction_bench.py)."""
        target = getattr(self.ctrl, method)
        durations = []
        for _ in range(count):
            started = time.perf_counter()
            result = target(*args, **kwargs)
            if inspect.isawaitable(result):
                await result
            durations.append(time.perf_counter() - started)
        return durations

    async def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        controller = self.controllers[kwargs.pop("_controller", 0)]
        target = getattr(self, f"rpc_{method}", None) or getattr(controller, method)
        result = target(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return portable(result)

    def shutdown(self) -> None:
        for sub in self.subscriptions.values():
            sub.Shutdown()
        for controller in reversed(self.controllers):
            controller.Shutdown()
        self.ca_manager.Shutdown()
        self.stack.Shutdown()


async def main() -> None:
    logging.basicConfig(level=os.environ.get("CHIP_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    service = Service(
        storage=os.environ["CTRL_STORAGE"],
        paa_dir=os.environ["PAA_DIR"],
        node_id=int(os.environ.get("CTRL_NODE_ID", "112233")),
        fabric_id=int(os.environ.get("CTRL_FABRIC_ID", "1")),
        vendor_id=int(os.environ.get("CTRL_VENDOR_ID", "65521")),
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("READY", flush=True)
    while line := await reader.readline():
        method, args, kwargs = pickle.loads(base64.b64decode(line))
        if method == "shutdown":
            break
        try:
            print("OK", encode(await service.call(method, args, kwargs)), flush=True)
        except Exception as exc:  # every failure goes back to the test, which asserts on it
            print("ERR", encode(describe_error(exc)), flush=True)
    service.shutdown()
    print("BYE", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
