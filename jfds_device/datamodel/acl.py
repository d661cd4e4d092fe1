"""The access-control check (Core spec 6.6) as pure functions over ACL entries and a subject descriptor.

The AccessControl cluster stores the entries; the node converts them to ``AclEntry`` values and asks
``check()``. Nothing here does I/O or keeps state, so the rules are tested as tables.

Rules implemented (Core spec 6.6.2, 6.6.5, 6.6.6):

* privileges inherit: Administer > Manage > Operate > View, and Administer > ProxyView > View;
* a PASE session opened for commissioning holds an implicit Administer entry (6.6.2.9), nothing else does;
* an entry applies only to subjects of its fabric and its auth mode;
* CASE subjects match by operational node id, or by CASE Authenticated Tag: same identifier, and the
  session's CAT version at least the entry's (6.6.2.1.2);
* Group subjects match by group id;
* no subjects = every subject of that auth mode on that fabric; no targets = every target;
* a target matches when each of its non-null fields (cluster, endpoint, device type) matches.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.errors import ActionError, Status
from jfds_device.im.provider import SubjectDescriptor

__all__ = [
    "CAT_SUBJECT_PREFIX",
    "AclEntry",
    "AclTarget",
    "cat_subject",
    "check",
    "granted_privileges",
    "is_cat_subject",
    "is_group_subject",
    "is_operational_node_id",
    "is_valid_cluster_id",
    "is_valid_device_type_id",
    "is_valid_subject",
    "privilege_grants",
    "subject_matches",
    "target_matches",
    "valid_target",
    "validate_acl_entry",
]

# Subject ids (Core spec 2.5.5, 6.6.2.1.2): operational node ids, then CAT subjects 0xFFFFFFFD_IIII_VVVV.
MIN_OPERATIONAL_NODE_ID = 0x0000_0000_0000_0001
MAX_OPERATIONAL_NODE_ID = 0xFFFF_FFEF_FFFF_FFFF
CAT_SUBJECT_PREFIX = 0xFFFF_FFFD_0000_0000
MAX_GROUP_ID = 0xFFFF
MAX_ENDPOINT = 0xFFFE  # endpoint-no values are 0..0xFFFE; 0xFFFF is reserved for wildcards

# Which privileges each privilege also grants (Core spec 6.6.2.2, "Privilege Granting").
_GRANTS: dict[Privilege, frozenset[Privilege]] = {
    Privilege.VIEW: frozenset({Privilege.VIEW}),
    Privilege.PROXY_VIEW: frozenset({Privilege.PROXY_VIEW, Privilege.VIEW}),
    Privilege.OPERATE: frozenset({Privilege.OPERATE, Privilege.VIEW}),
    Privilege.MANAGE: frozenset({Privilege.MANAGE, Privilege.OPERATE, Privilege.VIEW}),
    Privilege.ADMINISTER: frozenset(Privilege),
}


@dataclass(frozen=True, slots=True)
class AclTarget:
    """One target of an entry; ``None`` fields are wildcards. Endpoint and device type are exclusive."""

    cluster: int | None = None
    endpoint: int | None = None
    device_type: int | None = None


@dataclass(frozen=True, slots=True)
class AclEntry:
    """One access control entry of one fabric (the AccessControlEntryStruct without its encoding)."""

    fabric_index: int
    privilege: Privilege
    auth_mode: AuthMode
    subjects: tuple[int, ...] = ()
    targets: tuple[AclTarget, ...] = ()


def privilege_grants(held: Privilege, requested: Privilege) -> bool:
    """Whether holding ``held`` satisfies a request for ``requested``."""
    return requested in _GRANTS[held]


def granted_privileges(held: Privilege) -> frozenset[Privilege]:
    return _GRANTS[held]


def cat_subject(identifier: int, version: int) -> int:
    """The 64-bit ACL subject for CAT ``identifier``/``version``."""
    return CAT_SUBJECT_PREFIX | (identifier & 0xFFFF) << 16 | (version & 0xFFFF)


def is_cat_subject(subject: int) -> bool:
    return subject >> 32 == CAT_SUBJECT_PREFIX >> 32


def is_operational_node_id(subject: int) -> bool:
    return MIN_OPERATIONAL_NODE_ID <= subject <= MAX_OPERATIONAL_NODE_ID


def is_group_subject(subject: int) -> bool:
    return 1 <= subject <= MAX_GROUP_ID


def is_valid_subject(auth_mode: AuthMode, subject: int) -> bool:
    """Subject validity per auth mode (Core spec 9.10.5.4): a CAT version of 0 is never valid."""
    if auth_mode is AuthMode.CASE:
        return is_operational_node_id(subject) or (is_cat_subject(subject) and subject & 0xFFFF != 0)
    if auth_mode is AuthMode.GROUP:
        return is_group_subject(subject)
    return False  # PASE entries are implicit only and cannot be stored (Core spec 6.6.2.9)


def is_valid_cluster_id(cluster: int) -> bool:
    """Standard (0x0000..0x7FFF) or manufacturer (0xFC00..0xFFFE) cluster suffix under a valid prefix."""
    prefix, suffix = cluster >> 16, cluster & 0xFFFF
    return 0 <= cluster <= 0xFFFF_FFFF and prefix != 0xFFFF and (suffix <= 0x7FFF or 0xFC00 <= suffix <= 0xFFFE)


def is_valid_device_type_id(device_type: int) -> bool:
    prefix, suffix = device_type >> 16, device_type & 0xFFFF
    return 0 <= device_type <= 0xFFFF_FFFF and prefix != 0xFFFF and suffix <= 0xBFFF


def valid_target(target: AclTarget) -> bool:
    """AccessControlTargetStruct rules (Core spec 9.10.4.4): at least one field, endpoint and device type
    exclusive, each id valid."""
    cluster, endpoint, device_type = target.cluster, target.endpoint, target.device_type
    if cluster is None and endpoint is None and device_type is None:
        return False
    if endpoint is not None and (device_type is not None or endpoint > MAX_ENDPOINT):
        return False
    if cluster is not None and not is_valid_cluster_id(cluster):
        return False
    return device_type is None or is_valid_device_type_id(device_type)


def validate_acl_entry(
    privilege: int,
    auth_mode: int,
    subjects: Sequence[int],
    targets: Sequence[AclTarget | None],
    *,
    max_subjects: int | None = None,
    max_targets: int | None = None,
) -> None:
    """The rules AccessControl applies to an entry written to it (Core spec 9.10.5.3, 9.10.5.4), for the
    AccessControl cluster and for the JFDS, which refuses up front what a node would refuse (README, deliberate
    difference 5). ``ActionError``: CONSTRAINT_ERROR for an invalid entry, RESOURCE_EXHAUSTED past the node's
    capacities (``max_subjects`` / ``max_targets``, unchecked when None). A None target is one that did not
    decode as an AccessControlTargetStruct."""
    mode = AuthMode(auth_mode)
    if mode is AuthMode.PASE:
        raise ActionError(Status.CONSTRAINT_ERROR, message="PASE entries are implicit only (Core spec 6.6.2.9)")
    if mode is AuthMode.GROUP and privilege == Privilege.ADMINISTER:
        raise ActionError(Status.CONSTRAINT_ERROR, message="a Group entry cannot grant Administer")
    if max_subjects is not None and len(subjects) > max_subjects:
        raise ActionError(Status.RESOURCE_EXHAUSTED, message="too many subjects")
    for subject in subjects:
        if not is_valid_subject(mode, int(subject)):
            raise ActionError(Status.CONSTRAINT_ERROR, message=f"subject 0x{subject:X} is invalid for {mode.name}")
    if max_targets is not None and len(targets) > max_targets:
        raise ActionError(Status.RESOURCE_EXHAUSTED, message="too many targets")
    for target in targets:
        if target is None or not valid_target(target):
            raise ActionError(Status.CONSTRAINT_ERROR, message=f"invalid ACL target {target!r}")


def _cat_matches(entry_subject: int, cats: Iterable[int]) -> bool:
    identifier, version = (entry_subject >> 16) & 0xFFFF, entry_subject & 0xFFFF
    # A CAT with version 0 is malformed (Core spec 6.6.2.1.2) and never matches.
    return any(cat >> 16 == identifier and 0 < version <= cat & 0xFFFF for cat in cats)


def subject_matches(entry: AclEntry, subject: SubjectDescriptor) -> bool:
    """Fabric, auth mode and subject list of ``entry`` against the requester."""
    if subject.fabric_index == 0 or entry.fabric_index != subject.fabric_index:
        return False
    if entry.auth_mode != subject.auth_mode or subject.auth_mode is AuthMode.PASE:
        return False
    if not entry.subjects:
        return True
    for value in entry.subjects:
        if subject.auth_mode is AuthMode.CASE and is_cat_subject(value):
            if _cat_matches(value, subject.cats):
                return True
        elif value == subject.subject:
            return True
    return False


def target_matches(entry: AclEntry, endpoint: int, cluster: int, device_types: Collection[int] = ()) -> bool:
    if not entry.targets:
        return True
    for target in entry.targets:
        if target.cluster is not None and target.cluster != cluster:
            continue
        if target.endpoint is not None and target.endpoint != endpoint:
            continue
        if target.device_type is not None and target.device_type not in device_types:
            continue
        return True
    return False


def check(
    entries: Iterable[AclEntry],
    subject: SubjectDescriptor,
    endpoint: int,
    cluster: int,
    privilege: Privilege,
    device_types: Collection[int] = (),
) -> bool:
    """Whether ``subject`` may act at ``privilege`` on ``endpoint``/``cluster`` (Core spec 6.6.6).

    ``device_types`` are the device type ids on ``endpoint`` (for device-type targets).
    """
    if subject.auth_mode is AuthMode.PASE:
        # The implicit commissioning entry (6.6.2.9); a PASE session has no other way in.
        return subject.is_commissioning
    for entry in entries:
        if (
            privilege_grants(entry.privilege, privilege)
            and subject_matches(entry, subject)
            and target_matches(entry, endpoint, cluster, device_types)
        ):
            return True
    return False
