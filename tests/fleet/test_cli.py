"""``python -m jfds_device.fleet``: the start line, ``--list``, and the ``--control`` line protocol, on loopback
(UDP sockets bound to ::1, no DNS-SD)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_fleet_command_fast_provisions_lists_and_answers_control_requests() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "jfds_device.fleet", "--nodes", "4", "--host", "::1", "--base-port", "0",
         "--no-advertise", "--provision", "test-ca", "--first-node-id", "0x200", "--grant", "1", "--acl-entries", "5",
         "--list", "--control"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, text=True)
    try:
        out, err = proc.communicate("\n".join(json.dumps(r) for r in (
            {"op": "describe"}, {"op": "acl", "index": 2}, {"op": "memory"}, {"op": "bogus"}, {"op": "stop"})) + "\n",
            timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("fleet listening: 4 nodes on UDP ports ") and "joined: fast-provisioning 4" in lines[0]
    assert "KiB per node" in lines[0]
    assert [line.split(" joined by ")[1] for line in lines[1:5]] == ["fast-provisioning"] * 4
    assert "node id 0x0000000000000202" in lines[3]
    described = json.loads(lines[5].removeprefix("OK "))
    assert [d["node_id"] for d in described] == [f"0x{0x200 + i:016X}" for i in range(4)]
    assert {d["joined_by"] for d in described} == {"fast-provisioning"}
    acl = json.loads(lines[6].removeprefix("OK "))
    assert [(e["privilege"], e["subjects"]) for e in acl] == [(5, [112233]), (5, [1])]
    assert json.loads(lines[7].removeprefix("OK "))["rss"] > 0
    assert lines[8].startswith("ERR ") and "unknown op" in lines[8]
    assert lines[9] == "OK null"
