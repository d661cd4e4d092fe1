"""Operational Credentials cluster 0x003E (Core spec 11.18): every id, enum, struct and command.

Revision 1. The Vendor ID Verification additions of spec 1.4.2 (NOCStruct.VVSC,
FabricDescriptorStruct.VIDVerificationStatement, SetVIDVerificationStatement, SignVIDVerificationRequest)
follow the SDK objects' ids and tags but are declared only; the server leaves them unimplemented, so they
are absent from AcceptedCommandList.

Lengths the SDK checks in its handlers (nonces, certificates, IPK, label) are not schema constraints here:
the handlers check them and answer INVALID_COMMAND as the SDK does; the schema would answer CONSTRAINT_ERROR.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

from jfds_device.codec.model import AttributeDef, ClusterDef, CommandDef, Privilege
from jfds_device.codec.schema import (
    BOOL,
    UINT8,
    UINT16,
    UINT64,
    ConstraintError,
    Enum,
    List,
    Octets,
    Str,
    Struct,
    StructType,
    UInt,
    field,
    struct,
)

CLUSTER_ID = 0x003E

MAX_CERT_LENGTH = 400  # a Matter TLV certificate (kMaxCHIPCertLength; NOCStruct NOC/ICAC max 400)
MAX_DER_CERT_LENGTH = 600  # CertificateChainResponse Certificate (11.18.6.4)
RESP_MAX = 900  # AttestationElements / NOCSRElements (11.18.5.1)
NONCE_LENGTH = 32  # AttestationNonce, CSRNonce
IPK_LENGTH = 16  # IPKValue
MAX_LABEL_LENGTH = 32
MAX_DEBUG_TEXT = 128


class CertificateChainTypeEnum(enum.IntEnum):
    DAC_CERTIFICATE = 1
    PAI_CERTIFICATE = 2


class NodeOperationalCertStatusEnum(enum.IntEnum):
    OK = 0
    INVALID_PUBLIC_KEY = 1
    INVALID_NODE_OP_ID = 2
    INVALID_NOC = 3
    MISSING_CSR = 4
    TABLE_FULL = 5
    INVALID_ADMIN_SUBJECT = 6
    FABRIC_CONFLICT = 9
    LABEL_CONFLICT = 10
    INVALID_FABRIC_INDEX = 11


class _OpenEnum(Enum):
    """An enum whose unknown uint8 values still decode (as ints) so the handler can answer INVALID_COMMAND."""

    def from_tlv(self, value: Any) -> Any:
        try:
            return super().from_tlv(value)
        except ConstraintError:
            if type(value) is int and 0 <= value <= 0xFF:
                return value
            raise


FABRIC_INDEX = UINT8
NODE_ID = UINT64
VENDOR_ID = UINT16
STATUS = Enum(NodeOperationalCertStatusEnum)


@struct
class NOCStruct(Struct):
    # NOC, ICAC and VVSC are fabric-sensitive (11.18.4.4): other fabrics' entries show only FabricIndex.
    FABRIC_SENSITIVE: ClassVar[frozenset[int]] = frozenset({1, 2, 3})

    noc: bytes = field(1, Octets(max_length=MAX_CERT_LENGTH))
    icac: Any = field(2, Octets(max_length=MAX_CERT_LENGTH), nullable=True)
    vvsc: bytes | None = field(3, Octets(max_length=MAX_CERT_LENGTH), optional=True)
    fabric_index: int | None = field(0xFE, FABRIC_INDEX, optional=True)


@struct
class FabricDescriptorStruct(Struct):
    root_public_key: bytes = field(1, Octets(min_length=65, max_length=65))
    vendor_id: int = field(2, VENDOR_ID)
    fabric_id: int = field(3, UINT64)
    node_id: int = field(4, NODE_ID)
    label: str = field(5, Str(max_length=MAX_LABEL_LENGTH))
    vid_verification_statement: bytes | None = field(6, Octets(max_length=85), optional=True)
    fabric_index: int | None = field(0xFE, FABRIC_INDEX, optional=True)


@struct
class AttestationRequest(Struct):
    attestation_nonce: bytes = field(0, Octets())


@struct
class AttestationResponse(Struct):
    attestation_elements: bytes = field(0, Octets(max_length=RESP_MAX))
    attestation_signature: bytes = field(1, Octets(min_length=64, max_length=64))


@struct
class CertificateChainRequest(Struct):
    certificate_type: int = field(0, _OpenEnum(CertificateChainTypeEnum))


@struct
class CertificateChainResponse(Struct):
    certificate: bytes = field(0, Octets(max_length=MAX_DER_CERT_LENGTH))


@struct
class CSRRequest(Struct):
    csr_nonce: bytes = field(0, Octets())
    is_for_update_noc: bool | None = field(1, BOOL, optional=True)


@struct
class CSRResponse(Struct):
    nocsr_elements: bytes = field(0, Octets(max_length=RESP_MAX))
    attestation_signature: bytes = field(1, Octets(min_length=64, max_length=64))


@struct
class AddNOC(Struct):
    noc_value: bytes = field(0, Octets())
    icac_value: bytes | None = field(1, Octets(), optional=True)
    ipk_value: bytes = field(2, Octets())
    case_admin_subject: int = field(3, UINT64)
    admin_vendor_id: int = field(4, VENDOR_ID)


@struct
class UpdateNOC(Struct):
    noc_value: bytes = field(0, Octets())
    icac_value: bytes | None = field(1, Octets(), optional=True)


@struct
class NOCResponse(Struct):
    status_code: NodeOperationalCertStatusEnum = field(0, STATUS)
    fabric_index: int | None = field(1, FABRIC_INDEX, optional=True)
    debug_text: str | None = field(2, Str(max_length=MAX_DEBUG_TEXT), optional=True)


@struct
class UpdateFabricLabel(Struct):
    label: str = field(0, Str())


@struct
class RemoveFabric(Struct):
    fabric_index: int = field(0, FABRIC_INDEX)


@struct
class AddTrustedRootCertificate(Struct):
    root_ca_certificate: bytes = field(0, Octets())


@struct
class SetVIDVerificationStatement(Struct):
    vendor_id: int | None = field(0, VENDOR_ID, optional=True)
    vid_verification_statement: bytes | None = field(1, Octets(max_length=85), optional=True)
    vvsc: bytes | None = field(2, Octets(max_length=MAX_CERT_LENGTH), optional=True)


@struct
class SignVIDVerificationRequest(Struct):
    fabric_index: int = field(0, FABRIC_INDEX)
    client_challenge: bytes = field(1, Octets(min_length=32, max_length=32))


@struct
class SignVIDVerificationResponse(Struct):
    fabric_index: int = field(0, FABRIC_INDEX)
    fabric_binding_version: int = field(1, UINT8)
    signature: bytes = field(2, Octets())


NOCS = 0x0000
FABRICS = 0x0001
SUPPORTED_FABRICS = 0x0002
COMMISSIONED_FABRICS = 0x0003
TRUSTED_ROOT_CERTIFICATES = 0x0004
CURRENT_FABRIC_INDEX = 0x0005

_A = Privilege.ADMINISTER

CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="OperationalCredentials",
    revision=2,  # 1.4.2: Fabric Table VID verification (provisional commands, not implemented)
    attributes=(
        AttributeDef(
            NOCS, "NOCs", List(StructType(NOCStruct)), read_privilege=_A, fabric_scoped=True, fabric_sensitive=True
        ),
        AttributeDef(FABRICS, "Fabrics", List(StructType(FabricDescriptorStruct)), fabric_scoped=True),
        AttributeDef(SUPPORTED_FABRICS, "SupportedFabrics", UInt(8, 5, 254)),
        AttributeDef(COMMISSIONED_FABRICS, "CommissionedFabrics", UINT8),
        AttributeDef(TRUSTED_ROOT_CERTIFICATES, "TrustedRootCertificates", List(Octets(max_length=MAX_CERT_LENGTH))),
        AttributeDef(CURRENT_FABRIC_INDEX, "CurrentFabricIndex", FABRIC_INDEX),
    ),
    commands=(
        CommandDef(0x00, "AttestationRequest", AttestationRequest, 0x01, AttestationResponse, _A),
        CommandDef(0x02, "CertificateChainRequest", CertificateChainRequest, 0x03, CertificateChainResponse, _A),
        CommandDef(0x04, "CSRRequest", CSRRequest, 0x05, CSRResponse, _A),
        CommandDef(0x06, "AddNOC", AddNOC, 0x08, NOCResponse, _A),
        CommandDef(0x07, "UpdateNOC", UpdateNOC, 0x08, NOCResponse, _A, fabric_scoped=True),
        CommandDef(0x09, "UpdateFabricLabel", UpdateFabricLabel, 0x08, NOCResponse, _A, fabric_scoped=True),
        CommandDef(0x0A, "RemoveFabric", RemoveFabric, 0x08, NOCResponse, _A),
        CommandDef(0x0B, "AddTrustedRootCertificate", AddTrustedRootCertificate, None, None, _A),
        CommandDef(
            0x0C, "SetVIDVerificationStatement", SetVIDVerificationStatement, None, None, _A, fabric_scoped=True
        ),
        CommandDef(
            0x0D, "SignVIDVerificationRequest", SignVIDVerificationRequest, 0x0E, SignVIDVerificationResponse, _A
        ),
    ),
)
