#!/usr/bin/env python3
"""Generate jfds-device's development attestation material (Matter Core spec §6.2, §6.3).

    python certs/make_attestation.py [--shared ../shared/attestation] [--out certs]

Reads the public CSA *test* material (never copied here) and writes into ``--out``:

* ``pai_cert.der``  PAI (X.509 DER), VID 0xFFF1, no PID, signed by the CSA test PAA "Matter Test PAA" (NoVID);
* ``dac_cert.der``  DAC (X.509 DER), VID 0xFFF1 / PID 0x8000, signed by that PAI;
* ``dac_key.der``   the DAC's P-256 private key (PKCS#8 DER, unencrypted; development only);
* ``cd.der``        the Certification Declaration (CMS SignedData DER) signed with the CSA test CD key.

The PAI key is not kept: rerunning makes a new PAI and DAC (and a new CD signature) and overwrites all four.
Paths default to ``../shared/attestation`` and ``certs/`` relative to the repository, whatever the cwd.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = REPO_ROOT.parent / "shared" / "attestation"
DEFAULT_OUT = REPO_ROOT / "certs"

try:
    from jfds_device.crypto import attestation as att
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(REPO_ROOT))
    from jfds_device.crypto import attestation as att

PAA_CERT = "Chip-Test-PAA-NoVID-Cert.pem"
PAA_KEY = "Chip-Test-PAA-NoVID-Key.pem"
CD_SIGNING_CERT = "Chip-Test-CD-Signing-Cert.pem"
CD_SIGNING_KEY = "Chip-Test-CD-Signing-Key.pem"

# Fixed validity. Controllers check the DAC at the current time and the chain at the DAC's notBefore
# (CHIP SDK ValidateCertificateChain), so the PAI starts first; 9999-12-31 23:59:59 is the
# "no well-defined expiration" GeneralizedTime of RFC 5280 §4.1.2.5.
PAI_NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
DAC_NOT_BEFORE = dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
NOT_AFTER = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)

CERTIFICATION_DECLARATION = att.CertificationDeclaration(
    vendor_id=att.VENDOR_ID,
    product_ids=(att.PRODUCT_ID,),
    device_type_id=att.DEVICE_TYPE_JOINT_FABRIC_ADMINISTRATOR,
    certificate_id="ZIG20142ZB330003-24",  # the CHIP SDK's example id; any 19 characters do for development
    security_level=0,
    security_information=0,
    version_number=0x2694,
    certification_type=0,  # development and test: the only type controllers accept with the test CD key
)


def _hex4(value: int) -> str:
    return f"{value:04X}"


def _load_pair(shared: Path, cert_name: str, key_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((shared / cert_name).read_bytes())
    key = serialization.load_pem_private_key((shared / key_name).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SystemExit(f"{key_name}: not an EC private key")
    if key.public_key() != cert.public_key():
        raise SystemExit(f"{key_name} does not belong to {cert_name}")
    return cert, key


def _skid(cert: x509.Certificate) -> x509.SubjectKeyIdentifier:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value


def _builder(
    subject: x509.Name,
    issuer: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    not_before: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_skid(issuer)), critical=False)
    )


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def make_pai(
    paa_cert: x509.Certificate, paa_key: ec.EllipticCurvePrivateKey
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A PAI for VID 0xFFF1 (no PID), CA with pathlen 0, signed by the PAA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "jfds-device Dev PAI 0xFFF1"),
            x509.NameAttribute(x509.ObjectIdentifier(att.OID_MATTER_VID), _hex4(att.VENDOR_ID)),
        ]
    )
    cert = (
        _builder(subject, paa_cert, key.public_key(), PAI_NOT_BEFORE)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(paa_key, hashes.SHA256())
    )
    return cert, key


def make_dac(
    pai_cert: x509.Certificate, pai_key: ec.EllipticCurvePrivateKey
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A DAC for VID 0xFFF1 / PID 0x8000, signed by the PAI."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "jfds-device Dev DAC 0xFFF1/0x8000"),
            x509.NameAttribute(x509.ObjectIdentifier(att.OID_MATTER_VID), _hex4(att.VENDOR_ID)),
            x509.NameAttribute(x509.ObjectIdentifier(att.OID_MATTER_PID), _hex4(att.PRODUCT_ID)),
        ]
    )
    cert = (
        _builder(subject, pai_cert, key.public_key(), DAC_NOT_BEFORE)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .sign(pai_key, hashes.SHA256())
    )
    return cert, key


def make_cd(cd_cert: x509.Certificate, cd_key: ec.EllipticCurvePrivateKey) -> bytes:
    """The CD content wrapped in CMS SignedData, signed with the CD signing key, sid = its SKID."""
    return att.sign_cd(CERTIFICATION_DECLARATION.to_tlv(), _skid(cd_cert).digest, cd_key)


def generate(shared: Path, out: Path) -> list[Path]:
    """Write the four files into ``out`` (created if needed) and return their paths."""
    paa_cert, paa_key = _load_pair(shared, PAA_CERT, PAA_KEY)
    cd_cert, cd_key = _load_pair(shared, CD_SIGNING_CERT, CD_SIGNING_KEY)
    pai_cert, pai_key = make_pai(paa_cert, paa_key)
    dac_cert, dac_key = make_dac(pai_cert, pai_key)
    files = {
        att.PAI_CERT_FILE: pai_cert.public_bytes(serialization.Encoding.DER),
        att.DAC_CERT_FILE: dac_cert.public_bytes(serialization.Encoding.DER),
        att.DAC_KEY_FILE: dac_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        att.CD_FILE: make_cd(cd_cert, cd_key),
    }
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        path = out / name
        path.write_bytes(data)
        written.append(path)
    att.load_attestation(out)  # parses everything back and checks the key belongs to the DAC
    att.verify_cd(files[att.CD_FILE], cd_cert)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"CSA test material ({DEFAULT_SHARED})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output directory ({DEFAULT_OUT})")
    args = parser.parse_args(argv)
    missing = [n for n in (PAA_CERT, PAA_KEY, CD_SIGNING_CERT, CD_SIGNING_KEY) if not (args.shared / n).is_file()]
    if missing:
        parser.error(f"{args.shared} lacks {', '.join(missing)}")
    for path in generate(args.shared, args.out):
        print(f"wrote {path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
