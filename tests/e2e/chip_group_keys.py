"""Give the CHIP Python controller a group key set and GroupKeyMap entries of our choosing (runs inside chip_rpc.py).

The Python controller (home-assistant-chip-core 2025.7.0) only offers ``InitGroupTestingData`` (fixed test keys)
and ``SetIpk``. To send a group message with the key set the datastore pushed (and, after UpdateKeySet, its new
keys) we call the controller's own ``chip::Credentials::GroupDataProviderImpl`` directly: its methods are exported
from ``_ChipDeviceCtrl.so``, and ``SessionManager::PrepareMessage`` encrypts an outgoing group message with
``GetGroupDataProvider()->GetKeyContext(fabric, group)`` (connectedhomeip src/transport/SessionManager.cpp), i.e.
the current key of the key set the GroupKeyMap names for the group.

ABI facts this relies on (checked against the wheel's machine code, x86-64 SysV, and at run time by reading the
key set back): every method returns ``CHIP_ERROR`` by hidden pointer (the build has CHIP_CONFIG_ERROR_SOURCE, so
``ChipError`` is {u32 code, const char *file, unsigned line}), then ``this``, then the arguments; ``KeySet`` is
``EpochKey epoch_keys[3]`` ({u64 start_time, u8 key[16]}) followed by u16 keyset_id, u8 policy, u8 num_keys_used
(connectedhomeip src/credentials/GroupDataProvider.h); ``GroupKey`` is {u16 group_id, u16 keyset_id}; a
``ByteSpan`` is {const u8 *data, size_t size}. Every call runs on the CHIP thread (``ChipStack.Call``).
"""

from __future__ import annotations

import ctypes
import platform
from typing import Any

import chip.native

_GET_PROVIDER = "_ZN4chip11Credentials20GetGroupDataProviderEv"
_SET_KEY_SET = ("_ZN4chip11Credentials21GroupDataProviderImpl9SetKeySetEhRKNS_4SpanIKhEERKNS0_17GroupDataProvider"
                "6KeySetE")
_GET_KEY_SET = "_ZN4chip11Credentials21GroupDataProviderImpl9GetKeySetEhtRNS0_17GroupDataProvider6KeySetE"
_SET_GROUP_KEY_AT = "_ZN4chip11Credentials21GroupDataProviderImpl13SetGroupKeyAtEhmRKNS0_17GroupDataProvider8GroupKeyE"
_GET_GROUP_KEY_AT = "_ZN4chip11Credentials21GroupDataProviderImpl13GetGroupKeyAtEhmRNS0_17GroupDataProvider8GroupKeyE"

EPOCH_KEYS_MAX = 3
KEY_LENGTH = 16


class EpochKey(ctypes.Structure):
    _fields_ = [("start_time", ctypes.c_uint64), ("key", ctypes.c_uint8 * KEY_LENGTH)]


class KeySet(ctypes.Structure):
    _fields_ = [("epoch_keys", EpochKey * EPOCH_KEYS_MAX), ("keyset_id", ctypes.c_uint16),
                ("policy", ctypes.c_uint8), ("num_keys_used", ctypes.c_uint8)]


class GroupKey(ctypes.Structure):
    _fields_ = [("group_id", ctypes.c_uint16), ("keyset_id", ctypes.c_uint16)]


class ByteSpan(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]


class ChipErrorOut(ctypes.Structure):
    """Room for the returned ChipError (24 bytes in this build; more is harmless)."""

    _fields_ = [("code", ctypes.c_uint32), ("rest", ctypes.c_uint8 * 60)]


assert ctypes.sizeof(KeySet) == 80 and ctypes.sizeof(GroupKey) == 4


class GroupKeyError(RuntimeError):
    """A GroupDataProvider call returned a CHIP_ERROR other than CHIP_NO_ERROR."""


def _function(name: str, *argtypes: Any) -> Any:
    fn = getattr(chip.native.GetLibraryHandle(), name)
    fn.argtypes = [ctypes.POINTER(ChipErrorOut), ctypes.c_void_p, *argtypes]
    fn.restype = ctypes.c_void_p  # the hidden return pointer, handed back in rax
    return fn


def _provider() -> int:
    fn = getattr(chip.native.GetLibraryHandle(), _GET_PROVIDER)
    fn.argtypes, fn.restype = [], ctypes.c_void_p
    pointer = fn()
    if not pointer:
        raise GroupKeyError("the controller has no GroupDataProvider")
    return pointer


def _check(what: str, err: ChipErrorOut) -> None:
    if err.code != 0:
        raise GroupKeyError(f"{what}: CHIP_ERROR 0x{err.code:08X}")


def _read_key_set(provider: int, fabric_index: int, key_set_id: int) -> KeySet | None:
    out, err = KeySet(), ChipErrorOut()
    _function(_GET_KEY_SET, ctypes.c_uint8, ctypes.c_uint16, ctypes.POINTER(KeySet))(
        ctypes.byref(err), provider, fabric_index, key_set_id, ctypes.byref(out))
    return out if err.code == 0 else None


def _group_key_map(provider: int, fabric_index: int) -> list[tuple[int, int]]:
    get_at = _function(_GET_GROUP_KEY_AT, ctypes.c_uint8, ctypes.c_size_t, ctypes.POINTER(GroupKey))
    entries = []
    while True:
        out, err = GroupKey(), ChipErrorOut()
        get_at(ctypes.byref(err), provider, fabric_index, len(entries), ctypes.byref(out))
        if err.code != 0:  # past the end
            return entries
        entries.append((out.group_id, out.keyset_id))


def install(stack: Any, ctrl: Any, key_set_id: int, epoch_keys: list[tuple[bytes, int]], group_ids: list[int],
            policy: int = 0) -> dict[str, Any]:
    """Write key set ``key_set_id`` (``epoch_keys``: (16-byte key, start time in us), oldest first; ``policy``:
    0 TrustFirst) into the controller's group data for its fabric, and map every group of ``group_ids`` to it
    (an existing GroupKeyMap entry of the group is replaced). Returns what reading back gives (key set id, policy,
    start times, the GroupKeyMap), which the caller may compare with what it asked for."""
    if platform.machine() != "x86_64":  # elsewhere the hidden return pointer is not the first argument (AArch64: x8)
        raise GroupKeyError(f"the GroupDataProvider calls are written for x86-64, not {platform.machine()}")
    if not 1 <= len(epoch_keys) <= EPOCH_KEYS_MAX or any(len(key) != KEY_LENGTH for key, _ in epoch_keys):
        raise ValueError("1 to 3 epoch keys of 16 bytes each")
    fabric_index = ctrl.GetFabricIndexInternal()
    compressed = int(ctrl.GetCompressedFabricId()).to_bytes(8, "big")  # as GetCompressedFabricIdBytes writes it

    def run() -> dict[str, Any]:
        provider = _provider()
        keys = KeySet(keyset_id=key_set_id, policy=policy, num_keys_used=len(epoch_keys))
        for slot, (key, start) in enumerate(epoch_keys):
            keys.epoch_keys[slot].start_time = start
            ctypes.memmove(keys.epoch_keys[slot].key, key, KEY_LENGTH)
        fabric_id = ctypes.create_string_buffer(compressed, len(compressed))
        span = ByteSpan(ctypes.cast(fabric_id, ctypes.c_void_p), len(compressed))
        err = ChipErrorOut()
        _function(_SET_KEY_SET, ctypes.c_uint8, ctypes.POINTER(ByteSpan), ctypes.POINTER(KeySet))(
            ctypes.byref(err), provider, fabric_index, ctypes.byref(span), ctypes.byref(keys))
        _check(f"SetKeySet {key_set_id:#06x}", err)
        set_at = _function(_SET_GROUP_KEY_AT, ctypes.c_uint8, ctypes.c_size_t, ctypes.POINTER(GroupKey))
        for group_id in group_ids:
            mapped = [g for g, _ in _group_key_map(provider, fabric_index)]
            index = mapped.index(group_id) if group_id in mapped else len(mapped)
            err = ChipErrorOut()
            set_at(ctypes.byref(err), provider, fabric_index, index,
                   ctypes.byref(GroupKey(group_id=group_id, keyset_id=key_set_id)))
            _check(f"SetGroupKeyAt {index} ({group_id:#06x} -> {key_set_id:#06x})", err)
        back = _read_key_set(provider, fabric_index, key_set_id)
        if back is None:
            raise GroupKeyError(f"key set {key_set_id:#06x} not found after SetKeySet")
        return {
            "key_set_id": back.keyset_id, "policy": back.policy,
            "start_times": [back.epoch_keys[i].start_time for i in range(back.num_keys_used)],
            "group_key_map": _group_key_map(provider, fabric_index),
        }

    return stack.Call(run)
