"""RotateGroupKey's phases: what a rotating key set is pushed as (pure; the task engine, ``tasks.py``, gates them).

The matter.js Node Manager's rotation (PR #4213 @ matter-js/matter.js, packages/node-manager/src/tasks/
RotateGroupKey.ts), gap-free and independent of the nodes' clocks:

=============  ==================================================================================================
phase          key set on every member (KeySetWrite, Core spec 11.2.7.1)
=============  ==================================================================================================
0 distribute   EpochKey0 = the old key at its start time S; EpochKey1 = the new key, starting 100 years after the
               rotation began (dormant: every node keeps sending with the old key and accepts both)
1 activate     the old key at S; the new key starting now (never before S); EpochKey2 = a random sentinel key at
               the dormant time, so the rule "send with the epoch key of the second newest start time" (Core spec
               4.17.3.3) picks the new key on every node whatever its clock says
2 cleanup      the key set as GroupKeySetList holds it (the new value given to UpdateKeySet)
=============  ==================================================================================================

A phase begins only once every member committed the previous one, verified afresh (``tasks.py``); once
activated the rotation is forward-only (a node may already send with the new key). The sentinel is a key like any
other (it is stored with the task and never logged); its only purpose is its position.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from clusters.joint_fabric_datastore.schema import GroupKeySet
from jfds_device.codec.schema import NULL

__all__ = ["ACTIVATE", "CLEANUP", "DISTRIBUTE", "PHASES", "activation_data", "phase_content", "start_times"]

DISTRIBUTE, ACTIVATE, CLEANUP = 0, 1, 2
PHASES = ("distribute", "activate", "cleanup")
US = 1_000_000
DORMANT_FOR_US = 100 * 365 * 86_400 * US  # Node Manager: "now + 100 years"


def _dormant_at(data: dict[str, Any]) -> int:
    return int(data["distribute_at_s"]) * US + DORMANT_FOR_US


def activation_data(now_s: int) -> dict[str, Any]:
    """What the activate phase decides once, when it begins (persisted, so a resumed phase pushes the same)."""
    return {"activate_at_s": now_s, "sentinel": os.urandom(16).hex()}


def phase_content(old: GroupKeySet, new: GroupKeySet, phase: int, data: dict[str, Any]) -> GroupKeySet:
    """The key set every member holds in ``phase``; ``old`` and ``new`` are single-epoch
    (``logic_tasks.single_epoch``)."""
    if phase >= CLEANUP:
        return new
    start0: int = old.epoch_start_time0  # type: ignore[assignment]
    dormant = _dormant_at(data)
    if phase == DISTRIBUTE:
        return dataclasses.replace(new, epoch_key0=old.epoch_key0, epoch_start_time0=start0,
                                   epoch_key1=new.epoch_key0, epoch_start_time1=max(dormant, start0 + 1),
                                   epoch_key2=NULL, epoch_start_time2=NULL)
    active_from = max(int(data["activate_at_s"]) * US, start0 + 1)
    return dataclasses.replace(new, epoch_key0=old.epoch_key0, epoch_start_time0=start0,
                               epoch_key1=new.epoch_key0, epoch_start_time1=active_from,
                               epoch_key2=bytes.fromhex(data["sentinel"]),
                               epoch_start_time2=max(dormant, active_from + 1))


def start_times(key_set: GroupKeySet) -> tuple[Any, Any, Any]:
    """What a node shows of a key set (KeySetRead returns no keys, 11.2.7.2): its epoch start times."""
    return key_set.epoch_start_time0, key_set.epoch_start_time1, key_set.epoch_start_time2
