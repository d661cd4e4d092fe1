"""CASE responder and initiator (Core spec §4.14.2): vectors, pair runs, trust failures, resumption, fuzzing.

Vectors are published CASE test vectors (connectedhomeip and matter.js test sources); each constant names its upstream
source (repository, path, commit). Fabrics are issued on the fly with ``CertificateIssuer`` (cached per module), and
the machines run against each other in a plain loop, as the PASE tests do.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from chip.tlv import TLVReader, TLVWriter, uint  # the CHIP SDK's own Python TLV codec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jfds_device.codec import tlv
from jfds_device.codec.message import SecureChannelOpcode as Op
from jfds_device.crypto.case_keys import (
    TBE_DATA2_NONCE,
    TBE_DATA3_NONCE,
    compressed_fabric_id,
    operational_ipk,
    sigma2_key,
    sigma3_key,
)
from jfds_device.crypto.cert_issuer import CertificateIssuer
from jfds_device.crypto.certs import MatterCertificate
from jfds_device.crypto.primitives import P256Keypair, aes_ccm_encrypt, ecdsa_verify
from jfds_device.crypto.session_keys import case_session_keys
from jfds_device.errors import CertificateError, CryptoError, DecodeError, LocalProtocolError, RemoteProtocolError
from jfds_device.securechannel import case_messages as cm
from jfds_device.securechannel.case import (
    BUSY_WAIT_MS,
    NO_SHARED_TRUST_ROOTS_REPORT,
    CaseError,
    CaseInitiator,
    CaseResponder,
    CaseState,
    InMemoryResumptionStore,
    OperationalIdentity,
    ResumptionRecord,
)
from jfds_device.securechannel.pase import FAILURE_REPORT, SUCCESS_REPORT
from jfds_device.securechannel.session_params import SessionParameters
from jfds_device.securechannel.status import GeneralCode, SecureChannelProtocolCode, StatusReport, StatusReportError
from tests.strategies import for_struct

h = bytes.fromhex
Message = tuple[int, bytes]
FAILURE: Message = (Op.STATUS_REPORT, FAILURE_REPORT.encode())
SUCCESS: Message = (Op.STATUS_REPORT, SUCCESS_REPORT.encode())
NO_SHARED_ROOTS: Message = (Op.STATUS_REPORT, NO_SHARED_TRUST_ROOTS_REPORT.encode())

# --- "Destination ID — spec example": connectedhomeip src/protocols/secure_channel/tests/TestCASESession.cpp,
# DestinationIdGeneration / kExpectedDestinationIdFromSpec (also matter.js FabricTest.ts).
# --- "Destination ID — small fabric/node IDs": matter.js packages/protocol/test/fabric/FabricTest.ts
# @ b851ce019504, "generates the correct destination ID 3".
DESTINATION_VECTORS = {
    "spec": {
        "ipk": h("9bc61cd9c62a2df6d64dfcaa9dc472d4"),
        "random": h("7e171231568dfa17206b3accf8faec2f4d21b580113196f47c7c4deb810a73dc"),
        "root": h(
            "044a9f42b1ca4840d37292bbc7f6a7e11e22200c976fc900dbc98a7a383a641cb8254a2e56d4e295a847943b4e3897c4a773"
            "e930277b4d9fbede8a052686bfacfa"
        ),
        "fabric_id": 0x2906C908D115D362,
        "node_id": 0xCD5544AA7B13EF14,
        "destination_id": h("dc35dd5fc9134cc5544538c9c3fc4297c1ec3370c839136a80e10796451d4c53"),
    },
    "small ids": {
        "ipk": h("6624ed691e9b53b1f286d98117918c3a"),
        "random": h("0b2a71876d3d090d37cb5286168ab9be0d2e7e0ccbedc1f55331b8a8051ee02f"),
        "root": h(
            "04d89eb7e3f3226d0918f4b85832457bb9981bca7aaef58c18fb5ec07525e472b2bd1617fb75ee41bd388f94ae6a6070efc8"
            "96777516a5c54aff74ec0804cdde9d"
        ),
        "fabric_id": 0x0000000000000001,
        "node_id": 0x0000000000000055,
        "destination_id": h("b1ce1a45fd930831203024286cd609ec4f9bbe71ed8e10c2c4cab0be49a87e8a"),
    },
}

# --- "Sigma2 construction (responder side)": matter.js packages/protocol/test/session/secure/
# CasePairingTest.ts @ b851ce019504, "generates the right bytes for sigma 2".
S2_SIGMA1 = h(
    "153001208681a088651b1803d3027e7994756aedb4c4bd56ca1f5e1c54cf6da4a104fffa25028830300320066ab9dc4e84686b9fb785"
    "0d4b8306e8c42189f39c919459a552cf27ad34004230044104ae6e458cf40ad53761ee90bc458aa577e6a1acf75410524551bb0bc4c7"
    "08832c6525991ee2eed47df35ce2d83dad743bff6769ebbf731395d62453cb37303e0335052501881325022c011818"
)
S2_IPK = h("0c677d9b5ac585827b577470bd9bd516")
S2_RESPONDER_RANDOM = h("75d1443943a23371699bb017958a87e9ec6bbcad5f990aa3822a45bec7786489")
S2_RESPONDER_EPH = h(
    "04e2690445cc017a388853eaeca3a1ffd2712f6898e0bb523b8b496590804a39bf1555300bbd2a159e927b428397fb07a41e26c8cdf8"
    "58ec62a310d0480d94eb64"
)
S2_SHARED_SECRET = h("08ec3182f7111854fd22fe527951527e4fe905d29a959f99013279cd9c9299f1")
S2_NOC = h(
    "153001010124020137032414001826048012542826058015203b370624150124115a1824070124080130094104531a14e4c1b4cc7ac6"
    "9aa5e403d5ccc3c5152c29fddedc29ac98ecff6c8f8695317446029cf3eb3e295ee18f0fd0ba9f06f7fa229138db0bc8d8c6f9875c97"
    "07370a3501280118240201360304020401183004149038f60c3542d5e610f29abc5f42ac09b07ee0d7300514e766069362d7e35b7968"
    "7161644d222bdde93a6818300b40cbd9a06e77e9a7bcd19d02da0f2e50042f7d78201e8be26e793e995ca8f02f1094b34d0fd53b1f14"
    "58908d0d29183f2611e6132c6401d15dfff081d1021358ad18"
)
S2_S2K = h("7ed5e720195c511dc2d97535e262f935")
S2_TBS = h(
    "153001f1153001010124020137032414001826048012542826058015203b370624150124115a1824070124080130094104531a14e4"
    "c1b4cc7ac69aa5e403d5ccc3c5152c29fddedc29ac98ecff6c8f8695317446029cf3eb3e295ee18f0fd0ba9f06f7fa229138db0bc8"
    "d8c6f9875c9707370a3501280118240201360304020401183004149038f60c3542d5e610f29abc5f42ac09b07ee0d7300514e76606"
    "9362d7e35b79687161644d222bdde93a6818300b40cbd9a06e77e9a7bcd19d02da0f2e50042f7d78201e8be26e793e995ca8f02f10"
    "94b34d0fd53b1f1458908d0d29183f2611e6132c6401d15dfff081d1021358ad1830034104e2690445cc017a388853eaeca3a1ffd2"
    "712f6898e0bb523b8b496590804a39bf1555300bbd2a159e927b428397fb07a41e26c8cdf858ec62a310d0480d94eb6430044104ae"
    "6e458cf40ad53761ee90bc458aa577e6a1acf75410524551bb0bc4c708832c6525991ee2eed47df35ce2d83dad743bff6769ebbf73"
    "1395d62453cb37303e0318"
)
S2_TBE_PLAINTEXT = h(
    "153001f1153001010124020137032414001826048012542826058015203b370624150124115a1824070124080130094104531a14e4"
    "c1b4cc7ac69aa5e403d5ccc3c5152c29fddedc29ac98ecff6c8f8695317446029cf3eb3e295ee18f0fd0ba9f06f7fa229138db0bc8"
    "d8c6f9875c9707370a3501280118240201360304020401183004149038f60c3542d5e610f29abc5f42ac09b07ee0d7300514e76606"
    "9362d7e35b79687161644d222bdde93a6818300b40cbd9a06e77e9a7bcd19d02da0f2e50042f7d78201e8be26e793e995ca8f02f10"
    "94b34d0fd53b1f1458908d0d29183f2611e6132c6401d15dfff081d1021358ad183003401736972364d84c4ae069f642f491256c6e"
    "74c86eda9f5ed4d89dfd7cadb68b67574f032afa2764fcc890e9218eaedcc484576d2d65e4df1ae22dd916f12ab59e3004108731f8"
    "cec507136df7558fca9360e9fc18"
)
S2_SIGNATURE = h(
    "1736972364d84c4ae069f642f491256c6e74c86eda9f5ed4d89dfd7cadb68b67574f032afa2764fcc890e9218eaedcc484576d2d65e4"
    "df1ae22dd916f12ab59e"
)
S2_RESUMPTION_ID = h("8731f8cec507136df7558fca9360e9fc")
S2_TBE_ENCRYPTED = h(
    "7db57138c40bd8f37deb377764270e35143ec2cadfa73ef138d5ff3818ca3f003db767061051a19cb2cb1756ff214a855b6c32a07798"
    "c22756ff22338928928baa9ed8ab9484e3a662612616a95a7dbd11ac8d84ebe33b141366349452e47ebac98423140dffa764c83257c0"
    "79c29a925f5a065ba98c491ae54289fc3d09d8bd8519e9f82dd51dfe4317e22b8481ada14462f01a1b837dc7af1000a3869bc1f9539d"
    "69cf73e0eb2377e35b5f9799ccb38b14dab2735edf37660a641669031820133122b5b62267b8b543e797977278b4bef14b6a820749ce"
    "66617251356ab8b759ccb3b3cdb376ec1862268aacb46145527f7940794fbc77c852a02bafb64e8e461e50349a342c34f493ac20abc7"
    "442ecf78531b4e07047af37dbe2e4746fb344169dd302f1ecc9339cb54a40b11957e2d395e4bcfb98a560247dffa5c22454febdb94b8"
    "2c40838a279143a089b6ef8df76222ecdf4e04bcd6e6e222"
)

# --- "TBSData signature check": matter.js CasePairingTest.ts @ b851ce019504, "generates the right
# signature". Its TBSData carries an *empty* ICAC element (30 02 00), which our schema must keep byte-exact.
SIG_PUBLIC_KEY = h(
    "049bfa105c3d209ff226c31da689dafb297b73499ec1844bba89c60ce65938b722300dd0abbb201e9451c6ab284ec99b8d90c5dd8923"
    "88c59fde30c299c64af8c4"
)
SIG_TBS = h(
    "153001f1153001010124020137032414001826048012542826058015203b370624150124115d18240701240801300941049bfa105c3d"
    "209ff226c31da689dafb297b73499ec1844bba89c60ce65938b722300dd0abbb201e9451c6ab284ec99b8d90c5dd892388c59fde30c2"
    "99c64af8c4370a3501280118240201360304020401183004142c3494bc756f4b58a73bde64a3141285a3efd5c9300514e766069362d7"
    "e35b79687161644d222bdde93a6818300b406772b5445ef466a669d9e5e5663238b817511e73ce992937ddd975690abda8b86b0a79f2"
    "fd49bae78c653fad9bd3d53463d4abd7f996964988a7644c4cc1d0321830020030034104473bd04e2a9c4e6a12b9008739c64a16d011"
    "3295822faf17e3d2ffcb77b0cae437701b0f0525ddcc6139da5a56dfda2af2b86a2836ef6b03f8f5c231dbaf950b3004410441838848"
    "a7e58ab46a1a71a539c474780002bf22adccbeaa43ee07f5176c61aaa3d718102333fc856595ea3a6a5bfd37d2890049acb82c49440e"
    "1f490cd970e018"
)
SIG_SIGNATURE = h(
    "75e35c22a5da60805d65772b3d4decc8c6eabe30bd2925608524ea12b729efd00a12faeb5757cdfc65aaefddd01c57be9f14d37e2c0b"
    "eca43434f8ebdd81d635"
)

# --- "Sigma3 decryption, TBSData3 and session keys (responder side)": matter.js CasePairingTest.ts
# @ b851ce019504, "generates the right bytes for sigma 3". The full 48-byte SessionKeys are derived from the
# published inputs (upstream checks the I2R key only).
S3_SIGMA1 = h(
    "15300120dbf3b308b237d4a734ea0926a611706953fb83c80bf93dda569799777cd11fe1250244c23003206283cd5207ae1602ed4b07"
    "f27f4166453966c601b3c8a825dc39f18b1fb12a55300441041d5a2e34457dcb4184b94bf7cb6f64689ee73d69282daa5fa5ee6fa581"
    "0f80c136ec7b8806679878cb045d9b25aa28a1a411c77677f5a1cf6f98c4acfeb9793c35052501881325022c011818"
)
S3_SIGMA2 = h(
    "15300120c64d8172a7c8f77fadc6d6a35da29cb880ed54da6fa70d9e922ff96c12b13a4b2502ece930034104d1dbb16fd8ffda505a00"
    "f49c9af98eb5e98573708590575991aa06f09e295463f33cccf49c8df7c5b58f6d02c4f193485d4c9ae41cf4df0b89b223822adf7db5"
    "31045c0186ce241016bdb0efe61b6ad8c57fc7e936773c7889994df8a891ae8cd469b02c87d36719d103a0890d03525ca253c598cabd"
    "b48aeafdedf7c4bdb56dbab4977af00d258aeba02d7999d92d47976c987be4aa2e28bc67bc868bb6c7ef1d636f1cb26e2cf41e573399"
    "1a6064fdfb1cac762938e60f492760219832830e05d712868343126c80983f9d8bfeb5bdb373368d88eb72e5179c07f75a5f8f622285"
    "a0c02b2642ebf96cb4394717188a313cf960ec0a07927cade2edbe901511a77902c440860d2f4a3191aeca6039bb8891bf82798ddeb3"
    "944a68f613f8d2fbaa1ca572474c2e99c456f1a86cf0bf9b547f45fe1069c33fb04429916b36cf17e6e65d61fe8b22d767b88218889e"
    "ddc40c38335093c406c31c58d3a5770ef31899cda4ded48acf1394f1467e124f33925bd7e4d6e3e1d80a0b82783a3ce440178e9295f2"
    "4a778bb315a084831238bfab5f46727a31f5d797bb7a91d72101fb3635052501881325022c011818"
)
S3_SIGMA3 = h(
    "1531014c01d3e009b49a46a2492a96fc8391dd90a53ad5de4fadc911a524036bbaf439577bf4ce9bb4b5cab2942c8c6e8d5666b3ce74"
    "49e0fb290833291641f40a366a4a9fd5573b5913b932914e23f13d25353d4cad0ad6e2ecbb85163800580dfb7ea88c56bb67565e9454"
    "2f49c2f0fe4a7de22ee0fecc85a28da31e32508c3ce1d30b4cfe7b7bb84d5c4425f20336ea816f4b9a04c6c0828e4f4b24eb4aacf29a"
    "4b6b419d85dcf02d222c9826691aa73864f9cd6b8ebfd94680b0db75f7356018284e2c9b3bcea807f73f5adaff5db005550e44192142"
    "0ddc65500a2bd4a177875f71be4e293c35c8221867bf206c016d6d5add4ceba754fb3ad375a03061634d3a0b0ae6b0bafe272640c545"
    "f07cf7742d960f399a12c09b7bf7833678e048e039ee7b1a66e365817fff0d0d7e28edb7beae205a2974b3273ae23909e9bb482cdc5b"
    "05363265d78eb747536336b7ef18"
)
S3_IPK = h("0c677d9b5ac585827b577470bd9bd516")
S3_SHARED_SECRET = h("c1466cab85d7809732786f63cb3b014a51cd49d01f494fcd56665ba8e00e5502")
S3_S3K = h("5ba760e89d08efcfe22dbe5832684415")
S3_SIGNATURE = h(
    "b474e61e26d3a4bb243890632e2c12a82263a9433f31e9c0303d7b3ffc61799bce5b219679c90c820eebb9af5fb8066c7d459b69cef4"
    "9e37ccbb8c66534240f2"
)
S3_SESSION_KEYS = h("e3ffee2792dc6d8dee832e248d1df718e06c4306d9eed91e3aca9befd4449118c9df3ab5603e8157991a2c9c0f837329")


# --------------------------------------------------------------------------------------------- fixtures


class FixedRandom:
    """A random source that hands out prepared chunks in order, then fails the test if asked for more."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = list(chunks)

    def __call__(self, n: int) -> bytes:
        assert self._chunks, "unexpected extra draw from the random source"
        chunk = self._chunks.pop(0)
        assert len(chunk) == n
        return chunk


@dataclass(frozen=True)
class Fabric:
    """A test fabric: its root (and ICAC, if any) as issuers, its fabric id and its IPK epoch key."""

    root: CertificateIssuer
    issuer: CertificateIssuer  # the NOC issuer: the root, or the ICAC
    fabric_id: int
    epoch_key: bytes

    @property
    def icac(self) -> bytes | None:
        return None if self.issuer is self.root else self.issuer.issued.tlv

    def identity(self, fabric_index: int, node_id: int, **noc_kwargs: Any) -> OperationalIdentity:
        keypair = P256Keypair.generate()
        fabric_id = noc_kwargs.pop("fabric_id", self.fabric_id)
        noc = self.issuer.issue_noc(keypair.public_key_bytes, node_id, fabric_id, **noc_kwargs).tlv
        return OperationalIdentity.from_certificates(
            fabric_index, rcac=self.root.issued.tlv, noc=noc, icac=self.icac, keypair=keypair, epoch_key=self.epoch_key
        )


@functools.cache
def fabric(name: str) -> Fabric:
    """Cached fabrics: A and C (no ICAC), B (ICAC), A2 and B2 (other roots claiming A's and B's fabric ids)."""
    fabric_id, with_icac, rcac_id = {
        "A": (0x0000_0000_0000_0A0A, False, 1),
        "B": (0x2906_C908_D115_D362, True, 2),
        "A2": (0x0000_0000_0000_0A0A, False, 3),
        "B2": (0x2906_C908_D115_D362, True, 4),
        "C": (0x0000_0000_0000_0C0C, False, 5),
    }[name]
    root = CertificateIssuer.create_root(rcac_id)
    issuer = root.create_intermediate(rcac_id + 100) if with_icac else root
    return Fabric(root, issuer, fabric_id, epoch_key=bytes([rcac_id]) * 16)


@functools.cache
def identity(name: str, fabric_index: int, node_id: int, cats: tuple[int, ...] = ()) -> OperationalIdentity:
    return fabric(name).identity(fabric_index, node_id, cats=cats)


RESPONDER_NODE = 0x0000_0000_0000_0055
INITIATOR_NODE = 0x0000_0000_0001_B669
CATS = (0x0001_0001, 0xABCD_0002)


def make_responder(
    *fabrics: OperationalIdentity, store: InMemoryResumptionStore | None = None, **kw: Any
) -> CaseResponder:
    kw.setdefault("local_session_id", 0x1234)
    return CaseResponder(fabrics or (identity("A", 1, RESPONDER_NODE),), store or InMemoryResumptionStore(), **kw)


def make_initiator(
    ident: OperationalIdentity | None = None, peer_node_id: int = RESPONDER_NODE, **kw: Any
) -> CaseInitiator:
    kw.setdefault("local_session_id", 0x4321)
    return CaseInitiator(ident or identity("A", 3, INITIATOR_NODE, CATS), peer_node_id, **kw)


def run_pair(initiator: CaseInitiator, responder: CaseResponder) -> list[tuple[str, int, bytes]]:
    """Shuttle messages until neither side has anything to send; return the transcript."""
    transcript: list[tuple[str, int, bytes]] = []
    message: Message | None = initiator.start()
    while message is not None:
        transcript.append(("I→R", *message))
        replies = responder.receive(*message)
        assert len(replies) <= 1
        if not replies:
            break
        transcript.append(("R→I", *replies[0]))
        message = initiator.receive(*replies[0])
    return transcript


def opcodes(transcript: list[tuple[str, int, bytes]]) -> list[tuple[str, int]]:
    return [(d, op) for d, op, _ in transcript]


FULL = [("I→R", Op.CASE_SIGMA1), ("R→I", Op.CASE_SIGMA2), ("I→R", Op.CASE_SIGMA3), ("R→I", Op.STATUS_REPORT)]
RESUMED = [("I→R", Op.CASE_SIGMA1), ("R→I", Op.CASE_SIGMA2_RESUME), ("I→R", Op.STATUS_REPORT)]


# --------------------------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("name", DESTINATION_VECTORS)
def test_destination_id_vectors_in_sigma1(name: str) -> None:
    v = DESTINATION_VECTORS[name]
    ident = dataclasses.replace(
        identity("A", 1, INITIATOR_NODE), root_public_key=v["root"], fabric_id=v["fabric_id"], ipk=v["ipk"]
    )
    initiator = make_initiator(ident, v["node_id"], random_bytes=FixedRandom(v["random"]))
    opcode, payload = initiator.start()
    sigma1 = cm.decode_message(cm.Sigma1, payload)
    assert opcode is Op.CASE_SIGMA1 and sigma1.destination_id == v["destination_id"]
    assert sigma1.initiator_random == v["random"] and sigma1.resumption_id is None

    # A responder holding that fabric (with the IPK current, or only as another epoch's) picks it up.
    own = dataclasses.replace(
        identity("A", 1, RESPONDER_NODE), root_public_key=v["root"], fabric_id=v["fabric_id"], node_id=v["node_id"]
    )
    for candidate in (dataclasses.replace(own, ipk=v["ipk"]), dataclasses.replace(own, other_ipks=(v["ipk"],))):
        (reply,) = make_responder(identity("C", 2, RESPONDER_NODE), candidate).receive(opcode, payload)
        assert reply[0] is Op.CASE_SIGMA2
    flipped = dataclasses.replace(own, ipk=bytes([v["ipk"][0] ^ 1]) + v["ipk"][1:])
    assert make_responder(flipped).receive(opcode, payload) == [NO_SHARED_ROOTS]


def test_sigma2_construction_vector() -> None:
    sigma1 = cm.decode_message(cm.Sigma1, S2_SIGMA1)
    assert sigma1.encode() == S2_SIGMA1  # byte-exact layout, session parameters included
    assert sigma1.initiator_session_params == SessionParameters(idle_interval_ms=5000, active_interval_ms=300)
    tbs = cm.TbsData(
        sender_noc=S2_NOC, sender_eph_pub_key=S2_RESPONDER_EPH, receiver_eph_pub_key=sigma1.initiator_eph_pub_key
    )
    assert tbs.encode() == S2_TBS
    ecdsa_verify(MatterCertificate.decode_tlv(S2_NOC).public_key_bytes, S2_TBS, S2_SIGNATURE)
    tbe = cm.TbeData2(responder_noc=S2_NOC, signature=S2_SIGNATURE, resumption_id=S2_RESUMPTION_ID)
    assert tbe.encode() == S2_TBE_PLAINTEXT
    s2k = sigma2_key(S2_SHARED_SECRET, S2_IPK, S2_RESPONDER_RANDOM, S2_RESPONDER_EPH, S2_SIGMA1)
    assert s2k == S2_S2K
    assert cm.seal_tbe(s2k, TBE_DATA2_NONCE, tbe) == S2_TBE_ENCRYPTED
    assert cm.open_tbe(cm.TbeData2, s2k, TBE_DATA2_NONCE, S2_TBE_ENCRYPTED) == tbe
    with pytest.raises(CryptoError):
        cm.open_tbe(cm.TbeData2, s2k, TBE_DATA3_NONCE, S2_TBE_ENCRYPTED)


def test_tbs_signature_vector_with_empty_icac_element() -> None:
    tbs = cm.decode_message(cm.TbsData, SIG_TBS)
    assert tbs.sender_icac == b"" and tbs.encode() == SIG_TBS
    assert tbs.sender_eph_pub_key != tbs.receiver_eph_pub_key
    ecdsa_verify(SIG_PUBLIC_KEY, tbs.encode(), SIG_SIGNATURE)
    with pytest.raises(CryptoError):
        ecdsa_verify(SIG_PUBLIC_KEY, dataclasses.replace(tbs, sender_icac=None).encode(), SIG_SIGNATURE)


def test_sigma3_and_session_keys_vector() -> None:
    sigma1 = cm.decode_message(cm.Sigma1, S3_SIGMA1)
    sigma2 = cm.decode_message(cm.Sigma2, S3_SIGMA2)
    sigma3 = cm.decode_message(cm.Sigma3, S3_SIGMA3)
    assert (sigma1.encode(), sigma2.encode(), sigma3.encode()) == (S3_SIGMA1, S3_SIGMA2, S3_SIGMA3)

    # Initiator's view of Sigma2: S2K opens TBEData2, whose signature covers TBSData2.
    s2k = sigma2_key(S3_SHARED_SECRET, S3_IPK, sigma2.responder_random, sigma2.responder_eph_pub_key, S3_SIGMA1)
    tbe2 = cm.open_tbe(cm.TbeData2, s2k, TBE_DATA2_NONCE, sigma2.encrypted2)
    tbs2 = cm.TbsData(
        sender_noc=tbe2.responder_noc,
        sender_icac=tbe2.responder_icac,
        sender_eph_pub_key=sigma2.responder_eph_pub_key,
        receiver_eph_pub_key=sigma1.initiator_eph_pub_key,
    )
    ecdsa_verify(MatterCertificate.decode_tlv(tbe2.responder_noc).public_key_bytes, tbs2.encode(), tbe2.signature)

    # Responder's view of Sigma3: S3K opens TBEData3, TBSData3 is rebuilt, the session keys follow.
    s3k = sigma3_key(S3_SHARED_SECRET, S3_IPK, S3_SIGMA1, S3_SIGMA2)
    assert s3k == S3_S3K
    tbe3 = cm.open_tbe(cm.TbeData3, s3k, TBE_DATA3_NONCE, sigma3.encrypted3)
    assert tbe3.initiator_icac is None and tbe3.signature == S3_SIGNATURE
    assert cm.seal_tbe(s3k, TBE_DATA3_NONCE, tbe3) == sigma3.encrypted3
    tbs3 = cm.TbsData(
        sender_noc=tbe3.initiator_noc,
        sender_eph_pub_key=sigma1.initiator_eph_pub_key,
        receiver_eph_pub_key=sigma2.responder_eph_pub_key,
    )
    ecdsa_verify(MatterCertificate.decode_tlv(tbe3.initiator_noc).public_key_bytes, tbs3.encode(), tbe3.signature)
    keys = case_session_keys(S3_SHARED_SECRET, S3_IPK, S3_SIGMA1, S3_SIGMA2, S3_SIGMA3)
    assert keys.i2r_key + keys.r2i_key + keys.attestation_challenge == S3_SESSION_KEYS


def _chip_form(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _chip_form(v) for k, v in value.items()}
    return uint(value) if type(value) is int else value


def test_our_sigma_layouts_match_the_chip_sdk_tlv_writer() -> None:
    # Decode each payload with the SDK's Python TLV reader and re-encode it with its writer: same bytes.
    responder_store, initiator_store = InMemoryResumptionStore(), InMemoryResumptionStore()
    params = SessionParameters(idle_interval_ms=5000, active_interval_ms=300, active_threshold_ms=4000)
    responder = make_responder(store=responder_store, session_params=params)
    initiator = make_initiator(session_params=params)
    first = run_pair(initiator, responder)
    assert initiator.result is not None
    initiator_store.put(initiator.result.resumption_record)
    assert responder.result is not None
    responder_store.put(responder.result.resumption_record)
    record = initiator_store.get_by_peer(3, RESPONDER_NODE)
    second = run_pair(make_initiator(resumption_record=record), make_responder(store=responder_store))
    assert opcodes(second) == RESUMED
    for _, opcode, payload in [*first, *second]:
        if opcode == Op.STATUS_REPORT:
            continue
        decoded = TLVReader(payload).get()["Any"]
        writer = TLVWriter()
        writer.put(None, _chip_form(decoded))
        assert bytes(writer.encoding) == payload, Op(opcode).name


# --------------------------------------------------------------------------------------------- happy paths


@pytest.mark.parametrize(
    ("responder_fabric", "initiator_cats", "responder_cats"),
    [("A", (), ()), ("A", CATS, ()), ("B", (), (0x0002_0001,)), ("B", CATS, CATS[:1])],
    ids=["no-icac", "no-icac+cats", "icac", "icac+cats"],
)
def test_pair_agrees_on_keys_with_swapped_roles(
    responder_fabric: str, initiator_cats: tuple[int, ...], responder_cats: tuple[int, ...]
) -> None:
    params_i = SessionParameters(idle_interval_ms=5000, active_interval_ms=300)
    params_r = SessionParameters(idle_interval_ms=500, active_interval_ms=300, active_threshold_ms=4000)
    responder = make_responder(identity(responder_fabric, 7, RESPONDER_NODE, responder_cats), session_params=params_r)
    initiator = make_initiator(identity(responder_fabric, 2, INITIATOR_NODE, initiator_cats), session_params=params_i)
    transcript = run_pair(initiator, responder)

    assert opcodes(transcript) == FULL and transcript[-1][2] == bytes(8)
    assert initiator.done and responder.done and initiator.error is None and responder.error is None
    ri, rr = initiator.result, responder.result
    assert ri is not None and rr is not None
    assert ri.keys == rr.keys
    enc_i, dec_i = ri.keys.for_role(ri.is_initiator)
    enc_r, dec_r = rr.keys.for_role(rr.is_initiator)
    assert (enc_i, dec_i) == (dec_r, enc_r) and enc_i != dec_i
    assert (ri.local_session_id, ri.peer_session_id) == (0x4321, 0x1234)
    assert (rr.local_session_id, rr.peer_session_id) == (0x1234, 0x4321)
    # The responder learns the initiator's subject from its NOC; the initiator the responder's.
    responder_view = (rr.fabric_index, rr.local_node_id, rr.peer_node_id, rr.peer_cats)
    initiator_view = (ri.fabric_index, ri.local_node_id, ri.peer_node_id, ri.peer_cats)
    assert responder_view == (7, RESPONDER_NODE, INITIATOR_NODE, initiator_cats)
    assert initiator_view == (2, INITIATOR_NODE, RESPONDER_NODE, responder_cats)
    assert ri.peer_session_params == params_r and rr.peer_session_params == params_i
    assert not ri.resumed and not rr.resumed
    # Both sides hold the same resumption material; each names the other as the peer.
    assert ri.resumption_record.resumption_id == rr.resumption_record.resumption_id
    assert ri.resumption_record.shared_secret == rr.resumption_record.shared_secret


def test_responder_with_several_fabrics_picks_the_right_one() -> None:
    fabrics = (identity("A", 1, RESPONDER_NODE), identity("B", 2, 0x77), identity("C", 3, 0x88))
    for ident, peer in [(identity("B", 9, INITIATOR_NODE), 0x77), (identity("C", 9, INITIATOR_NODE), 0x88)]:
        responder = make_responder(*fabrics)
        initiator = make_initiator(ident, peer)
        assert opcodes(run_pair(initiator, responder)) == FULL
        assert responder.result is not None and initiator.result is not None
        expected = next(f for f in fabrics if f.node_id == peer)
        assert (responder.result.fabric_index, responder.result.local_node_id) == (expected.fabric_index, peer)
        assert responder.result.keys == initiator.result.keys


def test_session_id_allocator_is_called_once_for_an_accepted_sigma1() -> None:
    calls: list[int] = []

    def allocate() -> int:
        calls.append(1)
        return 0xBEEF

    stranger = make_initiator(identity("C", 1, INITIATOR_NODE))
    responder = make_responder(local_session_id=allocate)
    assert responder.receive(*stranger.start()) == [NO_SHARED_ROOTS] and calls == []
    responder = make_responder(local_session_id=allocate)
    run_pair(make_initiator(), responder)
    assert calls == [1] and responder.local_session_id == 0xBEEF
    assert responder.result is not None and responder.result.local_session_id == 0xBEEF


def test_busy_when_no_session_id_is_free() -> None:
    responder = make_responder(local_session_id=lambda: None)
    initiator = make_initiator()
    (reply,) = responder.receive(*initiator.start())
    report = StatusReport.decode(reply[1])
    assert report.general_code == GeneralCode.BUSY and report.busy_wait_ms == BUSY_WAIT_MS
    assert responder.failed and isinstance(responder.error, CaseError)
    assert initiator.receive(*reply) is None
    assert initiator.failed and isinstance(initiator.error, StatusReportError)
    assert initiator.error.report.busy_wait_ms == BUSY_WAIT_MS


# --------------------------------------------------------------------------------------------- trust failures


def test_unknown_destination_is_no_shared_trust_roots() -> None:
    for initiator in (make_initiator(identity("C", 1, INITIATOR_NODE)), make_initiator(peer_node_id=0x56)):
        responder = make_responder()
        transcript = run_pair(initiator, responder)
        assert transcript[-1][1:] == NO_SHARED_ROOTS
        assert responder.failed and initiator.failed
        assert isinstance(initiator.error, StatusReportError)
        assert initiator.error.report.protocol_code == SecureChannelProtocolCode.NO_SHARED_TRUST_ROOTS


def forged(base: OperationalIdentity, source: OperationalIdentity, **changes: Any) -> OperationalIdentity:
    """``base`` (so destination ids still match) presenting ``source``'s credentials."""
    return dataclasses.replace(base, noc=source.noc, icac=source.icac, keypair=source.keypair, **changes)


def _initiator_identities() -> dict[str, tuple[OperationalIdentity, type[Exception]]]:
    a, b = identity("A", 3, INITIATOR_NODE), identity("B", 3, INITIATOR_NODE)
    return {
        "noc-from-another-root": (forged(a, identity("A2", 3, INITIATOR_NODE)), CertificateError),
        "icac-from-another-root": (forged(b, identity("B2", 3, INITIATOR_NODE)), CertificateError),
        "icac-of-another-fabric": (dataclasses.replace(b, icac=fabric("B2").icac), CertificateError),
        "wrong-signing-key": (dataclasses.replace(a, keypair=P256Keypair.generate()), CryptoError),
        "noc-fabric-id-differs": (
            forged(a, fabric("A").identity(3, INITIATOR_NODE, fabric_id=0x0BAD)),
            CertificateError,
        ),
    }


@pytest.mark.parametrize("case", list(_initiator_identities()))
def test_responder_rejects_bad_initiator_credentials(case: str) -> None:
    ident, error = _initiator_identities()[case]
    responder = make_responder(identity("A", 1, RESPONDER_NODE), identity("B", 2, RESPONDER_NODE))
    initiator = make_initiator(ident)
    transcript = run_pair(initiator, responder)
    assert opcodes(transcript) == FULL and transcript[-1][1:] == FAILURE
    assert responder.failed and isinstance(responder.error, error) and responder.result is None
    assert initiator.failed and isinstance(initiator.error, StatusReportError) and initiator.result is None


def test_expired_or_not_yet_valid_initiator_noc_with_a_clock() -> None:
    expired = fabric("A").identity(3, INITIATOR_NODE, not_before=1, not_after=1_000)
    future = fabric("A").identity(3, INITIATOR_NODE, not_before=2_000_000_000)
    now = 800_000_000  # 2025-05 in Matter epoch seconds
    for ident in (expired, future):
        responder = make_responder(now=now)
        run_pair(make_initiator(ident), responder)
        assert responder.failed and isinstance(responder.error, CertificateError)
        lenient = make_responder()  # no clock: validity periods are not checked
        run_pair(make_initiator(ident), lenient)
        assert lenient.done


def _responder_identities() -> dict[str, tuple[OperationalIdentity, type[Exception]]]:
    a, b = identity("A", 1, RESPONDER_NODE), identity("B", 2, RESPONDER_NODE)
    return {
        "node-id-differs": (forged(a, identity("A", 1, 0x99)), CaseError),
        "noc-from-another-root": (forged(a, identity("A2", 1, RESPONDER_NODE)), CertificateError),
        "icac-from-another-root": (forged(b, identity("B2", 2, RESPONDER_NODE)), CertificateError),
        "wrong-signing-key": (dataclasses.replace(a, keypair=P256Keypair.generate()), CryptoError),
        "expired": (fabric("A").identity(1, RESPONDER_NODE, not_before=1, not_after=1_000), CertificateError),
    }


@pytest.mark.parametrize("case", list(_responder_identities()))
def test_initiator_rejects_bad_responder_credentials(case: str) -> None:
    ident, error = _responder_identities()[case]
    responder = make_responder(ident)
    base = identity("B", 3, INITIATOR_NODE) if ident.fabric_id == fabric("B").fabric_id else None
    initiator = make_initiator(base, now=800_000_000)
    transcript = run_pair(initiator, responder)
    assert opcodes(transcript) == [*FULL[:2], ("I→R", Op.STATUS_REPORT)] and transcript[-1][1:] == FAILURE
    assert initiator.failed and isinstance(initiator.error, error)
    assert responder.failed and isinstance(responder.error, StatusReportError)


# --- tampering inside the encrypted blobs (we know the ephemeral keys, so we can re-seal)


def _tamper_sigma3(mutate: Callable[[cm.TbeData3], cm.TbeData3]) -> tuple[CaseResponder, list[Message]]:
    eph = P256Keypair.generate()
    initiator = make_initiator(ephemeral_keypair=lambda: eph)
    responder = make_responder()
    sigma1 = initiator.start()
    (sigma2,) = responder.receive(*sigma1)
    sigma3 = initiator.receive(*sigma2)
    assert sigma3 is not None
    s2 = cm.decode_message(cm.Sigma2, sigma2[1])
    s3k = sigma3_key(eph.ecdh(s2.responder_eph_pub_key), initiator.identity.ipk, sigma1[1], sigma2[1])
    tbe = cm.open_tbe(cm.TbeData3, s3k, TBE_DATA3_NONCE, cm.decode_message(cm.Sigma3, sigma3[1]).encrypted3)
    forged_sigma3 = cm.Sigma3(encrypted3=cm.seal_tbe(s3k, TBE_DATA3_NONCE, mutate(tbe))).encode()
    return responder, responder.receive(Op.CASE_SIGMA3, forged_sigma3)


def test_tampered_sigma3_signature_is_rejected() -> None:
    def flip(tbe: cm.TbeData3) -> cm.TbeData3:
        return dataclasses.replace(tbe, signature=bytes([tbe.signature[0] ^ 1]) + tbe.signature[1:])

    responder, replies = _tamper_sigma3(flip)
    assert replies == [FAILURE] and isinstance(responder.error, CryptoError)
    responder, replies = _tamper_sigma3(lambda tbe: tbe)  # the re-sealing itself is faithful
    assert replies == [SUCCESS] and responder.done


def test_sigma3_with_an_icac_it_did_not_sign_is_rejected() -> None:
    responder, replies = _tamper_sigma3(lambda tbe: dataclasses.replace(tbe, initiator_icac=fabric("B").icac))
    assert replies == [FAILURE] and isinstance(responder.error, CryptoError)


def test_tampered_sigma2_is_rejected_by_the_initiator() -> None:
    eph = P256Keypair.generate()
    responder = make_responder(ephemeral_keypair=lambda: eph)
    initiator = make_initiator()
    sigma1 = initiator.start()
    (sigma2,) = responder.receive(*sigma1)
    s2 = cm.decode_message(cm.Sigma2, sigma2[1])
    s1 = cm.decode_message(cm.Sigma1, sigma1[1])
    ipk = initiator.identity.ipk  # one IPK per fabric
    s2k = sigma2_key(eph.ecdh(s1.initiator_eph_pub_key), ipk, s2.responder_random, eph.public_key_bytes, sigma1[1])
    tbe = cm.open_tbe(cm.TbeData2, s2k, TBE_DATA2_NONCE, s2.encrypted2)
    bad = dataclasses.replace(tbe, signature=bytes(64))
    tampered = dataclasses.replace(s2, encrypted2=cm.seal_tbe(s2k, TBE_DATA2_NONCE, bad)).encode()
    assert initiator.receive(Op.CASE_SIGMA2, tampered) == FAILURE
    assert isinstance(initiator.error, CryptoError)
    # Changing anything in Sigma2 outside the TBE changes S2K, so the blob no longer opens.
    initiator = make_initiator()
    (sigma2,) = make_responder().receive(*initiator.start())
    s2 = cm.decode_message(cm.Sigma2, sigma2[1])
    other = dataclasses.replace(s2, responder_random=bytes(32)).encode()
    assert initiator.receive(Op.CASE_SIGMA2, other) == FAILURE and isinstance(initiator.error, CryptoError)


def test_invalid_ephemeral_keys_are_rejected() -> None:
    initiator = make_initiator()
    _, payload = initiator.start()
    sigma1 = cm.decode_message(cm.Sigma1, payload)
    bad = dataclasses.replace(sigma1, initiator_eph_pub_key=b"\x04" + bytes(64)).encode()
    responder = make_responder()
    assert responder.receive(Op.CASE_SIGMA1, bad) == [FAILURE] and isinstance(responder.error, CryptoError)
    (sigma2,) = make_responder().receive(Op.CASE_SIGMA1, payload)
    s2 = cm.decode_message(cm.Sigma2, sigma2[1])
    off_curve = dataclasses.replace(s2, responder_eph_pub_key=b"\x04" + bytes(64)).encode()
    assert initiator.receive(Op.CASE_SIGMA2, off_curve) == FAILURE and isinstance(initiator.error, CryptoError)


# --------------------------------------------------------------------------------------------- resumption


def _established() -> tuple[InMemoryResumptionStore, InMemoryResumptionStore, Any, Any]:
    responder_store, initiator_store = InMemoryResumptionStore(), InMemoryResumptionStore()
    responder, initiator = make_responder(store=responder_store), make_initiator()
    run_pair(initiator, responder)
    assert initiator.result is not None and responder.result is not None
    initiator_store.put(initiator.result.resumption_record)
    responder_store.put(responder.result.resumption_record)
    return responder_store, initiator_store, initiator.result, responder.result


def test_resumption_round_trip() -> None:
    responder_store, initiator_store, first_i, first_r = _established()
    assert first_i.keys == first_r.keys
    for _ in range(2):  # resume, then resume again from the record the first resumption left
        record = initiator_store.get_by_peer(3, RESPONDER_NODE)
        assert record is not None and responder_store.get_by_id(record.resumption_id) is not None
        initiator = make_initiator(resumption_record=record, local_session_id=0x5555)
        responder = make_responder(store=responder_store, local_session_id=0x6666)
        assert opcodes(run_pair(initiator, responder)) == RESUMED
        ri, rr = initiator.result, responder.result
        assert ri is not None and rr is not None and ri.resumed and rr.resumed
        assert ri.keys == rr.keys and ri.keys != first_i.keys
        enc_i, dec_i = ri.keys.for_role(True)
        assert rr.keys.for_role(False) == (dec_i, enc_i)
        assert (ri.peer_session_id, rr.peer_session_id) == (0x6666, 0x5555)
        assert (rr.peer_node_id, rr.peer_cats, rr.fabric_index) == (INITIATOR_NODE, CATS, 1)
        assert (ri.peer_node_id, ri.peer_cats, ri.fabric_index) == (RESPONDER_NODE, (), 3)
        new_id = ri.resumption_record.resumption_id
        assert new_id == rr.resumption_record.resumption_id != record.resumption_id
        assert ri.resumption_record.shared_secret == first_i.resumption_record.shared_secret
        initiator_store.put(ri.resumption_record)
        responder_store.put(rr.resumption_record)
        assert responder_store.get_by_id(record.resumption_id) is None and len(responder_store) == 1


@pytest.mark.parametrize("fault", ["wrong-secret", "unknown-id", "fabric-gone"])
def test_failed_resumption_falls_back_to_the_full_handshake(fault: str) -> None:
    responder_store, initiator_store, first_i, _ = _established()
    record = initiator_store.get_by_peer(3, RESPONDER_NODE)
    assert record is not None
    fabrics = [identity("A", 1, RESPONDER_NODE)]
    if fault == "wrong-secret":
        record = dataclasses.replace(record, shared_secret=bytes(32))
    elif fault == "unknown-id":
        record = dataclasses.replace(record, resumption_id=bytes(16))
    else:
        fabrics = [dataclasses.replace(fabrics[0], fabric_index=9)]
    initiator = make_initiator(resumption_record=record)
    responder = make_responder(*fabrics, store=responder_store)
    assert opcodes(run_pair(initiator, responder)) == FULL
    assert initiator.result is not None and responder.result is not None
    assert not initiator.result.resumed and initiator.result.keys == responder.result.keys
    assert initiator.result.keys != first_i.keys


def test_sigma1_with_half_a_resumption_request_is_invalid() -> None:
    _, payload = make_initiator().start()
    sigma1 = cm.decode_message(cm.Sigma1, payload)
    for half in ({"resumption_id": bytes(16)}, {"initiator_resume_mic": bytes(16)}):
        responder = make_responder()
        assert responder.receive(Op.CASE_SIGMA1, dataclasses.replace(sigma1, **half).encode()) == [FAILURE]
        assert "resumptionID" in str(responder.error)


def test_initiator_checks_the_sigma2_resume_mic() -> None:
    responder_store, initiator_store, _, _ = _established()
    record = initiator_store.get_by_peer(3, RESPONDER_NODE)
    initiator = make_initiator(resumption_record=record)
    responder = make_responder(store=responder_store)
    (resume,) = responder.receive(*initiator.start())
    assert resume[0] is Op.CASE_SIGMA2_RESUME
    msg = cm.decode_message(cm.Sigma2Resume, resume[1])
    bad = dataclasses.replace(msg, sigma2_resume_mic=bytes(16)).encode()
    assert initiator.receive(Op.CASE_SIGMA2_RESUME, bad) == FAILURE and isinstance(initiator.error, CryptoError)
    assert responder.receive(*FAILURE) == [] and responder.failed and responder.result is None
    # An initiator that offered no resumption refuses a Sigma2_Resume outright.
    fresh = make_initiator()
    fresh.start()
    assert fresh.receive(*resume) == FAILURE and isinstance(fresh.error, CaseError)


def test_resumption_record_must_belong_to_the_peer() -> None:
    record = ResumptionRecord(bytes(16), bytes(32), fabric_index=3, peer_node_id=0x77)
    with pytest.raises(LocalProtocolError):
        make_initiator(resumption_record=record)
    with pytest.raises(LocalProtocolError):
        ResumptionRecord(bytes(15), bytes(32), fabric_index=3, peer_node_id=0x77)


def test_in_memory_store() -> None:
    store = InMemoryResumptionStore(max_entries=2)
    r1 = ResumptionRecord(b"\x01" * 16, bytes(32), fabric_index=1, peer_node_id=10)
    r2 = ResumptionRecord(b"\x02" * 16, bytes(32), fabric_index=1, peer_node_id=11, peer_cats=(0x10001,))
    r3 = ResumptionRecord(b"\x03" * 16, bytes(32), fabric_index=2, peer_node_id=10)
    for record in (r1, r2):
        store.put(record)
    assert store.get_by_peer(1, 11) == r2 and store.get_by_id(b"\x01" * 16) == r1
    r1b = dataclasses.replace(r1, resumption_id=b"\x04" * 16)
    store.put(r1b)  # replaces the peer's previous record
    assert store.get_by_id(r1.resumption_id) is None and store.get_by_peer(1, 10) == r1b and len(store) == 2
    store.put(r3)  # over capacity: the oldest (r2) goes
    assert store.get_by_peer(1, 11) is None and len(store) == 2
    clash = dataclasses.replace(r3, fabric_index=1, peer_node_id=12)
    store.put(clash)  # same id as r3: r3 is dropped
    assert store.get_by_peer(2, 10) is None and store.get_by_id(r3.resumption_id) == clash
    store.remove_fabric(1)
    assert len(store) == 0
    store.remove(b"\x09" * 16)  # unknown: no-op


# --------------------------------------------------------------------------------------------- identity


def test_identity_from_certificates() -> None:
    f = fabric("B")
    ident = f.identity(5, INITIATOR_NODE, cats=CATS)
    assert (ident.fabric_index, ident.fabric_id, ident.node_id) == (5, f.fabric_id, INITIATOR_NODE)
    assert ident.root_public_key == f.root.certificate.public_key_bytes and ident.icac == f.icac
    assert ident.ipk == operational_ipk(f.epoch_key, compressed_fabric_id(ident.root_public_key, f.fabric_id))
    with pytest.raises(LocalProtocolError):
        OperationalIdentity.from_certificates(
            5, rcac=f.root.issued.tlv, noc=ident.noc, icac=f.icac, keypair=P256Keypair.generate(), epoch_key=bytes(16)
        )
    with pytest.raises(CertificateError):
        OperationalIdentity.from_certificates(
            5, rcac=fabric("A").root.issued.tlv, noc=ident.noc, icac=f.icac, keypair=ident.keypair, epoch_key=bytes(16)
        )
    for bad in ({"fabric_index": 0}, {"ipk": bytes(15)}, {"root_public_key": bytes(64)}, {"other_ipks": (b"",)}):
        with pytest.raises(LocalProtocolError):
            dataclasses.replace(ident, **bad)


@pytest.mark.parametrize(
    ("factory", "kwargs"),
    [
        (make_initiator, {"peer_node_id": 0}),
        (make_initiator, {"peer_node_id": 0xFFFF_FFFF_0000_0001}),
        (make_initiator, {"local_session_id": 0}),
        (make_responder, {"local_session_id": 0x1_0000}),
    ],
)
def test_bad_local_configuration_is_a_local_error(factory: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    with pytest.raises(LocalProtocolError):
        factory(**kwargs)


def test_api_misuse_is_a_local_error() -> None:
    initiator = make_initiator()
    with pytest.raises(LocalProtocolError):
        initiator.receive(Op.CASE_SIGMA2, b"")
    initiator.start()
    with pytest.raises(LocalProtocolError):
        initiator.start()
    with pytest.raises(LocalProtocolError):
        make_responder(local_session_id=lambda: 0).receive(*make_initiator().start())
    with pytest.raises(LocalProtocolError):
        make_responder(random_bytes=lambda n: bytes(n - 1)).receive(*make_initiator().start())


# --------------------------------------------------------------------------------------------- protocol flow


def test_peer_status_report_ends_the_handshake_without_reply() -> None:
    responder = make_responder()
    initiator = make_initiator()
    (sigma2,) = responder.receive(*initiator.start())
    assert responder.state is CaseState.AWAIT_SIGMA3
    assert responder.receive(*FAILURE) == [] and isinstance(responder.error, StatusReportError)
    assert responder.receive(*SUCCESS) == []  # ignored after the end
    sigma3 = initiator.receive(*sigma2)
    assert sigma3 is not None and initiator.state is CaseState.AWAIT_STATUS
    garbled = StatusReport(0, 0x0000_0001, 0).encode()  # success, but not the secure channel's
    assert initiator.receive(Op.STATUS_REPORT, garbled) is None
    assert initiator.failed and initiator.result is None
    truncated = make_responder()
    assert truncated.receive(Op.STATUS_REPORT, b"\x01") == [] and isinstance(truncated.error, DecodeError)


def test_success_before_the_end_is_not_success() -> None:
    responder = make_responder()
    responder.receive(*make_initiator().start())
    assert responder.receive(*SUCCESS) == [] and responder.failed and responder.result is None


OUT_OF_ORDER = [
    (CaseState.AWAIT_SIGMA1, Op.CASE_SIGMA3),
    (CaseState.AWAIT_SIGMA1, Op.CASE_SIGMA2),
    (CaseState.AWAIT_SIGMA1, Op.PBKDF_PARAM_REQUEST),
    (CaseState.AWAIT_SIGMA3, Op.CASE_SIGMA1),
    (CaseState.AWAIT_SIGMA3, Op.CASE_SIGMA2_RESUME),
    (CaseState.AWAIT_SIGMA3, 0x99),
]


@pytest.mark.parametrize(("state", "opcode"), OUT_OF_ORDER)
def test_responder_rejects_out_of_order_messages(state: CaseState, opcode: int) -> None:
    responder, initiator = make_responder(), make_initiator()
    message = initiator.start()
    if state is CaseState.AWAIT_SIGMA3:
        (sigma2,) = responder.receive(*message)
        message = initiator.receive(*sigma2) or message
    assert responder.state is state
    payload = message[1] if opcode == message[0] else b"\x15\x18"
    assert responder.receive(opcode, payload) == [FAILURE]
    assert responder.failed and "unexpected opcode" in str(responder.error)
    assert responder.receive(*message) == []  # ignored after the end


def test_initiator_rejects_out_of_order_messages() -> None:
    initiator = make_initiator()
    sigma1 = initiator.start()
    assert initiator.receive(Op.CASE_SIGMA3, b"\x15\x18") == FAILURE
    assert initiator.failed and initiator.receive(*sigma1) is None
    initiator, responder = make_initiator(), make_responder()
    (sigma2,) = responder.receive(*initiator.start())
    initiator.receive(*sigma2)
    assert initiator.receive(*sigma2) == FAILURE  # a second Sigma2 while waiting for the status


def test_messages_after_success_are_ignored() -> None:
    initiator, responder = make_initiator(), make_responder()
    transcript = run_pair(initiator, responder)
    for _, opcode, payload in transcript:
        assert responder.receive(opcode, payload) == []
        assert initiator.receive(opcode, payload) is None
    assert initiator.done and responder.done


@pytest.mark.parametrize("step", [0, 1, 2])
def test_truncated_messages_fail_at_every_step(step: int) -> None:
    transcript = run_pair(make_initiator(), make_responder())
    _, opcode, payload = transcript[step]
    for cut in range(0, len(payload), 7):
        initiator, responder = make_initiator(), make_responder()
        message: Message | None = initiator.start()
        for _ in range(step):  # replay up to the message under test, with fresh randomness
            assert message is not None
            if message[0] == Op.CASE_SIGMA1:
                (message,) = responder.receive(*message)
            else:
                message = initiator.receive(*message)
        assert message is not None and message[0] == opcode
        target = responder if step % 2 == 0 else initiator
        reply = target.receive(opcode, message[1][:cut])
        assert reply in ([FAILURE], FAILURE), cut
        assert isinstance(target.error, DecodeError)


def test_trailing_bytes_and_tagged_payloads_are_rejected() -> None:
    _, payload = make_initiator().start()
    responder = make_responder()
    assert responder.receive(Op.CASE_SIGMA1, payload + b"\x00") == [FAILURE]
    with pytest.raises(DecodeError):
        cm.decode_message(cm.Sigma1, cm.decode_message(cm.Sigma1, payload).encode(tag=1))


# --------------------------------------------------------------------------------------------- messages


@pytest.mark.parametrize(
    "cls", [cm.Sigma1, cm.Sigma2, cm.Sigma3, cm.Sigma2Resume, cm.TbeData2, cm.TbeData3, cm.TbsData]
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_messages_round_trip(cls: type[Any], data: st.DataObject) -> None:
    value = data.draw(for_struct(cls))
    assert cm.decode_message(cls, value.encode()) == value


# --------------------------------------------------------------------------------------------- fuzzing

_tlv_scalars = st.one_of(
    st.integers(0, 2**64 - 1),
    st.integers(-(2**63), 2**63 - 1).map(tlv.SInt),
    st.booleans(),
    st.none(),
    st.binary(max_size=70),
    st.sampled_from([bytes(16), bytes(32), bytes(64), b"\x04" + bytes(64)]),
)
_tlv_values = st.recursive(
    _tlv_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.integers(0, 8), inner, max_size=5)),
    max_leaves=12,
)
_payloads = st.one_of(
    st.binary(max_size=160),
    st.dictionaries(st.integers(0, 8), _tlv_values, max_size=8).map(tlv.encode),
)
_opcodes = st.sampled_from([0x30, 0x31, 0x32, 0x33, 0x40, 0x20, 0x10])


def _responder_in(state: CaseState) -> CaseResponder:
    if state is CaseState.AWAIT_RESUME_STATUS:
        responder_store, initiator_store, _, _ = _established()
        initiator = make_initiator(resumption_record=initiator_store.get_by_peer(3, RESPONDER_NODE))
        responder = make_responder(store=responder_store)
    else:
        initiator, responder = make_initiator(), make_responder()
    if state is not CaseState.AWAIT_SIGMA1:
        responder.receive(*initiator.start())
    assert responder.state is state
    return responder


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from([CaseState.AWAIT_SIGMA1, CaseState.AWAIT_SIGMA3, CaseState.AWAIT_RESUME_STATUS]),
    _opcodes,
    _payloads,
)
def test_fuzz_responder_never_raises(state: CaseState, opcode: int, payload: bytes) -> None:
    responder = _responder_in(state)
    replies = responder.receive(opcode, payload)
    assert len(replies) <= 1
    if responder.failed:
        assert all(op == Op.STATUS_REPORT and not StatusReport.decode(p).is_success for op, p in replies)
    else:
        assert responder.done or replies


def _initiator_in(state: CaseState) -> CaseInitiator:
    initiator, responder = make_initiator(), make_responder()
    (sigma2,) = responder.receive(*initiator.start())
    if state is CaseState.AWAIT_STATUS:
        initiator.receive(*sigma2)
    assert initiator.state is state
    return initiator


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([CaseState.AWAIT_SIGMA2, CaseState.AWAIT_STATUS]), _opcodes, _payloads)
def test_fuzz_initiator_never_raises(state: CaseState, opcode: int, payload: bytes) -> None:
    initiator = _initiator_in(state)
    reply = initiator.receive(opcode, payload)
    if initiator.failed:
        assert reply in (None, FAILURE)
    else:
        assert initiator.done or reply is not None


def _mutated(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes flipped, cut short, or extended: mostly-valid certificates for the decoder."""
    flips = st.lists(
        st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)), min_size=1, max_size=3, unique_by=lambda f: f[0]
    )

    def apply(changes: list[tuple[int, int]]) -> bytes:
        out = bytearray(data)
        for index, xor in changes:
            out[index] ^= xor
        return bytes(out)

    return st.one_of(flips.map(apply), st.integers(0, len(data) - 1).map(lambda n: data[:n]), st.just(data + b"\x18"))


_NOC = identity("A", 3, INITIATOR_NODE, CATS).noc
_ICAC = fabric("B").icac or b""
_certs = st.one_of(st.just(_NOC), _mutated(_NOC), _mutated(_ICAC), st.binary(max_size=64))
_tbe_plaintexts = st.one_of(
    st.fixed_dictionaries(
        {1: _certs, 3: st.one_of(st.binary(min_size=64, max_size=64), st.binary(max_size=70))},
        optional={2: _certs, 4: st.binary(min_size=16, max_size=16)},
    ).map(tlv.encode),
    _payloads,
)


_signed_credentials = st.tuples(
    st.one_of(st.just(_NOC), _mutated(_NOC)), st.one_of(st.none(), st.just(_ICAC), _mutated(_ICAC))
)


@settings(max_examples=80, deadline=None)
@given(st.one_of(_tbe_plaintexts, _signed_credentials))
def test_fuzz_decrypted_sigma3_content_never_raises(content: bytes | tuple[bytes, bytes | None]) -> None:
    # A peer that knows S3K (it ran the handshake) can put anything inside TBEData3. Signed credentials are
    # signed with the real NOC key, so a mutated certificate whose key survived gets as far as chain validation.
    eph = P256Keypair.generate()
    initiator, responder = make_initiator(ephemeral_keypair=lambda: eph), make_responder()
    sigma1 = initiator.start()
    (sigma2,) = responder.receive(*sigma1)
    s2 = cm.decode_message(cm.Sigma2, sigma2[1])
    s3k = sigma3_key(eph.ecdh(s2.responder_eph_pub_key), initiator.identity.ipk, sigma1[1], sigma2[1])
    genuine = isinstance(content, tuple) and content[0] == _NOC and not content[1]
    if isinstance(content, tuple):
        noc, icac = content
        tbs = tlv.encode({1: noc, 3: eph.public_key_bytes, 4: s2.responder_eph_pub_key} | ({2: icac} if icac else {}))
        signature = initiator.identity.keypair.sign(tbs)
        content = tlv.encode({1: noc, 3: signature} | ({2: icac} if icac else {}))
    sealed = tlv.encode({1: aes_ccm_encrypt(s3k, TBE_DATA3_NONCE, content)})  # raw: an empty blob is allowed here
    replies = responder.receive(Op.CASE_SIGMA3, sealed)
    if genuine:  # only the untouched NOC, with no ICAC, can pass
        assert replies == [SUCCESS] and responder.done
    else:
        assert replies == [FAILURE] and isinstance(responder.error, RemoteProtocolError | CryptoError)


@settings(max_examples=80, deadline=None)
@given(_tbe_plaintexts)
def test_fuzz_decrypted_sigma2_content_never_raises(plaintext: bytes) -> None:
    eph = P256Keypair.generate()
    initiator, responder = make_initiator(), make_responder(ephemeral_keypair=lambda: eph)
    sigma1 = initiator.start()
    (sigma2,) = responder.receive(*sigma1)
    s1, s2 = cm.decode_message(cm.Sigma1, sigma1[1]), cm.decode_message(cm.Sigma2, sigma2[1])
    shared = eph.ecdh(s1.initiator_eph_pub_key)
    s2k = sigma2_key(shared, initiator.identity.ipk, s2.responder_random, eph.public_key_bytes, sigma1[1])
    forged_sigma2 = tlv.encode({**s2.to_tlv(), 4: aes_ccm_encrypt(s2k, TBE_DATA2_NONCE, plaintext)})
    assert initiator.receive(Op.CASE_SIGMA2, forged_sigma2) == FAILURE
    assert isinstance(initiator.error, RemoteProtocolError | CryptoError)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2), st.data())
def test_fuzz_mutated_valid_messages_never_raise(step: int, data: st.DataObject) -> None:
    # Bit flips, cuts and extensions of the real message at each step: mostly well-formed TLV whose values
    # are wrong, which reaches further than random bytes do. Some changes are legal at that step (another
    # session id in Sigma1 or Sigma2): the handshake then moves on, and only the transcript hash notices.
    initiator, responder = make_initiator(), make_responder()
    message: Message | None = initiator.start()
    for _ in range(step):
        assert message is not None
        message = responder.receive(*message)[0] if message[0] == Op.CASE_SIGMA1 else initiator.receive(*message)
    assert message is not None
    payload = data.draw(_mutated(message[1]))
    if step % 2 == 0:
        (reply,) = responder.receive(message[0], payload)
        if responder.failed:
            assert reply[0] == Op.STATUS_REPORT and not StatusReport.decode(reply[1]).is_success
        else:
            assert step == 0 and reply[0] == Op.CASE_SIGMA2
    else:
        reply = initiator.receive(message[0], payload)
        assert reply == FAILURE if initiator.failed else reply is not None and reply[0] == Op.CASE_SIGMA3
