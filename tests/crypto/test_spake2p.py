"""SPAKE2+ (draft-01) and Matter PASE against published vectors, plus prover/verifier properties.

Vectors are the SPAKE2+ draft-01 vectors and published Matter PASE vectors (connectedhomeip and matter.js test
sources); each constant names its upstream source (repository, path, commit).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from Crypto.PublicKey.ECC import EccPoint
from hypothesis import given, settings
from hypothesis import strategies as st

from jfds_device.crypto.session_keys import pase_session_keys
from jfds_device.crypto.spake2p import (
    CONTEXT_PREFIX,
    M_BYTES,
    N_BYTES,
    P256_ORDER,
    PaseVerifier,
    Spake2pProver,
    Spake2pVerifier,
    compute_w0_w1,
    key_schedule,
    make_verifier,
    pase_context,
)
from jfds_device.errors import CryptoError, LocalProtocolError

h = bytes.fromhex

# --- M and N, connectedhomeip src/crypto/CHIPCryptoPAL.h (spake2p_M_p256 / spake2p_N_p256); the compressed
# forms as draft-bar-cfrg-spake2plus-01 prints them for P-256.
M_COMPRESSED = h("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f")
N_COMPRESSED = h("03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49")


def test_m_and_n_match_draft_compressed_forms() -> None:
    for full, compressed in ((M_BYTES, M_COMPRESSED), (N_BYTES, N_COMPRESSED)):
        assert full[1:33] == compressed[1:]
        assert compressed[0] == 2 + (full[-1] & 1)


# --- draft-01 vectors, connectedhomeip src/crypto/tests/SPAKE2P_RFC_test_vectors.h @ 53e2c41b57b5
# (rfc_tvs[0..3]); vector 4 also in matter.js packages/general/test/crypto/Spake2pTest.ts @ b851ce019504.
DRAFT01_CONTEXT = b"SPAKE2+-P256-SHA256-HKDF draft-01"
DRAFT01_W0 = 0xE6887CF9BDFB7579C69BF47928A84514B5E355AC034863F7FFAF4390E67D798C
DRAFT01_W1 = 0x24B5AE4ABDA868EC9336FFC3B78EE31C5755BEF1759227EF5372CA139B94E512
DRAFT01_L = h(
    "0495645cfb74df6e58f9748bb83a86620bab7c82e107f57d6870da8cbcb2ff9f7063a14b6402c62f99afcb9706a4d1a143273259"
    "fe76f1c605a3639745a92154b9"
)

# Columns: A, B, x, X, y, Y, Z, V, Ka, Ke, KcA, KcB, MAC_KcA (cA), MAC_KcB (cB).
DRAFT01_VECTORS = {
    "client-server": (
        b"client", b"server",
        "8b0f3f383905cf3a3bb955ef8fb62e24849dd349a05ca79aafb18041d30cbdb6",
        "04af09987a593d3bac8694b123839422c3cc87e37d6b41c1d630f000dd64980e537ae704bcede04ea3bec9b7475b32fa2ca3b684"
        "be14d11645e38ea6609eb39e7e",
        "2e0895b0e763d6d5a9564433e64ac3cac74ff897f6c3445247ba1bab40082a91",
        "04417592620aebf9fd203616bbb9f121b730c258b286f890c5f19fea833a9c900cbe9057bc549a3e19975be9927f0e7614f08d1f"
        "0a108eede5fd7eb5624584a4f4",
        "0471a35282d2026f36bf3ceb38fcf87e3112a4452f46e9f7b47fd769cfb570145b62589c76b7aa1eb6080a832e5332c368984269"
        "12e29c40ef9e9c742eee82bf30",
        "046718981bf15bc4db538fc1f1c1d058cb0eececf1dbe1b1ea08a4e25275d382e82b348c8131d8ed669d169c2e03a858db7cf6ca"
        "2853a4071251a39fbe8cfc39bc",
        "f9cab9adcc0ed8e5a4db11a8505914b2", "801db297654816eb4f02868129b9dc89",
        "0d248d7d19234f1486b2efba5179c52d", "556291df26d705a2caedd6474dd0079b",
        "d4376f2da9c72226dd151b77c2919071155fc22a2068d90b5faa6c78c11e77dd",
        "0660a680663e8c5695956fb22dff298b1d07a526cf3cc591adfecd1f6ef6e02e",
    ),
    "client-empty": (
        b"client", b"",
        "ec82d9258337f61239c9cd68e8e532a3a6b83d12d2b1ca5d543f44def17dfb8d",
        "04230779960824076d3666a7418e4d433e2fa15b06176eabdd572f43a32ecc79a192b243d2624310a7356273b86e5fd9bd627d3a"
        "de762baeff1a320d4ad7a4e47f",
        "eac3f7de4b198d5fe25c443c0cd4963807add767815dd02a6f0133b4bc2c9eb0",
        "044558642e71b616b248c9583bd6d7aa1b3952c6df6a9f7492a06035ca5d92522d84443de7aa20a59380fa4de6b7438d925dbfb7"
        "f1cfe60d79acf961ee33988c7d",
        "04b4e8770f19f58ddf83f9220c3a9305792665e0c60989e6ee9d7fa449c775d6395f6f25f307e3903ac045a013fbb5a676e872a6"
        "abfcf4d7bb5aac69efd6140eed",
        "04141db83bc7d96f41b636622e7a5c552ad83211ff55319ac25ed0a09f0818bd942e8150319bfbfa686183806dc61911183f6a0f"
        "5956156023d96e0f93d275bf50",
        "e2cbee3ae19a4dbe9f146be6bee9bfa1", "6989d8f9177ef7df67da437987f07255",
        "2f9e0bb669d2c22645bce34da04ac16a", "eb7a35168759dd8e9ce44e4dc51277ce",
        "e1b9258807ba4750dae1d7f3c3c294f13dc4fa60cde346d5de7d200e2f8fd3fc",
        "b9c39dfa49c47757de778d9bedeaca2448b905be19a43b94ee24b770208135e3",
    ),
    "empty-server": (
        b"", b"server",
        "ba0f0f5b78ef23fd07868e46aeca63b51fda519a3420501acbe23d53c2918748",
        "04c14d28f4370fea20745106cea58bcfb60f2949fa4e131b9aff5ea13fd5aa79d507ae1d229e447e000f15eb78a9a32c2b88652e"
        "3411642043c1b2b7992cf2d4de",
        "39397fbe6db47e9fbd1a263d79f5d0aaa44df26ce755f78e092644b434533a42",
        "04d1bee3120fd87e86fe189cb952dc688823080e62524dd2c08dffe3d22a0a8986aa64c9fe0191033cafbc9bcaefc8e2ba8ba860"
        "cd127af9efdd7f1c3a41920fe8",
        "04aac71cf4c8df8181b867c9ecbee9d0963caf51f1534a823429c26fe5248313ffc5c5e44ea8162161ab6b3d73b87704a45889bf"
        "6343d96fa96cd1641efa71607c",
        "04c7c9505365f7ce57293c92a37f1bbdc68e0322901e61edef59fee7876b17b063e0fa4a126eae0a671b37f1464cf1ccad591c33"
        "ae944e3b1f318d76e36fea9966",
        "ec8d19b807ffb1d1eea81a93ba35cdfe", "2ea40e4badfa5452b5744dc5983e99ba",
        "66de534d9bf1e44e96a53a4b48d6b353", "4945c38bb476cb0f347f3222be9b64a2",
        "e564c93b3015efb946dc16d642bbe7d1c8da5be164ed9fc3bae4e0ff86e1bd3c",
        "072a94d9a54edc201d8891534c2317cadf3ea3792827f479e873f93e90f21552",
    ),
    "empty-empty": (
        b"", b"",
        "5b478619804f4938d361fbba3a20648725222f0a54cc4c876139efe7d9a21786",
        "04a6db23d001723fb01fcfc9d08746c3c2a0a3feff8635d29cad2853e7358623425cf39712e928054561ba71e2dc11f300f1760e"
        "71eb177021a8f85e78689071cd",
        "766770dad8c8eecba936823c0aed044b8c3c4f7655e8beec44a15dcbcaf78e5e",
        "04390d29bf185c3abf99f150ae7c13388c82b6be0c07b1b8d90d26853e84374bbdc82becdb978ca3792f472424106a2578012752"
        "c11938fcf60a41df75ff7cf947",
        "040a150d9a62f514c9a1fedd782a0240a342721046cefb1111c3adb3be893ce9fcd2ffa137922fcf8a588d0f76ba9c55c85da2af"
        "3f1c789ca17976810387fb1d7e",
        "04f8e247cc263a1846272f5a3b61b68aa60a5a2665d10cd22c89cd6bad05dc0e5e650f21ff017186cc92651a4cd7e66ce88f5292"
        "99f340ea80fb90a9bad094e1a6",
        "5929a3ce9822c81401bf0f764f69af08", "ea3276d68334576097e04b19ee5a3a8b",
        "7f84b939d600117256b0c8a6d40cf181", "f7d7547ced93f681e8df4c258c4516fd",
        "71d9412779b6c45a2c615c9df3f1fd93dc0aaf63104da8ece4aa1b5a3a415fea",
        "095dc0400355cc233fde7437811815b3c1524aae80fd4e6810cf531cf11d20e3",
    ),
}  # fmt: skip


def test_draft01_l_from_w1() -> None:
    assert PaseVerifier.from_w0_w1(DRAFT01_W0, DRAFT01_W1) == (DRAFT01_W0, DRAFT01_L)


@pytest.mark.parametrize("vector", DRAFT01_VECTORS.values(), ids=DRAFT01_VECTORS.keys())
def test_draft01_key_schedule(vector: tuple[Any, ...]) -> None:
    a, b, _x, x_share, _y, y_share, z, v, ka, ke, kca, kcb, _ca, _cb = vector
    keys = key_schedule(DRAFT01_CONTEXT, a, b, h(x_share), h(y_share), h(z), h(v), DRAFT01_W0)
    assert (keys.ka, keys.ke, keys.kca, keys.kcb) == (h(ka), h(ke), h(kca), h(kcb))


@pytest.mark.parametrize("vector", DRAFT01_VECTORS.values(), ids=DRAFT01_VECTORS.keys())
def test_draft01_prover_and_verifier(vector: tuple[Any, ...]) -> None:
    a, b, x, x_share, y, y_share, _z, _v, _ka, ke, _kca, _kcb, ca, cb = vector
    ids = {"prover_id": a, "verifier_id": b}
    prover = Spake2pProver(DRAFT01_CONTEXT, DRAFT01_W0, DRAFT01_W1, x=int(x, 16), **ids)
    verifier = Spake2pVerifier(DRAFT01_CONTEXT, DRAFT01_W0, DRAFT01_L, y=int(y, 16), **ids)
    assert prover.share == h(x_share)
    assert verifier.respond(prover.share) == (h(y_share), h(cb))
    assert prover.finish(h(y_share), h(cb)) == (h(ca), h(ke))
    assert verifier.finish(h(ca)) == h(ke)


# --- "Default test verifier": connectedhomeip scripts/tools/spake2p/README.md @ aee7f7842dbd
DEFAULT_PASSCODE = 20202021
DEFAULT_SALT = b"SPAKE2P Key Salt"
DEFAULT_ITERATIONS = 1000
DEFAULT_VERIFIER_B64 = (
    "uWFwqugDNGiEck/po7KHwwMwwqZgN10XuyBajPGuyzUEV/iree4lOrao5GuwnlQ65CJzbeUB49s31EH+NEkg0JVI5MGCQGMMT/SRPF"
    "NRODm3wH/MBiehuFc6FJ/NH6Rmzw=="
)
DEFAULT_W0 = 0xB96170AAE803346884724FE9A3B287C30330C2A660375D17BB205A8CF1AECB35  # first 32 bytes of the blob
DEFAULT_L = h(
    "0457f8ab79ee253ab6a8e46bb09e543ae422736de501e3db37d441fe344920d09548e4c18240630c4ff4913c53513839b7c07fcc"
    "0627a1b8573a149fcd1fa466cf"
)
DEFAULT_W1 = 0x823D264225E36F4923B43AD64F8C862A30F4A129BBF9EE8074A32D6D67586A90  # derived; not in the verifier


def test_default_verifier() -> None:
    verifier = make_verifier(DEFAULT_PASSCODE, DEFAULT_SALT, DEFAULT_ITERATIONS)
    assert base64.b64encode(verifier.to_bytes()).decode() == DEFAULT_VERIFIER_B64
    assert verifier == (DEFAULT_W0, DEFAULT_L)
    assert compute_w0_w1(DEFAULT_PASSCODE, DEFAULT_SALT, DEFAULT_ITERATIONS)[1] == DEFAULT_W1
    assert PaseVerifier.from_bytes(base64.b64decode(DEFAULT_VERIFIER_B64)) == verifier


# --- "SPAKE2+ Context hash": matter.js packages/general/test/crypto/Spake2pTest.ts @ b851ce019504
CTX_PBKDF_REQUEST = h(
    "15300120b2901e92036f7bca007a3a1bf24bd71f18772105e83479c92b7a8af35e8182742502498d240300280435052501881325022c011818"
)
CTX_PBKDF_RESPONSE = h(
    "15300120b2901e92036f7bca007a3a1bf24bd71f18772105e83479c92b7a8af35e81827430022008070f685f2077779b824adf91"
    "e4bab6253b9d1a3c0f6615c6d447780f0feef325039c8d35042501e803300220163f8501fbbc0e6a8f69a9b999d038ca388ecffc"
    "cc18fe259c4253f26e494dda1835052501881325022c011818"
)
CTX_PREFIX = h("434849502050414b4520563120436f6d6d697373696f6e696e67")  # "CHIP PAKE V1 Commissioning"
CTX_EXPECTED = h("c49718b0275b6f81fd6a081f6c34c5833382b75b3bd997895d13a51c71a02855")


def test_pase_context_hash() -> None:
    assert CONTEXT_PREFIX == CTX_PREFIX
    assert pase_context(CTX_PBKDF_REQUEST, CTX_PBKDF_RESPONSE) == CTX_EXPECTED


# --- "PASE exchange A/B": matter.js packages/protocol/test/session/secure/PasePairingTest.ts
# @ b851ce019504 (device side). w1, cA, Ke and SessionKeys are derived from the published inputs, not upstream.
# Columns: salt, w0, L, request, response, context (derived), X, y, Y, cB, w1, cA, Ke, SessionKeys.
PASE_EXCHANGES = {
    "A-leading-zero-w0": (
        "03959ebc20b8fcbda262d97f9a7a9e76e32d7a1b9c5166b6a3721e88acad8808",
        "00177867f1e564cc4d9f347edfc28263ee5a50f1e21177cfb9a7dc2504437ccb",
        "04cf26d253cae2dd44c6954d443c7badc1e8811b8484eaae2d7bf43ec2f7e3173527877ea4a554513063036f55d2871e87e294df"
        "dc18cd39edd6519fb4dfcde976",
        "1530012094eab5c37d101df5ef01b2c8ecada03a7c3b0cf5e26a08feda72617f9cd391a6240247240300280418",
        "1530012094eab5c37d101df5ef01b2c8ecada03a7c3b0cf5e26a08feda72617f9cd391a630022022820a42684102fd4a92c0bad6"
        "6ad1f21f3c5366f5a6d84203035e2c7caf3bae250357de35042501e80330022003959ebc20b8fcbda262d97f9a7a9e76e32d7a1b"
        "9c5166b6a3721e88acad88081818",
        "64e59c36646d7b6cf4103b78228313325c275c5aa9b5f21da9a482661f7b5e88",
        "04cce1e192a645d54a3ac9a3a3f0b334f37c03400b826b14d873124dfb96a35815f80202f05c72d055b6da24942d0a6cac18caf3"
        "10100ecef23248ac8fd2ced196",
        "de583b5685529de9544b92c9c8cba696751b14d65092d13458879b3bc9814b53",
        "0404f972c7232cde8911de7d93e37ad752b90ad095888ac83da5f3a1d5a7eb063288ed6d358e9092a8606dac6cd6b8fdfc0b3960"
        "df85434ed60c6b6091d23da7bb",
        "d6a13c26b6c5b7c514033a0370b1830dff5116fd53de43eb2374737e9b64e4bb",
        "0e60dc5cc1bb4b66b4547601a95bc6a1758a79f79f24f68823773fb1bb9791ca",
        "05030c97e72b884cd0ebf0f2e6f91bfd377a8f37601bb7f633d468e289437cf7",
        "09609b30d7aa5d1a65550aed6ad4766b",
        "b03f700bae9a3fd1a72a55e10d73b0a6abbf4a36abc099a5a7e2dac8b3d138fc750257bcfca549ba7025f11634026daa",
    ),
    "B": (
        "2bb41e9d75f30c2e6b2f059410c56965717cc2bf14ed6c73a169435326a89652",
        "501f85a83d1da77983ff6f0c1f742d6d98f6d0ab0ba740a38032200099c8981f",
        "0463e7f225296bcd9b100e605d636a3d2c84524665cbd9b8b75e737d04bca1241486b37bdba74284de76f2db9df271d2c5bda21b"
        "8e26bc0943dcbf0542665c3aa8",
        "15300120913cc0622eca85f8d4c132c89663c5d7afa780667be930e5c11bec865479c6172502e68b240300280418",
        "15300120913cc0622eca85f8d4c132c89663c5d7afa780667be930e5c11bec865479c6173002205682c0732b37c045ebeb416904"
        "c187a58b5341088e0172123becfb855f94a72c2503844235042501e8033002202bb41e9d75f30c2e6b2f059410c56965717cc2bf"
        "14ed6c73a169435326a896521818",
        "15d8fb91f68f9b456a5ee4df0b0eec392e12ea8438a92c65d9b3c161a2b163b7",
        "04db4f7c7f4dbf478440753d578825da01ae177c89dad6637f9c91ef86880e8d67571b2fdc0e0564985cd6b2cbbee82ab5655b0f"
        "bae7254ff4b13f88a30076612c",
        "fee695b4972a4f620951010c87390d3fe1313efce399fbc2c9c7cdc04d22b4c6",
        "04cd3a2937c598cfd46e197e786e4194e65164ed1a0bf23f224947b4f4c140f72b4742792b86ae6c427ae9d4a6d345cd6e1f9ae0"
        "f950d5399d38c8031d7975ca82",
        "52b9b5cb79dafd150b8729102ede22795d0f522ad884d29452818d8c54ca7508",
        "3951796617ecec1be21c72e6caed8d8c3a9417d62cc344d9f5ad68a3778a2aa5",
        "24f14df6bb3df64e12c5916df4db02e27644932121e19c14ae32e9af392aa1b1",
        "287cf7cad39ae66e37fd915cc1317766",
        "640c9c9b265a8ea9a5613c59d0ed260f08bd409daba63369b77e37a26d794f92e944a5a9519f5d238d710fa40d2a6b7b",
    ),
}  # fmt: skip


@pytest.mark.parametrize("vector", PASE_EXCHANGES.values(), ids=PASE_EXCHANGES.keys())
def test_pase_device_side(vector: tuple[str, ...]) -> None:
    salt, w0, l_point, req, resp, ctx, x_share, y, y_share, cb, w1, ca, ke, session_keys = map(h, vector)
    assert compute_w0_w1(DEFAULT_PASSCODE, salt, DEFAULT_ITERATIONS) == (int(w0.hex(), 16), int(w1.hex(), 16))
    stored = make_verifier(DEFAULT_PASSCODE, salt, DEFAULT_ITERATIONS)
    assert stored.to_bytes() == w0 + l_point
    context = pase_context(req, resp)
    assert context == ctx
    device = Spake2pVerifier(context, stored.w0, stored.L, y=int.from_bytes(y, "big"))
    assert device.respond(x_share) == (y_share, cb)
    assert device.finish(ca) == ke
    keys = pase_session_keys(ke)
    assert keys.i2r_key + keys.r2i_key + keys.attestation_challenge == session_keys
    assert keys.for_role(is_initiator=False) == (keys.r2i_key, keys.i2r_key)


# --- Properties

PASSCODES = st.integers(min_value=1, max_value=99999998)
SALTS = st.binary(min_size=16, max_size=32)


def _pair(prover_passcode: int, device_passcode: int, salt: bytes) -> tuple[Spake2pProver, Spake2pVerifier]:
    context = pase_context(b"request", b"response")
    w0, w1 = compute_w0_w1(prover_passcode, salt, 1000)
    stored = make_verifier(device_passcode, salt, 1000)
    return Spake2pProver(context, w0, w1), Spake2pVerifier(context, stored.w0, stored.L)


@settings(max_examples=10, deadline=None)
@given(PASSCODES, SALTS)
def test_prover_and_verifier_agree(passcode: int, salt: bytes) -> None:
    prover, verifier = _pair(passcode, passcode, salt)
    y_share, cb = verifier.respond(prover.share)
    ca, ke = prover.finish(y_share, cb)
    assert verifier.finish(ca) == ke
    assert len(ke) == 16


@settings(max_examples=10, deadline=None)
@given(PASSCODES, st.integers(min_value=1, max_value=1000), SALTS)
def test_wrong_passcode_fails_confirmation(passcode: int, delta: int, salt: bytes) -> None:
    prover, verifier = _pair(passcode + delta, passcode, salt)
    y_share, cb = verifier.respond(prover.share)
    with pytest.raises(CryptoError):  # the commissioner notices first, from cB
        prover.finish(y_share, cb)
    with pytest.raises(CryptoError):  # and the device rejects any cA it could be sent
        verifier.finish(bytes(32))


def test_invalid_peer_shares_raise_crypto_error() -> None:
    prover = _pair(DEFAULT_PASSCODE, DEFAULT_PASSCODE, DEFAULT_SALT)[0]
    off_curve = prover.share[:-1] + bytes([prover.share[-1] ^ 1])
    for bad in (off_curve, b"\x04" + bytes(64), prover.share[:64], b"\x02" + prover.share[1:]):
        with pytest.raises(CryptoError):
            _pair(DEFAULT_PASSCODE, DEFAULT_PASSCODE, DEFAULT_SALT)[1].respond(bad)
        with pytest.raises(CryptoError):
            _pair(DEFAULT_PASSCODE, DEFAULT_PASSCODE, DEFAULT_SALT)[0].finish(bad, bytes(32))


def _multiply(point: bytes, scalar: int) -> bytes:
    p = EccPoint(int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big"), "p256") * scalar
    return b"\x04" + int(p.x).to_bytes(32, "big") + int(p.y).to_bytes(32, "big")


def test_share_that_cancels_to_identity_is_rejected() -> None:
    # pA = w0·M makes pA - w0·M the identity (likewise pB = w0·N): draft-01 says abort, not hash an identity.
    prover, verifier = _pair(DEFAULT_PASSCODE, DEFAULT_PASSCODE, DEFAULT_SALT)
    w0 = make_verifier(DEFAULT_PASSCODE, DEFAULT_SALT, 1000).w0
    with pytest.raises(CryptoError):
        verifier.respond(_multiply(M_BYTES, w0))
    with pytest.raises(CryptoError):
        prover.finish(_multiply(N_BYTES, w0), bytes(32))


def test_misuse_raises_local_protocol_error() -> None:
    prover, verifier = _pair(DEFAULT_PASSCODE, DEFAULT_PASSCODE, DEFAULT_SALT)
    with pytest.raises(LocalProtocolError):
        verifier.finish(bytes(32))
    y_share, cb = verifier.respond(prover.share)
    with pytest.raises(LocalProtocolError):
        verifier.respond(prover.share)
    ca, _ = prover.finish(y_share, cb)
    with pytest.raises(LocalProtocolError):
        prover.finish(y_share, cb)
    verifier.finish(ca)
    with pytest.raises(LocalProtocolError):
        verifier.finish(ca)
    with pytest.raises(LocalProtocolError):
        compute_w0_w1(2**32, DEFAULT_SALT, 1000)
    with pytest.raises(CryptoError):
        Spake2pProver(b"", 1, 1, x=P256_ORDER)
    with pytest.raises(CryptoError):
        PaseVerifier.from_bytes(bytes(96))
