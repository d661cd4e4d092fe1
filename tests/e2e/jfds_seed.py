"""Seed a stopped device's datastore directly (for large-list reads that would take minutes to build by invoke)."""

from __future__ import annotations

from pathlib import Path

from clusters.joint_fabric_datastore import schema as jfds
from jfds_device.codec.schema import NULL
from jfds_device.datastore.jfds import JfdsStore
from jfds_device.datastore.sqlite import Database


def seed_acl_entries(state_dir: Path, node_id: int, count: int) -> None:
    db = Database(state_dir / "jfds.sqlite3")
    try:
        store = JfdsStore(db)
        with db.transaction():
            if store.node(node_id) is None:
                store.add_node(node_id, "bulk")
            for i in range(count):
                store.add_acl(node_id, jfds.AccessControlEntry(
                    privilege=jfds.AccessControlEntryPrivilege.VIEW,
                    auth_mode=jfds.AccessControlEntryAuthMode.CASE,
                    subjects=[0x1_0000 + i],
                    targets=NULL,
                ))
    finally:
        db.close()
