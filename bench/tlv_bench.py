"""TLV throughput: an 8192-entry list of JFDS ACL entry structs, ours vs the CHIP SDK's Python TLV.

Run: ``python bench/tlv_bench.py [--entries 8192] [--repeat 5]``. Prints the best of ``repeat`` runs for:
ours with the typed schema (validating both ways), ours as raw TLV, ``chip.tlv`` (TLVWriter / TLVReader),
and, for scale, the SDK's generated objects (``ToTLV`` / ``FromTLV``) on the same data.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from clusters.joint_fabric_datastore import schema as jfds
from jfds_device.codec import schema, tlv

ACL_LIST = schema.List(schema.StructType(jfds.ACLEntry))


def make_entries(n: int) -> list[jfds.ACLEntry]:
    return [
        jfds.ACLEntry(
            node_id=0x1000 + i,
            list_id=i,
            acl_entry=jfds.AccessControlEntry(
                privilege=jfds.AccessControlEntryPrivilege.OPERATE,
                auth_mode=jfds.AccessControlEntryAuthMode.CASE,
                subjects=[0x0102030405060708 + i, 0xFFFFFFFD00010001],
                targets=[jfds.AccessControlTarget(cluster=6, endpoint=1, device_type=schema.NULL)],
            ),
            status_entry=jfds.StatusEntry(state=jfds.DatastoreState.COMMITTED, update_timestamp=780000000 + i),
        )
        for i in range(n)
    ]


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def to_chip_tree(value: Any) -> Any:
    """Our raw TLV tree in chip.tlv's value model (unsigned ints wrapped in ``uint``)."""
    from chip import tlv as chip_tlv

    if type(value) is dict:
        return {k: to_chip_tree(v) for k, v in value.items()}
    if type(value) is list:
        return [to_chip_tree(v) for v in value]
    if type(value) is int:
        return chip_tlv.uint(value)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    entries = make_entries(args.entries)
    tree = ACL_LIST.to_tlv(entries)
    data = tlv.encode(tree)
    rows: list[tuple[str, float, float]] = []

    enc = best_of(args.repeat, lambda: tlv.encode(ACL_LIST.to_tlv(entries)))
    dec = best_of(args.repeat, lambda: ACL_LIST.from_tlv(tlv.decode(data)))
    assert ACL_LIST.from_tlv(tlv.decode(data)) == entries
    rows.append(("jfds_device typed schema", enc, dec))
    rows.append(("jfds_device raw TLV", best_of(args.repeat, lambda: tlv.encode(tree)),
                 best_of(args.repeat, lambda: tlv.decode(data))))

    try:
        from chip import tlv as chip_tlv
        from chip.clusters import Objects
    except ImportError:
        print("chip.tlv not installed (pip install -e '.[test]'): only our figures are printed")
    else:
        chip_tree = to_chip_tree(tree)

        def chip_encode() -> bytes:
            writer = chip_tlv.TLVWriter()
            writer.put(None, chip_tree)
            return bytes(writer.encoding)

        assert chip_encode() == data, "chip.tlv and ours must produce the same bytes"
        rows.append(("chip.tlv (SDK Python TLV)", best_of(args.repeat, chip_encode),
                     best_of(args.repeat, lambda: chip_tlv.TLVReader(data).get())))
        sdk_struct = Objects.JointFabricDatastore.Structs.DatastoreACLEntryStruct
        sdk_items = [sdk_struct.FromTLV(tlv.encode(item)) for item in tree]
        rows.append((
            "chip Objects ToTLV/FromTLV",
            best_of(1, lambda: [s.ToTLV() for s in sdk_items]),
            best_of(1, lambda: [sdk_struct.FromTLV(tlv.encode(item)) for item in tree]),
        ))

    size = len(data)
    print(f"{args.entries} JFDS ACL entries, {size} bytes of TLV, best of {args.repeat}")
    header = ("codec", "encode ms", "enc MB/s", "enc /s", "decode ms", "dec MB/s", "dec /s")
    print("{:30} {:>10} {:>9} {:>10} {:>10} {:>9} {:>10}".format(*header))
    for name, enc_s, dec_s in rows:
        print(
            f"{name:30} {enc_s * 1e3:10.1f} {size / enc_s / 1e6:9.2f} {args.entries / enc_s:10.0f}"
            f" {dec_s * 1e3:10.1f} {size / dec_s / 1e6:9.2f} {args.entries / dec_s:10.0f}"
        )


if __name__ == "__main__":
    main()
