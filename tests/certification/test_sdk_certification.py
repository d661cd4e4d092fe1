"""The CHIP SDK's own Python certification tests against jfds-device, one pytest case per test case (TC).

The harness is connectedhomeip `src/python_testing` (mobly, `chip.testing`) at commit 06523c22640c, the commit
home-assistant-chip-core 2025.7.0 was built from, with its runner; it lives beside the repository in
`../shared/certtests` (set up by `.ci/run` with its `setup.sh`) and is used from there, never copied. The runner
starts jfds-device in a network namespace of its own per test line, runs the script from a second namespace with
the harness's own on-network commissioning, then stops the device by pid and deletes the namespaces.

Every test line runs in its own runner process, several at once (the CADMIN scripts mostly wait out 180 s
commissioning windows), in one session fixture; each TC is then its own pytest case. A TC in KNOWN_FAILING is a
strict xfail with its reason: once it passes, its case fails until the entry is removed.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CERTTESTS = REPO.parent / "shared" / "certtests"
CT_VENV = Path(os.environ.get("CT_VENV", Path.home() / ".cache" / "jfds-certtests" / "venv"))
PARALLEL = 6
# A comma-separated list of labels runs only those lines (local runs); the other cases are skipped.
ONLY = {label for label in os.environ.get("JFDS_CERTTESTS_ONLY", "").split(",") if label}
# The runner's result lines: "RESULT   LABEL RECORD SECONDSs DETAILS".
RESULT_LINE = re.compile(r"^(PASS|FAIL|ERROR|SKIP|NO RESULT)\s+(\S+)\s+(\S+)\s+[\d.]+s ?(.*)$")

# Test lines (the runner's syntax: LABEL [SCRIPT.py] [args] [timeout=N]); PIXITs as in the harness's own lists.
ACE_1_4_PIXITS = (
    "--int-arg PIXIT.ACE.APPENDPOINT:1 --int-arg PIXIT.ACE.APPDEVTYPEID:0x0130 "
    "--string-arg PIXIT.ACE.APPCLUSTER:JointFabricDatastore --string-arg PIXIT.ACE.APPATTRIBUTE:ClusterRevision"
)
TEST_LINES = [
    "TC_DeviceBasicComposition  timeout=300",
    "TC_DeviceConformance  timeout=300",
    "TC_DeviceConformance:provisional  TC_DeviceConformance.py --bool-arg ignore_in_progress:True "
    "allow_provisional:True  timeout=300",
    "TC_ACE_1_2", "TC_ACE_1_3", f"TC_ACE_1_4  {ACE_1_4_PIXITS}", "TC_ACE_1_5",
    "TC_ACL_2_2  --endpoint 0", "TC_ACL_2_4  --endpoint 0", "TC_ACL_2_6  --endpoint 0", "TC_ACL_2_8  --endpoint 0",
    "TC_IDM_4_2", "TC_SC_3_4", "TC_SC_3_6  timeout=900", "TC_SC_4_3",
    "TC_OPCREDS_3_1", "TC_OPCREDS_3_2", "TC_OPCREDS_3_4", "TC_OPCREDS_3_5",
    "TC_CADMIN_1_3_4  --endpoint 0", "TC_CADMIN_1_5", "TC_CADMIN_1_9", "TC_CADMIN_1_11", "TC_CADMIN_1_15",
    "TC_CADMIN_1_19", "TC_CADMIN_1_22",
    # A 1 s fail-safe PIXIT goes with the SDK CI's path (PICS_SDK_CI_ONLY): its step 43 then expires the fail-safe
    # on purpose; the certification path instead waits out MaxCumulativeFailsafeSeconds (900 s) with PIXIT = 900.
    "TC_CGEN_2_2  --int-arg PIXIT.CGEN.FailsafeExpiryLengthSeconds:1 --PICS {pics_ci}  timeout=900",
    "TC_CGEN_2_4",
    "TC_CNET_1_4",
    # The CD's test vendor 0xFFF1 is accepted only with PICS_SDK_CI_ONLY (the runner's {pics_ci}).
    "TC_DA_1_2:testvid  TC_DA_1_2.py --string-arg cd_cert_dir:{cd_certs} --PICS {pics_ci}", "TC_DA_1_5",
    "TC_DGGEN_2_4",
]  # fmt: skip

# TCs that fail for a known, open reason, as strict xfails: {record: reason}. None today.
KNOWN_FAILING: dict[str, str] = {}
# Every record the lines above produce: (label, record). Commissioning is a record of its own in each line.
EXPECTED_RECORDS = [
    ("TC_DeviceBasicComposition", r)
    for r in ("test_TC_DESC_2_1", "test_TC_DESC_2_2", "test_TC_DT_1_1", "test_TC_IDM_10_1", "test_TC_IDM_11_1",
              "test_TC_IDM_12_1", "test_TC_PS_3_1", "test_TC_SM_1_1", "test_TC_SM_1_2")
] + [
    ("TC_DeviceConformance", r)
    for r in ("test_TC_DESC_2_3", "test_TC_IDM_10_3", "test_TC_IDM_10_5", "test_TC_IDM_10_6")
] + [("TC_DeviceConformance:provisional", "test_TC_IDM_10_2")] + [
    (label, f"test_{label}")
    for label in ("TC_ACE_1_2", "TC_ACE_1_3", "TC_ACE_1_4", "TC_ACE_1_5", "TC_ACL_2_2", "TC_ACL_2_4", "TC_ACL_2_6",
                  "TC_ACL_2_8", "TC_IDM_4_2", "TC_SC_3_4", "TC_SC_3_6", "TC_SC_4_3", "TC_OPCREDS_3_1",
                  "TC_OPCREDS_3_2", "TC_OPCREDS_3_4", "TC_OPCREDS_3_5", "TC_CADMIN_1_5", "TC_CADMIN_1_9",
                  "TC_CADMIN_1_11", "TC_CADMIN_1_15", "TC_CADMIN_1_19", "TC_CADMIN_1_22", "TC_CGEN_2_2",
                  "TC_CGEN_2_4", "TC_CNET_1_4", "TC_DA_1_5", "TC_DGGEN_2_4")
] + [("TC_CADMIN_1_3_4", "test_TC_CADMIN_1_3"), ("TC_CADMIN_1_3_4", "test_TC_CADMIN_1_4"),
     ("TC_DA_1_2:testvid", "test_TC_DA_1_2")]  # fmt: skip

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.certification]


def _require_harness() -> None:
    if not (CERTTESTS / "run.sh").is_file():
        pytest.skip(f"the CHIP SDK cert-test harness is not at {CERTTESTS}")
    if not (CT_VENV / "bin" / "python").is_file():
        pytest.skip(f"the cert-test venv is not set up at {CT_VENV} (run {CERTTESTS / 'setup.sh'})")
    if os.geteuid() != 0:
        pytest.skip("the cert-test runner needs root to create network namespaces")


def _run_line(index: int, line: str, out: Path) -> list[tuple[str, str, str, str]]:
    """One test line through the harness's runner; its result records (result, label, record, details)."""
    device = f"{shlex.quote(sys.executable)} -m jfds_device run --storage {{storage}} --interface {{iface}}"
    cmd = ["bash", str(CERTTESTS / "run.sh"), "--device-cmd", device, "--prefix", f"jct{os.getpid() % 1000}x{index}",
           "--out", str(out / f"line{index}"), "--pics", str(CERTTESTS / "jfds-device.pics.txt"), line]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=1200, check=False)
    (out / f"line{index}.txt").write_text(done.stdout + done.stderr)
    return [m.groups() for m in map(RESULT_LINE.match, done.stdout.splitlines()) if m]  # type: ignore[misc]


@pytest.fixture(scope="module")
def certification_results() -> Iterator[dict[tuple[str, str], tuple[str, str]]]:
    _require_harness()
    with tempfile.TemporaryDirectory(prefix="jfds-certtests-") as tmp:
        out = Path(tmp)
        lines = [(i, line) for i, line in enumerate(TEST_LINES) if not ONLY or line.split()[0] in ONLY]
        with ThreadPoolExecutor(PARALLEL) as pool:
            runs = list(pool.map(lambda item: _run_line(item[0], item[1], out), lines))
        results = {(label, record): (result, details) for records in runs for result, label, record, details in records}
        keep = os.environ.get("JFDS_CERTTESTS_OUT")
        if keep:  # keep the harness's logs (test.log, device.log per line) for a look after the run
            subprocess.run(["cp", "-r", f"{out}/.", keep], check=False)
        yield results


@pytest.mark.parametrize(("label", "record"), EXPECTED_RECORDS, ids=[f"{lbl}-{rec}" for lbl, rec in EXPECTED_RECORDS])
def test_certification(certification_results: dict[tuple[str, str], tuple[str, str]], label: str,
                       record: str) -> None:
    if ONLY and label not in ONLY:
        pytest.skip(f"JFDS_CERTTESTS_ONLY leaves {label} out")
    commissioning = certification_results.get((label, "test_run_commissioning"))
    assert commissioning is not None and commissioning[0] == "PASS", f"{label}: commissioning {commissioning}"
    result, details = certification_results.get((label, record), ("NO RESULT", "the runner reported nothing"))
    if record in KNOWN_FAILING:
        if result == "PASS":
            pytest.fail(f"{record} passes now: remove it from KNOWN_FAILING ({KNOWN_FAILING[record]})")
        pytest.xfail(f"{KNOWN_FAILING[record]}: {result} {details}")
    assert result == "PASS", f"{label} {record}: {result} {details}"
