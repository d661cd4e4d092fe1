"""Development attestation material (Core spec §6.2, §6.3) and the device-side attestation helpers.

The chain is checked against the public CSA test PAA in ``<repo>/../shared/attestation`` (never committed);
tests that need it skip when it is absent. The committed ``certs/`` material and a fresh regeneration into a
temporary directory go through the same checks. An optional cross-check calls the CHIP SDK's own C++
attestation code (CMS_Verify, DecodeCertificationElements, VerifyAttestationCertificateFormat,
ValidateCertificateChain, ExtractVIDPIDFromX509Cert) in ``home-assistant-chip-core``'s library.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509 import verification

from jfds_device.codec import tlv
from jfds_device.crypto import attestation as att
from jfds_device.crypto import der
from jfds_device.crypto.primitives import P256Keypair, ecdsa_verify
from jfds_device.errors import CertificateError, CryptoError, LocalProtocolError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared" / "attestation"
SCRIPT = REPO_ROOT / "certs" / "make_attestation.py"
PAA_NOVID = "Chip-Test-PAA-NoVID-Cert.pem"
PAA_FFF1 = "Chip-Test-PAA-FFF1-Cert.pem"
CD_SIGNING_CERT = "Chip-Test-CD-Signing-Cert.pem"
SHARED_FILES = (
    PAA_NOVID,
    "Chip-Test-PAA-NoVID-Key.pem",
    CD_SIGNING_CERT,
    "Chip-Test-CD-Signing-Key.pem",
)
TEST_CD_KEY_ID = bytes.fromhex("62fa823359acfaa9963e1cfa140addf504f37160")  # CHIP SDK gTestCdPubkeyKid
UTF8_STRING = 0x0C


def _have_shared() -> bool:
    return all((SHARED / name).is_file() for name in SHARED_FILES)


needs_shared = pytest.mark.skipif(not _have_shared(), reason=f"CSA test attestation material not found in {SHARED}")


def _shared_cert(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((SHARED / name).read_bytes())


@pytest.fixture(scope="module")
def paa() -> x509.Certificate:
    if not _have_shared():
        pytest.skip(f"CSA test attestation material not found in {SHARED}")
    return _shared_cert(PAA_NOVID)


@pytest.fixture(scope="module")
def cd_signer() -> x509.Certificate:
    if not _have_shared():
        pytest.skip(f"CSA test attestation material not found in {SHARED}")
    return _shared_cert(CD_SIGNING_CERT)


@pytest.fixture(scope="module")
def regenerated_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The script run as documented (a subprocess, from another cwd) into a temporary directory."""
    if not _have_shared():
        pytest.skip(f"CSA test attestation material not found in {SHARED}")
    out = tmp_path_factory.mktemp("attestation")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--shared", str(SHARED), "--out", str(out)],
        cwd=out,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("wrote ") == 4
    return out


@pytest.fixture(params=["committed", "regenerated"])
def certs_dir(request: pytest.FixtureRequest) -> Path:
    if request.param == "committed":
        return att.DEFAULT_CERTS_DIR
    return request.getfixturevalue("regenerated_dir")


@pytest.fixture
def material(certs_dir: Path) -> att.AttestationMaterial:
    return att.load_attestation(certs_dir)


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_attestation", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in certs/
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


# ---------------------------------------------------------------------------------------------------- files


def test_default_certs_dir_is_the_repo_certs_dir() -> None:
    assert att.DEFAULT_CERTS_DIR == REPO_ROOT / "certs"
    for name in (att.DAC_CERT_FILE, att.PAI_CERT_FILE, att.DAC_KEY_FILE, att.CD_FILE):
        assert (att.DEFAULT_CERTS_DIR / name).is_file(), name


def test_committed_material_loads_without_arguments() -> None:
    material = att.load_attestation()
    assert material.dac_cert == (REPO_ROOT / "certs" / "dac_cert.der").read_bytes()
    assert material.cd == (REPO_ROOT / "certs" / "cd.der").read_bytes()
    assert isinstance(material.dac_key.curve, ec.SECP256R1)
    assert material.dac_public_key == material.keypair.public_key_bytes
    assert len(material.dac_public_key) == 65


def test_the_paa_is_not_committed() -> None:
    for path in (REPO_ROOT / "certs").iterdir():
        assert "PAA" not in path.name.upper(), path
    if _have_shared():
        paa_der = _shared_cert(PAA_NOVID).public_bytes(serialization.Encoding.DER)
        for path in (REPO_ROOT / "certs").iterdir():
            if path.is_file():
                assert paa_der not in path.read_bytes(), path


def test_load_attestation_errors(tmp_path: Path, regenerated_dir: Path) -> None:
    with pytest.raises(CertificateError, match="missing"):
        att.load_attestation(tmp_path)
    for name in (att.DAC_CERT_FILE, att.PAI_CERT_FILE, att.CD_FILE):
        (tmp_path / name).write_bytes((att.DEFAULT_CERTS_DIR / name).read_bytes())
    (tmp_path / att.DAC_KEY_FILE).write_bytes((regenerated_dir / att.DAC_KEY_FILE).read_bytes())
    with pytest.raises(CertificateError, match="does not match"):
        att.load_attestation(tmp_path)
    (tmp_path / att.DAC_KEY_FILE).write_bytes(b"\x30\x03\x02\x01\x00")
    with pytest.raises(CertificateError, match="private key"):
        att.load_attestation(tmp_path)


# ---------------------------------------------------------------------------------------------------- chain


def _ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def _name_attribute_tag(name: x509.Name, dotted: str) -> int:
    """The DER tag of the value of a subject attribute (to check the string type)."""
    for rdn in der.read_one(name.public_bytes()).children():
        for atv in rdn.children():
            oid, value = atv.children()
            if oid.as_oid() == dotted:
                return value.tag
    raise AssertionError(f"{dotted} not in {name.rfc4514_string()}")


@needs_shared
def test_chain_verifies_to_the_csa_test_paa(material: att.AttestationMaterial, paa: x509.Certificate) -> None:
    dac, pai = material.dac, material.pai
    # Signatures and issuer/subject linkage.
    pai.verify_directly_issued_by(paa)
    dac.verify_directly_issued_by(pai)
    assert pai.issuer == paa.subject
    assert dac.issuer == pai.subject
    # Full RFC 5280 path validation now (validity, CA constraints, pathlen, key usage on the CAs).
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([paa]))
        .time(dt.datetime.now(dt.UTC))
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    chain = verifier.verify(dac, [pai]).chain
    assert [c.subject for c in chain] == [dac.subject, pai.subject, paa.subject]


@needs_shared
def test_chain_does_not_verify_to_another_paa(material: att.AttestationMaterial) -> None:
    other = _shared_cert(PAA_FFF1)
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([other]))
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    with pytest.raises(verification.VerificationError):
        verifier.verify(material.dac, [material.pai])


@needs_shared
def test_validity(material: att.AttestationMaterial, paa: x509.Certificate) -> None:
    now = dt.datetime.now(dt.UTC)
    for cert in (material.pai, material.dac):
        assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc
        assert cert.not_valid_after_utc.year == 9999
    # The CHIP SDK validates the chain at the DAC's notBefore: every certificate must be valid then.
    at = material.dac.not_valid_before_utc
    for cert in (paa, material.pai):
        assert cert.not_valid_before_utc < at < cert.not_valid_after_utc


@needs_shared
def test_pai_profile(material: att.AttestationMaterial, paa: x509.Certificate) -> None:
    pai = material.pai
    assert pai.version == x509.Version.v3
    assert pai.signature_hash_algorithm is not None and pai.signature_hash_algorithm.name == "sha256"
    assert isinstance(pai.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(pai.public_key().curve, ec.SECP256R1)
    basic = _ext(pai, x509.BasicConstraints)
    assert basic.critical and basic.value.ca and basic.value.path_length == 0
    usage = _ext(pai, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    skid = _ext(pai, x509.SubjectKeyIdentifier).value.digest
    assert len(skid) == 20
    akid = _ext(pai, x509.AuthorityKeyIdentifier).value
    assert akid.key_identifier == _ext(paa, x509.SubjectKeyIdentifier).value.digest
    assert akid.key_identifier == bytes.fromhex("785ce705b86b8f4e6fc793aa60cb43ea696882d5")
    assert att.certificate_vid_pid(pai) == (0xFFF1, None)
    assert _name_attribute_tag(pai.subject, att.OID_MATTER_VID) == UTF8_STRING
    assert att.certificate_vid_pid(paa) == (None, None)


@needs_shared
def test_dac_profile(material: att.AttestationMaterial) -> None:
    dac, pai = material.dac, material.pai
    assert dac.version == x509.Version.v3
    assert dac.signature_hash_algorithm is not None and dac.signature_hash_algorithm.name == "sha256"
    public_key = dac.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1)
    basic = _ext(dac, x509.BasicConstraints)
    assert basic.critical and not basic.value.ca and basic.value.path_length is None
    usage = _ext(dac, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not (usage.value.key_cert_sign or usage.value.crl_sign or usage.value.key_agreement)
    assert len(_ext(dac, x509.SubjectKeyIdentifier).value.digest) == 20
    akid = _ext(dac, x509.AuthorityKeyIdentifier).value.key_identifier
    assert akid == _ext(pai, x509.SubjectKeyIdentifier).value.digest
    assert dac.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert att.certificate_vid_pid(dac) == (att.VENDOR_ID, att.PRODUCT_ID) == (0xFFF1, 0x8000)
    assert att.certificate_vid_pid(material.dac_cert) == (0xFFF1, 0x8000)
    for dotted, text in ((att.OID_MATTER_VID, "FFF1"), (att.OID_MATTER_PID, "8000")):
        (value,) = dac.subject.get_attributes_for_oid(x509.ObjectIdentifier(dotted))
        assert value.value == text
        assert _name_attribute_tag(dac.subject, dotted) == UTF8_STRING


def test_certificate_vid_pid_rejects_bad_encoding() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.ObjectIdentifier(att.OID_MATTER_VID), "fff1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(CertificateError, match="uppercase"):
        att.certificate_vid_pid(cert)


# ---------------------------------------------------------------------------------------------------- CD

EXPECTED_CD = {
    0: 1,
    1: 0xFFF1,
    2: [0x8000],
    3: 0x0130,
    4: "ZIG20142ZB330003-24",
    5: 0,
    6: 0,
    7: 0x2694,
    8: 0,
}


@needs_shared
def test_cd_signature_verifies(material: att.AttestationMaterial, cd_signer: x509.Certificate) -> None:
    declaration = att.verify_cd(material.cd, cd_signer)
    assert declaration == att.verify_cd(material.cd, cd_signer.public_bytes(serialization.Encoding.DER))
    assert declaration == att.verify_cd(material.cd, cd_signer.public_bytes(serialization.Encoding.PEM))
    assert declaration == att.verify_cd(material.cd, cd_signer.public_key())  # type: ignore[arg-type]


def test_cd_fields(material: att.AttestationMaterial) -> None:
    signed = att.parse_cd(material.cd)
    assert tlv.decode(signed.content) == EXPECTED_CD
    cd = signed.declaration
    assert cd == material.declaration
    assert (cd.format_version, cd.vendor_id, cd.product_ids) == (1, 0xFFF1, (0x8000,))
    assert cd.device_type_id == att.DEVICE_TYPE_JOINT_FABRIC_ADMINISTRATOR == 0x0130
    assert cd.certification_type == 0  # development and test
    assert (cd.security_level, cd.security_information, cd.version_number) == (0, 0, 0x2694)
    assert len(cd.certificate_id) == att.CERTIFICATE_ID_LENGTH
    assert cd.dac_origin_vendor_id is None and cd.dac_origin_product_id is None
    assert cd.authorized_paa_list == ()
    assert cd.to_tlv() == signed.content
    # What a commissioner checks without dac_origin: DAC and PAI VID = CD vendor_id, DAC PID in the list.
    dac_vid, dac_pid = att.certificate_vid_pid(material.dac)
    pai_vid, _ = att.certificate_vid_pid(material.pai)
    assert dac_vid == pai_vid == cd.vendor_id
    assert dac_pid in cd.product_ids


def test_cd_cms_layout(material: att.AttestationMaterial) -> None:
    """The exact §6.3.1 / CHIP CMS_Sign layout: no certificates, no signed attributes, sid = [0] SKID."""
    content_info = der.read_one(material.cd).expect(der.SEQUENCE).children()
    assert content_info[0].as_oid() == "1.2.840.113549.1.7.2"
    assert content_info[1].tag == 0xA0
    (signed_data,) = content_info[1].children()
    version, digests, encap, signer_infos = signed_data.children()  # nothing between encap and signerInfos
    assert version.as_int() == 3
    (digest,) = digests.expect(der.SET).children()
    assert digest.encoded == der.sequence(der.oid("2.16.840.1.101.3.4.2.1"))
    encap_type, econtent = encap.children()
    assert encap_type.as_oid() == "1.2.840.113549.1.7.1"
    assert econtent.tag == 0xA0
    (octets,) = econtent.children()
    assert octets.tag == der.OCTET_STRING and tlv.decode(octets.content) == EXPECTED_CD
    (signer,) = signer_infos.expect(der.SET).children()
    s_version, sid, s_digest, s_algorithm, signature = signer.children()  # no signedAttrs
    assert s_version.as_int() == 3
    assert sid.tag == 0x80 and sid.content == TEST_CD_KEY_ID
    assert s_digest.encoded == digest.encoded
    assert s_algorithm.encoded == der.sequence(der.oid("1.2.840.10045.4.3.2"))
    assert signature.tag == der.OCTET_STRING
    r, s = der.read_one(signature.content).expect(der.SEQUENCE).children()
    assert r.as_int() > 0 and s.as_int() > 0


def test_sign_cd_round_trip() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    declaration = att.CertificationDeclaration(
        vendor_id=0xFFF2,
        product_ids=(0x8001, 0x8002),
        device_type_id=0x0100,
        certificate_id="CSA00000SWC00000-00",
        version_number=1,
        dac_origin_vendor_id=0xFFF1,
        dac_origin_product_id=0x8000,
        authorized_paa_list=(bytes(range(20)),),
    )
    cms = att.sign_cd(declaration.to_tlv(), b"\x01" * 20, key)
    assert att.verify_cd(cms, key.public_key()) == declaration
    assert att.parse_cd(cms).signer_key_id == b"\x01" * 20


@needs_shared
def test_cd_rejections(material: att.AttestationMaterial, cd_signer: x509.Certificate) -> None:
    signed = att.parse_cd(material.cd)
    tampered = material.cd.replace(signed.content, signed.content[:-2] + b"\x01\x18")
    assert tampered != material.cd
    with pytest.raises(CertificateError, match="does not verify"):
        att.verify_cd(tampered, cd_signer)
    paa = _shared_cert(PAA_NOVID)
    with pytest.raises(CertificateError, match="key id"):
        att.verify_cd(material.cd, paa)
    with pytest.raises(CertificateError, match="does not verify"):
        att.verify_cd(material.cd, paa.public_key())  # type: ignore[arg-type]


def test_parse_cd_rejects_malformed(material: att.AttestationMaterial) -> None:
    for bad in (b"", b"\x30\x00", material.cd[:-1], material.cd + b"\x00", b"\x04\x01\x00"):
        with pytest.raises(CertificateError):
            att.parse_cd(bad)
    # A certificates [0] field between encapContentInfo and signerInfos is not in the profile.
    content_info = der.read_one(material.cd).children()
    version, digests, encap, signer_infos = content_info[1].children()[0].children()
    with_certs = der.sequence(
        content_info[0].encoded,
        der.tlv(
            0xA0,
            der.sequence(version.encoded, digests.encoded, encap.encoded, der.tlv(0xA0, b""), signer_infos.encoded),
        ),
    )
    with pytest.raises(CertificateError, match="SignedData"):
        att.parse_cd(with_certs)


def test_cd_content_validation() -> None:
    good = att.CertificationDeclaration(
        vendor_id=0xFFF1, product_ids=(0x8000,), device_type_id=0x0130, certificate_id="X" * 19
    )
    assert att.CertificationDeclaration.from_tlv(good.to_tlv()) == good
    with pytest.raises(LocalProtocolError):
        att.CertificationDeclaration(vendor_id=1, product_ids=(1,), device_type_id=1, certificate_id="short").to_tlv()
    with pytest.raises(LocalProtocolError):
        att.CertificationDeclaration(vendor_id=1, product_ids=(), device_type_id=1, certificate_id="X" * 19).to_tlv()
    bad_fields: list[dict[int, object]] = [
        {k: v for k, v in EXPECTED_CD.items() if k != 8},  # certification_type missing
        {**EXPECTED_CD, 1: 0x1FFFF},  # vendor id out of range
        {**EXPECTED_CD, 2: []},  # no product ids
        {**EXPECTED_CD, 4: "too short"},
        {**EXPECTED_CD, 9: 0xFFF1},  # dac_origin_vendor_id without the product id
        {**EXPECTED_CD, 12: 1},  # unknown field
    ]
    for fields in bad_fields:
        with pytest.raises(CertificateError):
            att.CertificationDeclaration.from_tlv(tlv.encode(fields))
    with pytest.raises(CertificateError):
        att.CertificationDeclaration.from_tlv(b"\x15\x24")


# ---------------------------------------------------------------------------------------------------- TBS

NONCE = bytes(range(32))
CHALLENGE = bytes(range(0x80, 0x90))


def test_attestation_elements_layout() -> None:
    cd = b"\xaa\xbb"
    elements = att.attestation_elements(cd, NONCE)
    assert elements == (b"\x15" + b"\x30\x01\x02" + cd + b"\x30\x02\x20" + NONCE + b"\x24\x03\x00" + b"\x18")
    assert tlv.decode(elements) == {1: cd, 2: NONCE, 3: 0}
    with_fw = att.attestation_elements(cd, NONCE, timestamp=0x12345678, firmware_info=b"\x01")
    assert with_fw.endswith(b"\x26\x03\x78\x56\x34\x12" + b"\x30\x04\x01\x01" + b"\x18")
    assert tlv.decode(with_fw) == {1: cd, 2: NONCE, 3: 0x12345678, 4: b"\x01"}


def test_attestation_elements_with_the_real_cd(material: att.AttestationMaterial) -> None:
    elements = att.attestation_elements(material.cd, NONCE)
    assert elements[:4] == b"\x15\x30\x01" + bytes([len(material.cd)])
    assert tlv.decode(elements)[1] == material.cd
    assert len(elements) <= 900


def test_attestation_elements_arguments() -> None:
    with pytest.raises(LocalProtocolError):
        att.attestation_elements(b"cd", NONCE[:31])
    with pytest.raises(LocalProtocolError):
        att.attestation_elements(b"cd", NONCE, timestamp=1 << 32)
    with pytest.raises(LocalProtocolError):
        att.attestation_elements(b"cd", NONCE, timestamp=-1)
    with pytest.raises(LocalProtocolError):
        att.attestation_elements(b"x" * 900, NONCE)


def test_attestation_tbs() -> None:
    elements = att.attestation_elements(b"cd", NONCE)
    assert att.attestation_tbs(elements, CHALLENGE) == elements + CHALLENGE
    with pytest.raises(LocalProtocolError):
        att.attestation_tbs(elements, CHALLENGE + b"\x00")


def test_nocsr_elements_layout() -> None:
    csr = b"\x30\x03\x02\x01\x00"
    elements = att.nocsr_elements(csr, NONCE)
    assert elements == b"\x15" + b"\x30\x01\x05" + csr + b"\x30\x02\x20" + NONCE + b"\x18"
    assert tlv.decode(elements) == {1: csr, 2: NONCE}
    with pytest.raises(LocalProtocolError):
        att.nocsr_elements(csr, NONCE + b"\x00")


def test_dac_signature_verifies_with_the_dac_public_key(material: att.AttestationMaterial) -> None:
    tbs = att.attestation_tbs(att.attestation_elements(material.cd, NONCE), CHALLENGE)
    signature = att.sign_with_dac(material.dac_key, tbs)
    assert len(signature) == 64
    public_key = material.dac.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    public_key.verify(encode_dss_signature(r, s), tbs, ec.ECDSA(hashes.SHA256()))
    ecdsa_verify(material.dac_public_key, tbs, signature)
    ecdsa_verify(material.dac_public_key, tbs, att.sign_with_dac(material.keypair, tbs))
    with pytest.raises(CryptoError):
        ecdsa_verify(material.dac_public_key, tbs + b"\x00", signature)


def test_sign_with_dac_rejects_other_curves() -> None:
    with pytest.raises(CryptoError):
        att.sign_with_dac(ec.generate_private_key(ec.SECP384R1()), b"m")
    assert len(att.sign_with_dac(P256Keypair.generate(), b"m")) == 64


# ---------------------------------------------------------------------------------------------------- script


@needs_shared
def test_regeneration_overwrites_with_a_new_valid_chain(regenerated_dir: Path, tmp_path: Path) -> None:
    script = _load_script()
    first = script.generate(SHARED, tmp_path)
    assert sorted(p.name for p in first) == sorted(
        [att.DAC_CERT_FILE, att.PAI_CERT_FILE, att.DAC_KEY_FILE, att.CD_FILE]
    )
    dac_before = (tmp_path / att.DAC_CERT_FILE).read_bytes()
    script.generate(SHARED, tmp_path)
    assert (tmp_path / att.DAC_CERT_FILE).read_bytes() != dac_before  # overwritten, new key
    material = att.load_attestation(tmp_path)
    material.pai.verify_directly_issued_by(_shared_cert(PAA_NOVID))
    material.dac.verify_directly_issued_by(material.pai)
    assert att.verify_cd(material.cd, _shared_cert(CD_SIGNING_CERT)) == att.load_attestation().declaration
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in regenerated_dir.iterdir())


def test_script_rejects_a_missing_shared_dir(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--shared", str(tmp_path / "nope"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2 and "lacks" in result.stderr
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------- CHIP SDK

# Runs in a child process: it calls C++ functions of the CHIP SDK library by their mangled names, and a
# wrong guess about an ABI detail must not take the test process down. CHIP_ERROR is returned through a
# hidden pointer (it carries file/line), which ctypes does for any struct larger than 16 bytes.
_CHIP_PROBE = r"""
import ctypes, json, sys
from pathlib import Path
import chip

lib = ctypes.CDLL(str(Path(chip.__file__).parent / "_ChipDeviceCtrl.so"))
keep = []

class Span(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]

class ChipError(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint32), ("rest", ctypes.c_uint8 * 44)]

def span(data):
    buf = ctypes.create_string_buffer(data, len(data))
    keep.append(buf)
    return Span(ctypes.cast(buf, ctypes.c_void_p), len(data))

def fn(name):
    f = getattr(lib, name)
    f.restype = ChipError
    return f

paa, pai, dac, cd, cd_cert = (Path(p).read_bytes() for p in sys.argv[1:6])
out = {}
content = Span()
out["cms_verify"] = fn("_ZN4chip11Credentials10CMS_VerifyERKNS_4SpanIKhEES5_RS3_")(
    ctypes.byref(span(cd)), ctypes.byref(span(cd_cert)), ctypes.byref(content)).code
out["cd_content"] = ctypes.string_at(content.data, content.size).hex() if content.data else ""
kid = Span()
out["cms_key_id_err"] = fn("_ZN4chip11Credentials16CMS_ExtractKeyIdERKNS_4SpanIKhEERS3_")(
    ctypes.byref(span(cd)), ctypes.byref(kid)).code
out["cms_key_id"] = ctypes.string_at(kid.data, kid.size).hex() if kid.data else ""
tampered = bytearray(cd); tampered[-1] ^= 1
out["cms_verify_tampered"] = fn("_ZN4chip11Credentials10CMS_VerifyERKNS_4SpanIKhEES5_RS3_")(
    ctypes.byref(span(bytes(tampered))), ctypes.byref(span(cd_cert)), ctypes.byref(Span())).code

elements = (ctypes.c_uint8 * 4096)()   # CertificationElementsWithoutPIDs, oversized
out["cd_decode"] = fn(
    "_ZN4chip11Credentials27DecodeCertificationElementsERKNS_4SpanIKhEERNS0_32CertificationElementsWithoutPIDsE"
)(ctypes.byref(span(bytes.fromhex(out["cd_content"]))), ctypes.byref(elements)).code
out["cd_elements"] = bytes(elements[:64]).hex()
with_pids = (ctypes.c_uint8 * 8192)()  # CertificationElements: ProductIds[100] at 4, count at 204
out["cd_decode_pids"] = fn(
    "_ZN4chip11Credentials27DecodeCertificationElementsERKNS_4SpanIKhEERNS0_21CertificationElementsE"
)(ctypes.byref(span(bytes.fromhex(out["cd_content"]))), ctypes.byref(with_pids)).code
out["cd_pids"] = bytes(with_pids[:206]).hex()

fmt = fn("_ZN4chip6Crypto34VerifyAttestationCertificateFormatERKNS_4SpanIKhEENS0_19AttestationCertTypeE")
for name, cert, kind in (("paa", paa, 0), ("pai", pai, 1), ("dac", dac, 2), ("dac_as_pai", dac, 1)):
    out["format_" + name] = fmt(ctypes.byref(span(cert)), ctypes.c_int(kind)).code

vidpid = fn("_ZN4chip6Crypto25ExtractVIDPIDFromX509CertERKNS_4SpanIKhEERNS0_21AttestationCertVidPidE")
for name, cert in (("pai", pai), ("dac", dac)):
    raw = (ctypes.c_uint8 * 64)()   # {Optional<VendorId>, Optional<uint16_t>} = {bool, u16} x 2
    out["vidpid_err_" + name] = vidpid(ctypes.byref(span(cert)), ctypes.byref(raw)).code
    out["vidpid_" + name] = bytes(raw[:8]).hex()

chain = fn("_ZN4chip6Crypto24ValidateCertificateChainEPKhmS2_mS2_mRNS0_32CertificateChainValidationResultE")
result = ctypes.c_int(-1)
out["chain"] = chain(paa, len(paa), pai, len(pai), dac, len(dac), ctypes.byref(result)).code
out["chain_result"] = result.value
print("RESULT " + json.dumps(out))
"""


def _chip_library() -> Path | None:
    spec = importlib.util.find_spec("chip")
    if spec is None or spec.origin is None:
        return None
    library = Path(spec.origin).parent / "_ChipDeviceCtrl.so"
    return library if library.is_file() else None


@pytest.mark.interop
@needs_shared
def test_chip_sdk_accepts_the_material(material: att.AttestationMaterial, tmp_path: Path) -> None:
    if _chip_library() is None:
        pytest.skip("home-assistant-chip-core (chip/_ChipDeviceCtrl.so) is not installed")
    paa_der = tmp_path / "paa.der"
    paa_der.write_bytes(_shared_cert(PAA_NOVID).public_bytes(serialization.Encoding.DER))
    cd_cert_der = tmp_path / "cd_signing.der"
    cd_cert_der.write_bytes(_shared_cert(CD_SIGNING_CERT).public_bytes(serialization.Encoding.DER))
    files = {"pai": material.pai_cert, "dac": material.dac_cert, "cd": material.cd}
    for name, data in files.items():
        (tmp_path / f"{name}.der").write_bytes(data)
    args = [str(paa_der)] + [str(tmp_path / f"{n}.der") for n in ("pai", "dac", "cd")] + [str(cd_cert_der)]
    proc = subprocess.run(
        [sys.executable, "-c", _CHIP_PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        if "undefined symbol" in proc.stderr or "AttributeError" in proc.stderr:
            pytest.skip(f"this CHIP SDK build does not export the checked functions: {proc.stderr[-300:]}")
        pytest.fail(f"CHIP probe failed (rc={proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(lines[-1][len("RESULT ") :])

    assert out["cms_verify"] == 0, hex(out["cms_verify"])
    assert bytes.fromhex(out["cd_content"]) == att.parse_cd(material.cd).content
    assert out["cms_key_id_err"] == 0 and bytes.fromhex(out["cms_key_id"]) == TEST_CD_KEY_ID
    assert out["cms_verify_tampered"] != 0

    assert out["cd_decode"] == 0, hex(out["cd_decode"])
    elements = bytes.fromhex(out["cd_elements"])
    # CertificationElementsWithoutPIDs: formatVersion u16 @0, vendorId u16 @2, deviceTypeId u32 @4,
    # versionNumber u16 @12, certificationType u8 @14, certificateId char[20] after the flags.
    assert int.from_bytes(elements[0:2], "little") == 1
    assert int.from_bytes(elements[2:4], "little") == 0xFFF1
    assert int.from_bytes(elements[4:8], "little") == 0x0130
    assert int.from_bytes(elements[12:14], "little") == 0x2694
    assert elements[14] == 0
    assert b"ZIG20142ZB330003-24\x00" in elements
    assert out["cd_decode_pids"] == 0
    with_pids = bytes.fromhex(out["cd_pids"])
    assert int.from_bytes(with_pids[4:6], "little") == 0x8000 and with_pids[204] == 1

    assert out["format_paa"] == out["format_pai"] == out["format_dac"] == 0
    assert out["format_dac_as_pai"] != 0
    assert out["vidpid_err_pai"] == out["vidpid_err_dac"] == 0
    pai_vp, dac_vp = bytes.fromhex(out["vidpid_pai"]), bytes.fromhex(out["vidpid_dac"])
    assert pai_vp[0] == 1 and int.from_bytes(pai_vp[2:4], "little") == 0xFFF1 and pai_vp[4] == 0
    assert dac_vp[0] == 1 and int.from_bytes(dac_vp[2:4], "little") == 0xFFF1
    assert dac_vp[4] == 1 and int.from_bytes(dac_vp[6:8], "little") == 0x8000
    assert out["chain"] == 0 and out["chain_result"] == 0
