"""Issue 4/6 end to end: our CASE initiator and IM client against a real matter.js device on the CHIP fabric.

The CHIP SDK controller (controller namespace) commissions a matter.js light (device namespace) and adds an ACL
entry granting our client's node id Administer. Our client then runs as a child process in the controller
namespace (this module run with ``python -m``): it makes a P-256 key and CSR, gets a NOC chain from the CHIP
controller's fabric CA (relayed by the test over stdin/stdout), resolves the light over operational DNS-SD, opens
CASE, reads BasicInformation and the ACL, writes, invokes and subscribes (by ids, and typed from our cluster
schemas), and prints the results as JSON. A
second run of the child reuses the stored credentials and resumes the CASE session.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import PYTHON, REPO, ChipController, Topology, topology, workdir
from tests.e2e.matterjs import MatterJsDevice, ensure_matterjs

pytestmark = [pytest.mark.netns, pytest.mark.interop]

PASSCODE = 20202021
DISCRIMINATOR = 3840
DEVICE_NODE_ID = 0x4321
CLIENT_NODE_ID = 0x7777
CONTROLLER_NODE_ID = 112233  # ChipController's default
ADMINISTER, CASE = 5, 2
BASIC, ACCESS_CONTROL, ON_OFF, BINDING = 0x0028, 0x001F, 0x0006, 0x001E
VENDOR_NAME, VENDOR_ID, PRODUCT_NAME, NODE_LABEL = 0x0001, 0x0002, 0x0003, 0x0005


# ---------------------------------------------------------------------------------------------- the test


@pytest.fixture(scope="module")
def net() -> Iterator[Topology]:
    ensure_matterjs()
    with topology() as topo:
        yield topo


@pytest.fixture(scope="module")
def tmp(net: Topology) -> Iterator[Path]:
    with workdir("jfds-e2e-case-") as path:
        yield path


def _readline(proc: subprocess.Popen[bytes], deadline: float) -> str:
    assert proc.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise TimeoutError("the client process gave no answer in time")
        chunk = os.read(proc.stdout.fileno(), 1)
        if not chunk:
            break
        line += chunk
    return line.decode()


def run_client(net: Topology, state: Path, ctrl: ChipController, run: int, timeout: float = 30) -> dict[str, Any]:
    """One run of our client in the controller namespace; relays its CSR to the CHIP controller's CA."""
    state.mkdir(exist_ok=True)
    log_path = state / f"client-{run}.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = ["ip", "netns", "exec", net.ctl, PYTHON, "-m", "tests.e2e.test_case_initiator", str(state),
           str(DEVICE_NODE_ID), "veth-ctl"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, cwd=REPO, env=env)
        try:
            deadline = time.monotonic() + timeout
            while line := _readline(proc, deadline):
                kind, _, payload = line.strip().partition(" ")
                if kind == "CSR":
                    chain = ctrl.call("issue_noc_chain", bytes.fromhex(payload), CLIENT_NODE_ID)
                    reply = {k: (chain[k] or b"").hex() for k in ("noc", "icac", "rcac", "ipk")}
                    assert proc.stdin is not None
                    proc.stdin.write(json.dumps(reply).encode() + b"\n")
                    proc.stdin.flush()
                elif kind == "RESULT":
                    result: dict[str, Any] = json.loads(payload)
                    assert proc.wait(10) == 0
                    if os.environ.get("JFDS_E2E_SHOW_CLIENT_LOG"):
                        print(log_path.read_text(), file=sys.stderr)
                    return result
            raise AssertionError(f"client exited with {proc.wait(10)}:\n{log_path.read_text()[-4000:]}")
        except BaseException:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            print(log_path.read_text()[-4000:], file=sys.stderr)
            raise


def test_case_initiator_reads_a_matterjs_device_commissioned_on_the_chip_fabric(net: Topology, tmp: Path) -> None:
    clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
    from chip.discovery import FilterType

    ac = clusters.AccessControl
    device = MatterJsDevice(net.dev, tmp / "light", id="light", port=5540, discriminator=DISCRIMINATOR,
                            vendor_name="jfds interop")
    ctrl: ChipController | None = None
    try:
        ctrl = ChipController(net.ctl, tmp / "chip")
        assert ctrl.call("CommissionOnNetwork", DEVICE_NODE_ID, PASSCODE, FilterType.LONG_DISCRIMINATOR,
                         DISCRIMINATOR, timeout=45) == DEVICE_NODE_ID
        [admin] = ctrl.call("ReadAttribute", DEVICE_NODE_ID, [(0, ac.Attributes.Acl)])[0][ac][ac.Attributes.Acl]
        ours = ac.Structs.AccessControlEntryStruct(
            privilege=ac.Enums.AccessControlEntryPrivilegeEnum.kAdminister,
            authMode=ac.Enums.AccessControlEntryAuthModeEnum.kCase,
            subjects=[CLIENT_NODE_ID],
            targets=clusters.Types.NullValue,
        )
        [status] = ctrl.call("WriteAttribute", DEVICE_NODE_ID, [(0, ac.Attributes.Acl([admin, ours]))])
        assert int(status.Status) == 0
        info = ctrl.call("info")

        first = run_client(net, tmp / "client", ctrl, 1)
        second = run_client(net, tmp / "client", ctrl, 2)
    finally:
        if ctrl is not None:
            ctrl.close()
        device.stop()

    print("CLIENT RUNS", json.dumps({"first": first, "second": second}))  # shown with -s / on failure
    # Our identity is on the controller's fabric, and we found the light by its operational record.
    assert first["root_public_key"] == info["root_public_key"].hex()
    assert first["compressed_fabric_id"] == info["compressed_fabric_id"]
    assert first["peer_node_id"] == DEVICE_NODE_ID and first["local_node_id"] == CLIENT_NODE_ID
    assert (first["resumed"], second["resumed"]) == (False, True)  # the second run resumes (Core spec 4.14.2)
    for run in (first, second):
        assert run["basic"] == {"vendor_name": "jfds interop", "product_name": run["basic"]["product_name"],
                                "vendor_id": 0xFFF1}
        assert run["basic"]["product_name"]  # matter.js's default product name
        acl = run["acl"]
        assert [(e["privilege"], e["auth_mode"], e["subjects"], e["targets"]) for e in acl] == [
            (ADMINISTER, CASE, [CONTROLLER_NODE_ID], None),
            (ADMINISTER, CASE, [CLIENT_NODE_ID], None),
        ]
        assert {e["fabric_index"] for e in acl} == {1}
    # The typed client: the ACL decoded by our AccessControl schema, KeySetReadAllIndices answered with its typed
    # response (the IPK, key set 0, is always there: Core spec 11.2.7.5), a typed write conditioned on a stale
    # DataVersion refused DATA_VERSION_MISMATCH and on the one read applied (Core spec 8.7.3.2).
    for number, run in enumerate((first, second), 1):
        assert run["typed_acl"] == [[ADMINISTER, CASE, [CONTROLLER_NODE_ID], True, 1],
                                    [ADMINISTER, CASE, [CLIENT_NODE_ID], True, 1]]
        assert run["typed_indices"] is not None and 0 in run["typed_indices"], run["typed_indices"]
        assert run["stale_status"] == 0x92 and run["typed_label"] == f"typed {number}"
    # Write, invoke and subscription reports work against the matter.js peer too.
    assert first["node_label"] == "jfds run 1" and second["node_label"] == "jfds run 2"
    assert first["on_off"] != second["on_off"]  # each run toggles the light once
    assert first["reported_on_off"] == first["on_off"] and second["reported_on_off"] == second["on_off"]
    assert first["unsupported_status"] == 0x86  # UNSUPPORTED_ATTRIBUTE, as an IMStatusError
    for number, run in enumerate((first, second), 1):
        assert run["binding_messages"] > 2 and run["binding_status"] == 0
        assert run["binding"] == [{"node": 0x1000 + number * 16 + i, "endpoint": 1, "cluster": ON_OFF,
                                   "fabric_index": 1} for i in range(3)]
    assert first["reachability"] == ["connecting", "reachable", "unknown"]
    # A chunked report past the client's bound ends that read only (Issue 9): the session serves the next one.
    for run in (first, second):
        assert run["too_large"] is not None and run["too_large"]["received"] > 2000, run["too_large"]
        assert run["too_large"]["chunks"] >= 2 and run["after_bound"] == 0xFFF1


# ---------------------------------------------------------------------------------------------- the client


async def client_main(state: Path, device_node_id: int, interface: str) -> dict[str, Any]:
    """Our code only: credentials (once), DNS-SD, CASE, IM. Prints ``CSR <hex>``, reads the chain from stdin."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from clusters.access_control import schema as access_control
    from clusters.basic_information import schema as basic_information
    from clusters.group_key_management import schema as group_keys
    from jfds_device.codec.schema import NULL
    from jfds_device.crypto.attestation import nocsr_elements
    from jfds_device.crypto.case_keys import compressed_fabric_id
    from jfds_device.crypto.cert_issuer import build_csr
    from jfds_device.crypto.primitives import P256Keypair
    from jfds_device.datastore.sqlite import Database
    from jfds_device.errors import IMStatusError, ReportTooLargeError
    from jfds_device.fabrics import SqliteResumptionStore
    from jfds_device.im.client import InteractionClient
    from jfds_device.im.client_messages import AttributeWrite, ReadResult, build_write_requests
    from jfds_device.node.dnssd import Resolver
    from jfds_device.node.links import udp_link
    from jfds_device.node.stack import Stack
    from jfds_device.reconciler.ports import PeerId
    from jfds_device.securechannel.case_identity import OperationalIdentity

    credentials = state / "credentials.json"
    if not credentials.exists():
        keypair = P256Keypair(ec.generate_private_key(ec.SECP256R1()))
        print("CSR", nocsr_elements(build_csr(keypair.private_key), os.urandom(32)).hex(), flush=True)
        chain = json.loads(sys.stdin.readline())
        credentials.write_text(json.dumps({"key": keypair.private_bytes().hex(), **chain}))
    stored = {k: bytes.fromhex(v) for k, v in json.loads(credentials.read_text()).items()}
    identity = OperationalIdentity.from_certificates(
        1, rcac=stored["rcac"], noc=stored["noc"], icac=stored["icac"] or None,
        keypair=P256Keypair.from_private_bytes(stored["key"]), epoch_key=stored["ipk"])

    db = Database(state / "client.sqlite3")
    resolver = Resolver(interface)
    await resolver.start()
    stack = await Stack(identities=lambda: [identity], resumption=SqliteResumptionStore(db),
                        resolver=resolver).open(udp_link(0))  # the node's stack, serving nothing
    endpoint, dispatcher, peers, client = stack.endpoint, stack.dispatcher, stack.peers, stack.client
    peer = PeerId(1, device_node_id)
    reachability: list[str] = []
    peers.add_listener(lambda _, state: reachability.append(state.value))
    run = len(list(state.glob("client-*.log")))
    try:
        started = time.monotonic()
        session = await peers.connect(peer)
        connected = time.monotonic() - started
        basic = await client.read(session, [(0, BASIC, VENDOR_NAME), (0, BASIC, PRODUCT_NAME), (0, BASIC, VENDOR_ID)])
        acl = (await client.read(session, [(0, ACCESS_CONTROL, 0)])).value(0, ACCESS_CONTROL, 0)

        # The typed client (values, commands and responses named by our cluster schemas) against matter.js.
        typed_acl = await client.read_value(session, 0, access_control.CLUSTER.attribute(access_control.ACL))
        indices = await client.send_command(session, 0, group_keys.KeySetReadAllIndices())
        label = basic_information.CLUSTER.attribute(basic_information.NODE_LABEL)
        version = (await client.read(session, [(0, BASIC, NODE_LABEL)])).data_versions[(0, BASIC)]
        try:
            await client.write_value(session, 0, label, "stale", data_version=(version + 1) & 0xFFFF_FFFF)
            stale_status = 0
        except IMStatusError as exc:
            stale_status = exc.status
        await client.write_value(session, 0, label, f"typed {run}", data_version=version)
        typed_label = await client.read_value(session, 0, label)

        await client.write_attribute(session, 0, BASIC, NODE_LABEL, f"jfds run {run}")
        node_label = await client.read_attribute(session, 0, BASIC, NODE_LABEL)
        try:
            await client.read_attribute(session, 0, BASIC, 0x7FF0)
            unsupported = 0
        except IMStatusError as exc:
            unsupported = exc.status

        # A list written in several WriteRequests (replace with [] + appends, Core spec 8.7.3.3): a small
        # message budget forces the chunking the SDK uses for long lists. Binding entries on the light are safe.
        bindings = [{1: 0x1000 + run * 16 + i, 3: 1, 4: ON_OFF} for i in range(3)]
        write = AttributeWrite(1, BINDING, 0, bindings)
        chunked = InteractionClient(endpoint, dispatcher, max_payload=60)
        messages = len(build_write_requests([write], max_payload=60))
        [binding_status] = await chunked.write(session, [write])
        binding = await client.read_attribute(session, 1, BINDING, 0)

        # A report past our reassembly bound: a wildcard read of the light's endpoint 0 takes several kB in
        # matter.js's chunks; with a 2000-byte bound the read ends with ReportTooLargeError (matter.js gets
        # RESOURCE_EXHAUSTED), and the session serves the next read.
        bounded = InteractionClient(endpoint, dispatcher, max_report_bytes=2000)
        too_large: dict[str, int] | None = None
        try:
            await bounded.read(session, [(0, None, None)])
        except ReportTooLargeError as exc:
            too_large = {"received": exc.received, "chunks": exc.chunks}
        after_bound = await client.read_attribute(session, 0, BASIC, VENDOR_ID)

        reported: asyncio.Queue[ReadResult] = asyncio.Queue()
        subscription = await client.subscribe(session, [(1, ON_OFF, 0)], 0, 30, reported.put_nowait)
        before = subscription.priming.value(1, ON_OFF, 0)
        await client.invoke(session, 1, ON_OFF, 0x02)  # Toggle
        on_off = await client.read_attribute(session, 1, ON_OFF, 0)
        report = await asyncio.wait_for(reported.get(), 10)
        subscription.cancel()
        status = peers.status(peer)
        return {
            "root_public_key": identity.root_public_key.hex(),
            "compressed_fabric_id": int.from_bytes(compressed_fabric_id(identity.root_public_key,
                                                                        identity.fabric_id), "big"),
            "local_node_id": session.local_node_id,
            "peer_node_id": session.peer_node_id,
            "resumed": status.resumed,
            "address": str(status.address[0]) if status.address else None,
            "connect_seconds": round(connected, 3),
            "basic": {"vendor_name": basic.value(0, BASIC, VENDOR_NAME),
                      "product_name": basic.value(0, BASIC, PRODUCT_NAME),
                      "vendor_id": basic.value(0, BASIC, VENDOR_ID)},
            "acl": [{"privilege": e[1], "auth_mode": e[2], "subjects": e[3], "targets": e[4],
                     "fabric_index": e.get(0xFE)} for e in acl],
            "node_label": node_label,
            "typed_acl": [[int(e.privilege), int(e.auth_mode), e.subjects, e.targets is NULL, e.fabric_index]
                          for e in typed_acl],
            "typed_indices": None if indices is None else list(indices.group_key_set_ids),
            "stale_status": stale_status,
            "typed_label": typed_label,
            "binding_messages": messages,
            "binding_status": binding_status.status,
            "binding": [{"node": e.get(1), "endpoint": e.get(3), "cluster": e.get(4), "fabric_index": e.get(0xFE)}
                        for e in binding],
            "unsupported_status": unsupported,
            "too_large": too_large,
            "after_bound": after_bound,
            "on_off": on_off,
            "toggled_from": before,
            "reported_on_off": report.value(1, ON_OFF, 0),
            "reachability": reachability,
        }
    finally:
        await peers.close()
        await client.close()
        await resolver.stop()
        await asyncio.sleep(0.1)  # lets the CloseSession leave before the socket closes
        await stack.close()
        db.close()


def main(argv: list[str]) -> int:
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    state, device_node_id, interface = Path(argv[0]), int(argv[1]), argv[2]
    result = asyncio.run(client_main(state, device_node_id, interface))
    print("RESULT", json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
