"""datamodel.acl: the access check as tables (Core spec 6.6)."""

from __future__ import annotations

import pytest

from jfds_device.codec.model import AuthMode, Privilege
from jfds_device.datamodel import acl
from jfds_device.datamodel.acl import AclEntry, AclTarget, cat_subject
from jfds_device.errors import ActionError
from jfds_device.im.provider import SubjectDescriptor

V, PV, OP, M, A = Privilege.VIEW, Privilege.PROXY_VIEW, Privilege.OPERATE, Privilege.MANAGE, Privilege.ADMINISTER
NODE = 0x0000_0000_0001_0001
OTHER_NODE = 0x0000_0000_0001_0002


def case(node: int = NODE, fabric: int = 1, cats: tuple[int, ...] = ()) -> SubjectDescriptor:
    return SubjectDescriptor(AuthMode.CASE, node, fabric, cats)


# (held, requested, granted): Core spec 6.6.2.2 privilege granting.
INHERITANCE = [
    (A, A, True), (A, M, True), (A, OP, True), (A, V, True), (A, PV, True),
    (M, M, True), (M, OP, True), (M, V, True), (M, PV, False), (M, A, False),
    (OP, OP, True), (OP, V, True), (OP, PV, False), (OP, M, False),
    (PV, PV, True), (PV, V, True), (PV, OP, False),
    (V, V, True), (V, PV, False), (V, OP, False),
]  # fmt: skip


@pytest.mark.parametrize(("held", "requested", "granted"), INHERITANCE)
def test_privilege_inheritance(held: Privilege, requested: Privilege, granted: bool) -> None:
    assert acl.privilege_grants(held, requested) is granted
    entry = AclEntry(1, held, AuthMode.CASE, (NODE,))
    assert acl.check([entry], case(), 0, 6, requested) is granted


def test_pase_commissioning_has_implicit_administer() -> None:
    pase = SubjectDescriptor(AuthMode.PASE, 0, 0, is_commissioning=True)
    assert acl.check([], pase, 0, 0x3E, A)
    # A PASE session that is not commissioning has no access at all, and PASE entries never match.
    plain = SubjectDescriptor(AuthMode.PASE, 0, 1)
    assert not acl.check([AclEntry(1, A, AuthMode.PASE)], plain, 0, 0x3E, V)


def test_no_entries_no_access() -> None:
    assert not acl.check([], case(), 0, 0x28, V)


def test_entries_are_per_fabric() -> None:
    entry = AclEntry(2, A, AuthMode.CASE, (NODE,))
    assert not acl.check([entry], case(fabric=1), 0, 0x28, V)
    assert acl.check([entry], case(fabric=2), 0, 0x28, V)
    assert not acl.check([AclEntry(0, A, AuthMode.CASE)], case(fabric=0), 0, 0x28, V)


def test_auth_mode_must_match() -> None:
    group = SubjectDescriptor(AuthMode.GROUP, 0x0101, 1)
    assert not acl.check([AclEntry(1, OP, AuthMode.CASE)], group, 1, 6, OP)
    assert acl.check([AclEntry(1, OP, AuthMode.GROUP, (0x0101,))], group, 1, 6, OP)
    assert not acl.check([AclEntry(1, OP, AuthMode.GROUP, (0x0102,))], group, 1, 6, OP)


def test_empty_subjects_match_every_subject_of_the_mode() -> None:
    entry = AclEntry(1, V, AuthMode.CASE)
    assert acl.check([entry], case(OTHER_NODE), 0, 0x28, V)


def test_node_id_subject() -> None:
    entry = AclEntry(1, OP, AuthMode.CASE, (OTHER_NODE, NODE))
    assert acl.check([entry], case(NODE), 1, 6, OP)
    assert not acl.check([entry], case(0x0000_0000_0001_0003), 1, 6, OP)


# (entry CAT (id, version), session CATs, match): Core spec 6.6.2.1.2.
CAT_CASES = [
    ((0xABCD, 2), (0xABCD_0002,), True),  # equal version
    ((0xABCD, 2), (0xABCD_0003,), True),  # newer version in the NOC
    ((0xABCD, 2), (0xABCD_0001,), False),  # older version
    ((0xABCD, 2), (0xABCE_0002,), False),  # other identifier
    ((0xABCD, 2), (0x1111_0001, 0xABCD_0005), True),  # any of up to three CATs
    ((0xABCD, 0), (0xABCD_0000,), False),  # version 0 is invalid
    ((0xABCD, 2), (), False),
]


@pytest.mark.parametrize(("entry_cat", "session_cats", "match"), CAT_CASES)
def test_cat_subjects(entry_cat: tuple[int, int], session_cats: tuple[int, ...], match: bool) -> None:
    subject = cat_subject(*entry_cat)
    assert subject >> 32 == 0xFFFF_FFFD
    entry = AclEntry(1, M, AuthMode.CASE, (subject,))
    assert acl.check([entry], case(cats=session_cats), 1, 6, OP) is match


def test_cat_subject_is_not_a_node_id_match() -> None:
    subject = cat_subject(0x0001, 1)
    entry = AclEntry(1, A, AuthMode.CASE, (subject,))
    # A node whose id equals the CAT subject value still needs the CAT in its NOC.
    assert not acl.check([entry], case(node=subject), 0, 0x28, V)


# (targets, endpoint, cluster, device types on endpoint, match)
TARGET_CASES = [
    ((), 1, 6, (), True),
    ((AclTarget(cluster=6),), 1, 6, (), True),
    ((AclTarget(cluster=6),), 1, 8, (), False),
    ((AclTarget(endpoint=1),), 1, 8, (), True),
    ((AclTarget(endpoint=1),), 2, 8, (), False),
    ((AclTarget(cluster=6, endpoint=1),), 1, 6, (), True),
    ((AclTarget(cluster=6, endpoint=1),), 2, 6, (), False),
    ((AclTarget(device_type=0x0100),), 1, 6, (0x0100,), True),
    ((AclTarget(device_type=0x0100),), 1, 6, (0x0101,), False),
    ((AclTarget(cluster=8, device_type=0x0100),), 1, 6, (0x0100,), False),
    ((AclTarget(cluster=8), AclTarget(endpoint=1)), 1, 6, (), True),  # any target suffices
]


@pytest.mark.parametrize(("targets", "endpoint", "cluster", "device_types", "match"), TARGET_CASES)
def test_targets(
    targets: tuple[AclTarget, ...], endpoint: int, cluster: int, device_types: tuple[int, ...], match: bool
) -> None:
    entry = AclEntry(1, OP, AuthMode.CASE, (NODE,), targets)
    assert acl.check([entry], case(), endpoint, cluster, OP, device_types) is match


def test_any_entry_grants() -> None:
    entries = [
        AclEntry(1, V, AuthMode.CASE, (NODE,)),
        AclEntry(1, OP, AuthMode.CASE, (NODE,), (AclTarget(endpoint=1),)),
    ]
    assert acl.check(entries, case(), 0, 0x28, V)
    assert not acl.check(entries, case(), 0, 0x28, OP)
    assert acl.check(entries, case(), 1, 6, OP)


@pytest.mark.parametrize(
    ("mode", "subject", "valid"),
    [
        (AuthMode.CASE, 0x0000_0000_0000_0001, True),
        (AuthMode.CASE, 0xFFFF_FFEF_FFFF_FFFF, True),
        (AuthMode.CASE, 0x0000_0000_0000_0000, False),
        (AuthMode.CASE, 0xFFFF_FFFB_0000_0001, False),  # PAKE key id range
        (AuthMode.CASE, 0xFFFF_FFFD_0001_0001, True),  # CAT
        (AuthMode.CASE, 0xFFFF_FFFD_0001_0000, False),  # CAT version 0
        (AuthMode.GROUP, 0x0001, True),
        (AuthMode.GROUP, 0xFFFF, True),
        (AuthMode.GROUP, 0x0000, False),
        (AuthMode.GROUP, 0x1_0000, False),
        (AuthMode.PASE, 0, False),
    ],
)
def test_subject_validity(mode: AuthMode, subject: int, valid: bool) -> None:
    assert acl.is_valid_subject(mode, subject) is valid


@pytest.mark.parametrize(
    ("cluster", "valid"),
    [(0x0006, True), (0x7FFF, True), (0x8000, False), (0xFFF1_FC00, True), (0xFFF1_FFFF, False), (0xFFFF_0006, False)],
)
def test_cluster_id_validity(cluster: int, valid: bool) -> None:
    assert acl.is_valid_cluster_id(cluster) is valid


@pytest.mark.parametrize(("device_type", "valid"), [(0x0016, True), (0xBFFF, True), (0xC000, False)])
def test_device_type_validity(device_type: int, valid: bool) -> None:
    assert acl.is_valid_device_type_id(device_type) is valid


# ---------------------------------------------------------------------------------------------- validate_acl_entry

CAT_1_1 = cat_subject(0x0001, 0x0001)
VALIDATION = [  # (privilege, auth mode, subjects, targets, limits, status or None)
    (A, AuthMode.CASE, [NODE], [], {}, None),
    (V, AuthMode.CASE, [NODE, CAT_1_1], [AclTarget(cluster=0x0006)], {}, None),
    (OP, AuthMode.GROUP, [0x0101], [AclTarget(endpoint=1)], {}, None),
    (V, AuthMode.PASE, [], [], {}, 0x87),  # implicit only (Core spec 6.6.2.9)
    (A, AuthMode.GROUP, [0x0101], [], {}, 0x87),  # a group cannot administer
    (V, AuthMode.CASE, [0], [], {}, 0x87),  # not an operational node id
    (V, AuthMode.CASE, [cat_subject(0x0001, 0)], [], {}, 0x87),  # CAT version 0
    (V, AuthMode.GROUP, [0], [], {}, 0x87),  # group id 0
    (V, AuthMode.CASE, [NODE], [AclTarget()], {}, 0x87),  # a target with no field
    (V, AuthMode.CASE, [NODE], [AclTarget(endpoint=1, device_type=0x0100)], {}, 0x87),  # exclusive fields
    (V, AuthMode.CASE, [NODE], [AclTarget(endpoint=0xFFFF)], {}, 0x87),  # the wildcard endpoint
    (V, AuthMode.CASE, [NODE], [AclTarget(cluster=0xFFFF_0006)], {}, 0x87),  # invalid prefix
    (V, AuthMode.CASE, [NODE], [None], {}, 0x87),  # a target that did not decode
    (V, AuthMode.CASE, [NODE, OTHER_NODE], [], {"max_subjects": 1}, 0x89),
    (V, AuthMode.CASE, [NODE], [AclTarget(cluster=6), AclTarget(cluster=8)], {"max_targets": 1}, 0x89),
    (V, AuthMode.CASE, [NODE, OTHER_NODE], [AclTarget(cluster=6)], {"max_subjects": 2, "max_targets": 1}, None),
]


@pytest.mark.parametrize(("privilege", "auth_mode", "subjects", "targets", "limits", "status"), VALIDATION)
def test_validate_acl_entry(privilege: Privilege, auth_mode: AuthMode, subjects: list[int],
                            targets: list[AclTarget | None], limits: dict[str, int], status: int | None) -> None:
    """The one rule set AccessControl and the JFDS apply to an entry (Core spec 9.10.5)."""
    if status is None:
        acl.validate_acl_entry(privilege, auth_mode, subjects, targets, **limits)
        acl.validate_acl_entry(int(privilege), int(auth_mode), subjects, targets, **limits)  # plain ints too
        return
    with pytest.raises(ActionError) as refused:
        acl.validate_acl_entry(privilege, auth_mode, subjects, targets, **limits)
    assert refused.value.status == status
