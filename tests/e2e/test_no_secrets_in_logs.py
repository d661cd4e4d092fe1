"""Nothing secret in jfds-device's log, even at debug level (issue 9), end to end.

jfds-device runs with ``--log-level debug`` (the harness's default) through commissioning by the CHIP controller,
an enhanced commissioning window opened with a verifier the test made, and a JFDS key-set push to a matter.js
light (KeySetWrite over CASE). Afterwards its whole log (stdout and stderr) is searched for every secret the test
can know, each in hex (either case), base64 and Python's bytes notation: the passcode, the window's PAKE
verifier, the pushed epoch keys, the IPK, the node's operational private key and every stored CASE resumption
secret (the material its session keys come from). A failed event callback is covered at unit level
(``tests/transport/test_udp.py``), since nothing from outside can make one fail on purpose.
"""

from __future__ import annotations

import base64
import sqlite3
from typing import Any

import pytest

from jfds_device.crypto.spake2p import make_verifier
from tests.e2e.reconciler_env import JF, SUCCESS, ReconcilerEnv, reconciler_env

pytestmark = [pytest.mark.netns, pytest.mark.interop]

Clusters = pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.clusters.Types import NullValue  # noqa: E402

ADMIN = Clusters.AdministratorCommissioning
PASSCODE = 20202021  # reconciler_env's
LIGHT = 2
EPOCH_KEYS = (bytes.fromhex("5ec7e75ec7e75ec7e75ec7e75ec7e701"), bytes.fromhex("5ec7e75ec7e75ec7e75ec7e75ec7e702"))
ECM_PASSCODE, ECM_SALT, ECM_ITERATIONS = 31415926, bytes(range(0x40, 0x60)), 1000


def encodings(secret: bytes) -> set[str]:
    return {secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode(), repr(secret)[2:-1]}


def stored_secrets(env: ReconcilerEnv) -> dict[str, bytes]:
    """What the device keeps that must never be logged: read from its state file (a WAL-mode SQLite)."""
    with sqlite3.connect(f"file:{env.tmp / 'jfds' / 'jfds.sqlite3'}?mode=ro", uri=True) as db:
        secrets = {}
        for index, ipk, key in db.execute("SELECT fabric_index, ipk_epoch_key, operational_key FROM fabrics"):
            secrets[f"IPK of fabric {index}"] = bytes(ipk)
            secrets[f"operational key of fabric {index}"] = bytes(key)
        for number, (secret,) in enumerate(db.execute("SELECT shared_secret FROM case_resumption")):
            secrets[f"resumption secret {number}"] = bytes(secret)
    return secrets


def key_set(set_id: int) -> Any:
    return JF.Structs.DatastoreGroupKeySetStruct(
        groupKeySetID=set_id, groupKeySecurityPolicy=JF.Enums.DatastoreGroupKeySecurityPolicyEnum.kTrustFirst,
        epochKey0=EPOCH_KEYS[0], epochStartTime0=1, epochKey1=EPOCH_KEYS[1], epochStartTime1=100000,
        epochKey2=NullValue, epochStartTime2=NullValue,
        groupKeyMulticastPolicy=JF.Enums.DatastoreGroupKeyMulticastPolicyEnum.kPerGroupID,
    )  # fmt: skip


def test_the_debug_log_holds_no_secret() -> None:
    with reconciler_env("jfds-e2e-secrets-", {LIGHT: {}}) as env:
        assert env.ctrl is not None and env.device is not None
        # A key set pushed to the light with its group (KeySetWrite, GroupKeyMap, Groups.AddGroup).
        env.commit_node(LIGHT, "lamp")
        assert env.jfds(JF.Commands.AddKeySet(groupKeySet=key_set(0x0042))) == SUCCESS
        assert env.jfds(JF.Commands.AddGroup(groupID=0x0101, friendlyName="secrets", groupKeySetID=0x0042,
                                             groupCAT=NullValue, groupCATVersion=NullValue,
                                             groupPermission=JF.Enums.DatastoreAccessControlEntryPrivilegeEnum.kOperate,
                                             )) == SUCCESS  # fmt: skip
        assert env.jfds(JF.Commands.AddGroupIDToEndpointForNode(nodeID=LIGHT, endpointID=1, groupID=0x0101)) == SUCCESS
        env.wait_committed(JF.Attributes.NodeKeySetList, 20, nodeID=LIGHT, groupKeySetID=0x0042)
        # An enhanced commissioning window with a verifier the test knows, then revoked.
        verifier = make_verifier(ECM_PASSCODE, ECM_SALT, ECM_ITERATIONS).to_bytes()
        env.ctrl.call("SendCommand", 1, 0, ADMIN.Commands.OpenCommissioningWindow(
            commissioningTimeout=180, PAKEPasscodeVerifier=verifier, discriminator=0x123,
            iterations=ECM_ITERATIONS, salt=ECM_SALT), timedRequestTimeoutMs=5000)  # fmt: skip
        env.ctrl.call("SendCommand", 1, 0, ADMIN.Commands.RevokeCommissioning(), timedRequestTimeoutMs=5000)
        [ipk_set] = [k for k in env.read_jfds(JF.Attributes.GroupKeySetList) if k.groupKeySetID == 0]

        secrets = {
            "epoch key 0": EPOCH_KEYS[0],
            "epoch key 1": EPOCH_KEYS[1],
            "IPK (datastore key set 0)": ipk_set.epochKey0,
            "ECM verifier": verifier,
            "ECM verifier w0": verifier[:32],
            "ECM verifier L": verifier[32:],
            "passcode (uint32)": PASSCODE.to_bytes(4, "little"),
            **stored_secrets(env),
        }
        assert any(name.startswith("resumption") for name in secrets), "no CASE session was resumed or stored"
        log = env.device.output()
        assert " DEBUG jfds_device.transport.exchange: " in log, "the device did not log at debug level"
        assert str(PASSCODE) not in log and str(ECM_PASSCODE) not in log
        leaks = [name for name, secret in secrets.items() for text in encodings(secret) if text in log]
        assert not leaks, f"secrets in the device log: {sorted(set(leaks))}"
