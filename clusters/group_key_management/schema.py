"""Group Key Management cluster 0x003F (Core spec 11.2): every id, enum, struct, attribute and command.

Revision 2 (spec 1.4), FeatureMap 0: the CacheAndSync feature (bit 0, provisional) is not implemented,
so only the TrustFirst security policy is accepted. Field tags follow the CHIP SDK objects
(``chip.clusters.Objects.GroupKeyManagement``, home-assistant-chip-clusters 2025.7.0), which stop at
GroupKeySetStruct tag 7: the provisional GroupKeyMulticastPolicy field (tag 8, 11.2.5.4.9) is not
declared, so a peer sending it is read as the default PerGroupID behaviour (unknown tags are ignored).

Epoch keys (tags 2, 4, 6 of GroupKeySetStruct) are declared without the 16-byte length constraint on
purpose: KeySetWrite (11.2.7.1) orders its checks (a null EpochKey0 is INVALID_COMMAND before any
length is CONSTRAINT_ERROR), so the server checks lengths itself, in that order. Key material is
secret: ``GroupKeySetStruct``'s repr masks the keys.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from jfds_device.codec.model import AttributeDef, ClusterDef, CommandDef, Privilege
from jfds_device.codec.schema import (
    NULL,
    UINT8,
    UINT16,
    UINT64,
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

CLUSTER_ID = 0x003F

# Capacities we guarantee (11.2.6.3, 11.2.6.4; Group Limits, Core spec 2.11.1.2). The spec asks for at
# least one key set per fabric (the IPK) plus what the device types' Groups clusters need (typically 4
# groups, 3 key sets). We offer more so a JF administrator can stage a key rotation per group.
# MaxGroupKeysPerFabric COUNTS THE IPK (TC-GRPKEY-2.2 expects KeySetReadAllIndices to list exactly that
# many ids when full), so 7 key sets can be written next to the IPK.
MAX_GROUPS_PER_FABRIC = 12
MAX_GROUP_KEYS_PER_FABRIC = 8

EPOCH_KEY_LENGTH = 16  # 11.2.5.4.3: EpochKeyN is exactly 16 bytes
IPK_KEY_SET_ID = 0  # Core spec 4.17.3.5.1: key set 0 is the fabric's Identity Protection Key
GROUP_NAME_MAX = 16


class Feature(enum.IntFlag):
    CACHE_AND_SYNC = 0x1  # 11.2.4; not implemented


class GroupKeySecurityPolicyEnum(enum.IntEnum):
    TRUST_FIRST = 0
    CACHE_AND_SYNC = 1


class GroupKeyMulticastPolicyEnum(enum.IntEnum):
    """11.2.5.2 (provisional; the field using it is not declared, see the module docstring)."""

    PER_GROUP_ID = 0
    ALL_NODES = 1


FABRIC_INDEX = UINT8  # any value is accepted on write: the server stamps the accessing fabric
GROUP_ID = UInt(16, 1)  # 0 is the null group id (Core spec 4.17.3.1): CONSTRAINT_ERROR on write
KEY_SET_ID_NOT_IPK = UInt(16, 1)  # 11.2.5.3.2: a map entry SHALL NOT use key set 0 (the IPK)


@struct
class GroupKeyMapStruct(Struct):
    """11.2.5.3. GroupId and GroupKeySetID are fabric-sensitive (access "F")."""

    FABRIC_SENSITIVE: ClassVar[frozenset[int]] = frozenset({1, 2})

    group_id: int = field(1, GROUP_ID)
    group_key_set_id: int = field(2, KEY_SET_ID_NOT_IPK)
    fabric_index: int | None = field(0xFE, FABRIC_INDEX, optional=True)


@struct
class GroupKeySetStruct(Struct):
    """11.2.5.4. Start times are epoch-us (Matter epoch, 2000-01-01). Keys are masked in repr."""

    group_key_set_id: int = field(0, UINT16)
    group_key_security_policy: GroupKeySecurityPolicyEnum = field(1, Enum(GroupKeySecurityPolicyEnum))
    epoch_key0: object = field(2, Octets(), nullable=True)
    epoch_start_time0: object = field(3, UINT64, nullable=True)
    epoch_key1: object = field(4, Octets(), nullable=True)
    epoch_start_time1: object = field(5, UINT64, nullable=True)
    epoch_key2: object = field(6, Octets(), nullable=True)
    epoch_start_time2: object = field(7, UINT64, nullable=True)

    def __repr__(self) -> str:
        # Never print key material (logs, tracebacks, test output): only whether each key is set.
        def key(value: object) -> str:
            return "NULL" if value is NULL else "<redacted>"

        return (
            f"GroupKeySetStruct(group_key_set_id={self.group_key_set_id}, "
            f"group_key_security_policy={self.group_key_security_policy!r}, "
            f"epoch_key0={key(self.epoch_key0)}, epoch_start_time0={self.epoch_start_time0!r}, "
            f"epoch_key1={key(self.epoch_key1)}, epoch_start_time1={self.epoch_start_time1!r}, "
            f"epoch_key2={key(self.epoch_key2)}, epoch_start_time2={self.epoch_start_time2!r})"
        )


@struct
class GroupKeySetWithMulticastPolicy(GroupKeySetStruct):
    """GroupKeySetStruct with the provisional GroupKeyMulticastPolicy (tag 8; not in the CHIP SDK's 2025.7.0
    objects). A client sends it in KeySetWrite only for a policy other than the default PerGroupID: peers that
    predate the field ignore it (unknown tags, Core spec 7.19.1). The server side never stores or reports it."""

    group_key_multicast_policy: GroupKeyMulticastPolicyEnum | None = field(
        8, Enum(GroupKeyMulticastPolicyEnum), optional=True
    )

    def __repr__(self) -> str:
        # Never print key material: the base's redacted form (a dataclass would generate a plain repr here).
        policy = self.group_key_multicast_policy
        return f"{GroupKeySetStruct.__repr__(self)[:-1]}, group_key_multicast_policy={policy!r})"


@struct
class GroupInfoMapStruct(Struct):
    """11.2.5.5. Every field but FabricIndex is fabric-sensitive (access "F")."""

    FABRIC_SENSITIVE: ClassVar[frozenset[int]] = frozenset({1, 2, 3})

    group_id: int = field(1, GROUP_ID)
    endpoints: list[int] = field(2, List(UINT16, min_length=1))
    group_name: str | None = field(3, Str(max_length=GROUP_NAME_MAX), optional=True)
    fabric_index: int | None = field(0xFE, FABRIC_INDEX, optional=True)


# ---------------------------------------------------------------------------------------------- commands


@struct
class KeySetWrite(Struct):
    group_key_set: GroupKeySetStruct = field(0, StructType(GroupKeySetStruct))


@struct
class KeySetRead(Struct):
    group_key_set_id: int = field(0, UINT16)


@struct
class KeySetReadResponse(Struct):
    group_key_set: GroupKeySetStruct = field(0, StructType(GroupKeySetStruct))


@struct
class KeySetRemove(Struct):
    group_key_set_id: int = field(0, UINT16)


@struct
class KeySetReadAllIndices(Struct):
    """No fields (11.2.7.5: field 0 is reserved and SHALL NOT be used)."""


@struct
class KeySetReadAllIndicesResponse(Struct):
    group_key_set_ids: list[int] = field(0, List(UINT16))


# ---------------------------------------------------------------------------------------------- ids

GROUP_KEY_MAP = 0x0000
GROUP_TABLE = 0x0001
MAX_GROUPS_PER_FABRIC_ATTR = 0x0002
MAX_GROUP_KEYS_PER_FABRIC_ATTR = 0x0003

KEY_SET_WRITE = 0x00
KEY_SET_READ = 0x01
KEY_SET_READ_RESPONSE = 0x02
KEY_SET_REMOVE = 0x03
KEY_SET_READ_ALL_INDICES = 0x04
KEY_SET_READ_ALL_INDICES_RESPONSE = 0x05

_A = Privilege.ADMINISTER

CLUSTER = ClusterDef(
    id=CLUSTER_ID,
    name="GroupKeyManagement",
    revision=2,
    attributes=(
        AttributeDef(
            GROUP_KEY_MAP,
            "GroupKeyMap",
            List(StructType(GroupKeyMapStruct)),  # per-fabric MaxGroupsPerFabric: RESOURCE_EXHAUSTED (server)
            writable=True,
            write_privilege=Privilege.MANAGE,  # 11.2.6.1: RW F VM
            fabric_scoped=True,
            fabric_sensitive=True,
            persistent=True,
            default=[],
        ),
        AttributeDef(
            GROUP_TABLE,
            "GroupTable",
            List(StructType(GroupInfoMapStruct)),  # 11.2.6.2: R F V, fed by the Groups clusters
            fabric_scoped=True,
            fabric_sensitive=True,
            persistent=True,
            default=[],
        ),
        AttributeDef(MAX_GROUPS_PER_FABRIC_ATTR, "MaxGroupsPerFabric", UINT16),
        AttributeDef(MAX_GROUP_KEYS_PER_FABRIC_ATTR, "MaxGroupKeysPerFabric", UInt(16, 1)),
    ),
    commands=(
        # 11.2.7: every command is fabric-scoped and needs Administer ("F A"); none is timed.
        CommandDef(KEY_SET_WRITE, "KeySetWrite", KeySetWrite, privilege=_A, fabric_scoped=True),
        CommandDef(
            KEY_SET_READ,
            "KeySetRead",
            KeySetRead,
            response_id=KEY_SET_READ_RESPONSE,
            response=KeySetReadResponse,
            privilege=_A,
            fabric_scoped=True,
        ),
        CommandDef(KEY_SET_REMOVE, "KeySetRemove", KeySetRemove, privilege=_A, fabric_scoped=True),
        CommandDef(
            KEY_SET_READ_ALL_INDICES,
            "KeySetReadAllIndices",
            KeySetReadAllIndices,
            response_id=KEY_SET_READ_ALL_INDICES_RESPONSE,
            response=KeySetReadAllIndicesResponse,
            privilege=_A,
            fabric_scoped=True,
        ),
    ),
)
