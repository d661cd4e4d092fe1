"""Operational certificate chain validation: NOC <- [ICAC] <- RCAC (Core spec §6.5, §6.6.2).

On top of X.509 path validation (signatures, validity, basic constraints, key usage, DN and key-id
linkage) Matter adds identity rules: a NOC names exactly one operational node id and one fabric id, at
most three valid CATs, and any fabric id in a CA subject must agree with the NOC's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from jfds_device.crypto.certs import (
    MATTER_DN_HEX_DIGITS,
    MAX_CATS,
    MAX_OPERATIONAL_NODE_ID,
    MIN_OPERATIONAL_NODE_ID,
    NO_EXPIRY,
    DNTag,
    KeyPurpose,
    KeyUsage,
    MatterCertificate,
    matter_epoch_seconds,
)
from jfds_device.errors import CertificateError

__all__ = ["CertificateInput", "VerifiedChain", "validate_rcac", "verify_chain"]


class VerifiedChain(NamedTuple):
    """What a validated NOC chain establishes (Core spec §6.5): the identity CASE and the ACL checks use."""

    fabric_id: int
    node_id: int
    cats: tuple[int, ...]
    root_public_key: bytes


CertificateInput = MatterCertificate | bytes


def _as_cert(value: CertificateInput, what: str) -> MatterCertificate:
    if isinstance(value, MatterCertificate):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return MatterCertificate.decode_tlv(bytes(value))
    raise CertificateError(f"{what} must be a MatterCertificate or TLV bytes")


def _epoch_now(now: int | float | datetime | None) -> int | None:
    if now is None or isinstance(now, int | float):
        return None if now is None else int(now)
    return matter_epoch_seconds(now)


def validate_rcac(rcac: CertificateInput, now: int | float | datetime | None = None) -> MatterCertificate:
    """Validate a root certificate on its own (Operational Credentials AddTrustedRootCertificate, §6.5)."""
    cert = _as_cert(rcac, "RCAC")
    _check_ca(cert, "RCAC", DNTag.MATTER_RCAC_ID, _epoch_now(now))
    if cert.issuer != cert.subject:
        raise CertificateError("RCAC must be self-issued (issuer DN == subject DN)")
    if cert.authority_key_id is not None and cert.authority_key_id != cert.subject_key_id:
        raise CertificateError("RCAC authority key id must equal its subject key id")
    cert.verify_signature(cert.public_key_bytes)
    return cert


def verify_chain(
    noc: CertificateInput,
    icac: CertificateInput | None,
    rcac: CertificateInput,
    now: int | float | datetime | None = None,
) -> VerifiedChain:
    """Validate NOC <- [ICAC] <- RCAC and return the operational identity it proves.

    ``now`` is Matter epoch seconds or a datetime; ``None`` skips the validity-period check (a node
    without a trusted time source; the Core spec's "Last Known Good UTC Time" is the caller's business).
    Raises :class:`CertificateError` naming the first rule broken.
    """
    when = _epoch_now(now)
    root = validate_rcac(rcac, when)
    leaf = _as_cert(noc, "NOC")
    issuers = [(root, "RCAC")]  # nearest issuer last
    if icac is not None:
        inter = _as_cert(icac, "ICAC")
        _check_ca(inter, "ICAC", DNTag.MATTER_ICAC_ID, when)
        _check_link(inter, root, "RCAC", "ICAC")
        if root.basic_constraints is not None and root.basic_constraints.path_len == 0:
            raise CertificateError("RCAC path-len-constraint 0 forbids an ICAC")  # RFC 5280 §4.2.1.9
        issuers.append((inter, "ICAC"))
    node_id, fabric_id = _check_noc(leaf, when)
    _check_link(leaf, *issuers[-1], "NOC")

    # §6.5 matter-fabric-id: a fabric id in a CA subject binds that CA to one fabric; the NOC must be on it.
    for cert, name in reversed(issuers):
        if cert.fabric_id is not None and cert.fabric_id != fabric_id:
            raise CertificateError(
                f"{name} fabric id 0x{cert.fabric_id:016X} differs from NOC fabric id 0x{fabric_id:016X}"
            )
    return VerifiedChain(fabric_id, node_id, leaf.cats, root.public_key_bytes)


def _check_validity(cert: MatterCertificate, what: str, now: int | None) -> None:
    if now is None:
        return
    if now < cert.not_before:
        raise CertificateError(f"{what} is not yet valid (not-before {cert.not_before}, now {now})")
    if cert.not_after != NO_EXPIRY and now > cert.not_after:
        raise CertificateError(f"{what} has expired (not-after {cert.not_after}, now {now})")


def _check_ca(cert: MatterCertificate, what: str, id_tag: DNTag, now: int | None) -> None:
    """Subject and extension rules for RCAC and ICAC alike (§6.5)."""
    _check_validity(cert, what, now)
    _count_subject(cert, what, {id_tag: (1, 1), DNTag.MATTER_FABRIC_ID: (0, 1)})
    if not cert.is_ca:
        raise CertificateError(f"{what} must have basic-constraints is-ca = true")
    required = KeyUsage.KEY_CERT_SIGN | KeyUsage.CRL_SIGN
    if cert.key_usage is None or required not in cert.key_usage:
        raise CertificateError(f"{what} key usage must include keyCertSign and cRLSign")
    if cert.subject_key_id is None:
        raise CertificateError(f"{what} has no subject key identifier")


def _check_noc(cert: MatterCertificate, now: int | None) -> tuple[int, int]:
    """NOC subject and extension rules (§6.5, §6.6.2 CATs, §2.5 node ids); returns (node id, fabric id)."""
    _check_validity(cert, "NOC", now)
    _count_subject(
        cert, "NOC", {DNTag.MATTER_NODE_ID: (1, 1), DNTag.MATTER_FABRIC_ID: (1, 1), DNTag.MATTER_NOC_CAT: (0, MAX_CATS)}
    )
    (node_id,), (fabric_id,) = cert.matter_ids(DNTag.MATTER_NODE_ID), cert.matter_ids(DNTag.MATTER_FABRIC_ID)
    if not MIN_OPERATIONAL_NODE_ID <= node_id <= MAX_OPERATIONAL_NODE_ID:
        raise CertificateError(f"NOC node id 0x{node_id:016X} is outside the operational range")
    if fabric_id == 0:
        raise CertificateError("NOC fabric id 0 is reserved")  # Core spec §2.5: fabric id 0 is invalid
    _check_cats(cert.cats)
    if cert.basic_constraints is None or cert.is_ca:
        raise CertificateError("NOC must have basic-constraints with is-ca = false")
    usage = cert.key_usage
    if usage is None or KeyUsage.DIGITAL_SIGNATURE not in usage:
        raise CertificateError("NOC key usage must include digitalSignature")
    if usage & (KeyUsage.KEY_CERT_SIGN | KeyUsage.CRL_SIGN):
        raise CertificateError("NOC key usage must not include keyCertSign or cRLSign")
    purposes = cert.extended_key_usage or ()
    if KeyPurpose.CLIENT_AUTH not in purposes or KeyPurpose.SERVER_AUTH not in purposes:
        raise CertificateError("NOC extended key usage must include clientAuth and serverAuth")
    if cert.subject_key_id is None:
        raise CertificateError("NOC has no subject key identifier")
    return node_id, fabric_id


def _check_cats(cats: Iterable[int]) -> None:
    # §6.6.2 (CASE Authenticated Tags): a CAT is identifier(16) || version(16); version 0 is invalid
    # and identifiers are unique within one NOC.
    identifiers = set()
    for cat in cats:
        if cat & 0xFFFF == 0:
            raise CertificateError(f"CAT 0x{cat:08X} has version 0")
        if cat >> 16 in identifiers:
            raise CertificateError(f"two CATs share identifier 0x{cat >> 16:04X}")
        identifiers.add(cat >> 16)


def _count_subject(cert: MatterCertificate, what: str, allowed: dict[DNTag, tuple[int, int]]) -> None:
    """Enforce how many of each Matter attribute a subject holds; Matter attributes not listed are banned."""
    for kind in MATTER_DN_HEX_DIGITS:
        low, high = allowed.get(kind, (0, 0))
        count = len(cert.matter_ids(kind))
        if not low <= count <= high:
            expected = f"exactly {low}" if low == high else f"{low}..{high}"
            raise CertificateError(f"{what} subject has {count} {kind.name} attributes, expected {expected}")


def _check_link(child: MatterCertificate, parent: MatterCertificate, parent_name: str, child_name: str) -> None:
    if child.issuer != parent.subject:
        raise CertificateError(f"{child_name} issuer DN does not match the {parent_name} subject DN")
    if child.authority_key_id is None or child.authority_key_id != parent.subject_key_id:
        raise CertificateError(f"{child_name} authority key id does not match the {parent_name} subject key id")
    child.verify_signature(parent.public_key())
