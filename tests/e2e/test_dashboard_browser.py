"""The ``--http`` dashboard in a real headless browser (issue 14's acceptance): Debian's Chromium, driven by Selenium
inside the device's network namespace (``browser.py``), opens http://127.0.0.1:8080/ served by jfds-device (run
through ``gated_device`` so the test can hold the reconciler's write of a light's ACL). Two matter.js lights,
commissioned with jfds-device by the CHIP controller; the second light's ACL is full.

* The page lists the managed nodes, and sees the lights reachable once their subscriptions are up.
* A JFDS AddACLToNode by the CHIP controller shows up as Pending while the write is held, then as Committed, with
  no reload: a marker set on ``window`` before is still there after.
* An entry the full light refuses shows as CommitFailed with its status name, RESOURCE_EXHAUSTED.
* RefreshNode from the page's button with the token typed in answers 200 and the node's log shows the refresh
  pass; without the token 401; a page of another origin posting with the token is refused and nothing happens.
* The page keeps to semantic HTML (a language, one h1, labelled inputs, header cells with a scope), names every
  state in words (no colour needed), and does not scroll sideways at a phone's width.
* Screenshots at a desktop and a phone width are saved under ``$JFDS_ARTIFACTS`` (else the test's tmp dir) and
  their paths printed; ``docs/dashboard.png`` in the README is one of them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from jfds_device.web import read_token
from tests.e2e.browser import Browser, missing
from tests.e2e.gated_device import WriteGate
from tests.e2e.reconciler_env import AC, JF, SUCCESS, ReconcilerEnv, reconciler_env, wait_until

pytestmark = [pytest.mark.netns, pytest.mark.interop]

if (reason := missing()) is not None:
    pytest.skip(reason, allow_module_level=True)
pytest.importorskip("chip.clusters", reason="home-assistant-chip-clusters is not installed")
from chip.clusters.Types import NullValue  # noqa: E402

ROOMY, FULL = 2, 3
HTTP = "127.0.0.1:8080"  # the device namespace's own loopback
ACL_PATH = (0, AC.id, AC.Attributes.Acl.attribute_id)
PRIV = JF.Enums.DatastoreAccessControlEntryPrivilegeEnum
MARKER = "set before the change, gone on a reload"

# What the page must keep to, whatever it shows: a list of problems, empty when there are none.
A11Y = """
const problems = [];
if (document.documentElement.lang !== "en") problems.push("no lang on <html>");
if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
if (!document.querySelector("main")) problems.push("no <main>");
for (const input of document.querySelectorAll("input")) {
  if (!input.closest("label") && !(input.id && document.querySelector(`label[for="${input.id}"]`)))
    problems.push("input without a label: " + (input.name || input.id));
}
for (const th of document.querySelectorAll("th")) {
  if (!["col", "row"].includes(th.getAttribute("scope"))) problems.push("th without scope: " + th.textContent);
}
for (const table of document.querySelectorAll("table")) {
  if (!table.querySelector("thead")) problems.push("table without thead");
}
for (const button of document.querySelectorAll("button")) {
  if (!button.textContent.trim()) problems.push("button without text");
}
if (!document.querySelector('meta[name="viewport"]')) problems.push("no viewport meta");
return problems;
"""


def _launcher(tmp: Path) -> tuple[str, ...]:
    return ("-m", "tests.e2e.gated_device", str(tmp / "gate"), f"--http={HTTP}")


def jf_ace(subject: int) -> Any:
    return JF.Structs.DatastoreAccessControlEntryStruct(
        privilege=PRIV.kView, authMode=JF.Enums.DatastoreAccessControlEntryAuthModeEnum.kCase,
        subjects=[subject], targets=NullValue)  # fmt: skip


def list_id(env: ReconcilerEnv, node_id: int, subject: int) -> int:
    [entry] = wait_until(lambda: [e for e in env.entries(JF.Attributes.NodeACLList, nodeID=node_id)
                                  if list(e.ACLEntry.subjects) == [subject]], 10, message="the new ACL entry")
    return int(entry.listID)


def entry_row(node_id: int, key: int) -> str:
    return f'document.querySelector(\'[data-entry="0x{node_id:016X} acl ListID {key}"]\')'


def artifacts(tmp_path: Path) -> Path:
    where = Path(os.environ.get("JFDS_ARTIFACTS") or tmp_path / "artifacts")
    where.mkdir(parents=True, exist_ok=True)
    return where


def test_dashboard_updates_live_in_headless_chromium(tmp_path: Path) -> None:
    with reconciler_env("jfds-e2e-browser-", {ROOMY: {"acl_entries": 16}, FULL: {}},
                        device_launcher=_launcher) as env:  # fmt: skip
        env.commit_node(ROOMY, "roomy lamp")
        env.commit_node(FULL, "full lamp")
        env.fill_acl(FULL)  # matter.js default: 4 entries per fabric; it refuses one more
        gate = WriteGate(env.tmp / "gate")
        browser = Browser(env.net.dev, tmp_path / "browser")
        try:
            browser.get(f"http://{HTTP}/")
            names = "return [...document.querySelectorAll('#nodes tbody tr td:nth-child(2)')].map(td => td.textContent)"
            assert sorted(browser.js(names)) == ["full lamp", "roomy lamp"]
            browser.wait_js("return events.readyState", 1, 10, message="the page's event stream open")
            browser.js(f"window.jfdsMarker = {MARKER!r}")
            reach = "return [...document.querySelectorAll('#nodes td.reachability')].map(td => td.textContent)"
            browser.wait_js(reach, ["reachable", "reachable"], 30, message="both lights reachable, live")

            # Pending while the reconciler's write is held, then Committed: the page follows without a reload.
            gate.arm(ROOMY, ACL_PATH)
            assert env.jfds(JF.Commands.AddACLToNode(nodeID=ROOMY, ACLEntry=jf_ace(0xF200))) == SUCCESS
            roomy = entry_row(ROOMY, list_id(env, ROOMY, 0xF200))
            gate.wait_parked(30)
            browser.wait_js(f"return {roomy}?.dataset.state ?? null", "Pending", 20, message="the new entry Pending")
            assert browser.js(f"return {roomy}.textContent").endswith("Pending")
            gate.release()
            browser.wait_js(f"return {roomy}?.dataset.state ?? null", "Committed", 30,
                            message="the new entry Committed")  # fmt: skip
            assert browser.js("return window.jfdsMarker") == MARKER

            # The full light refuses: CommitFailed with the status by name, still without a reload.
            assert env.jfds(JF.Commands.AddACLToNode(nodeID=FULL, ACLEntry=jf_ace(0xF100))) == SUCCESS
            full = entry_row(FULL, list_id(env, FULL, 0xF100))
            browser.wait_js(f"return {full}?.dataset.state ?? null", "CommitFailed", 30,
                            message="the refused entry CommitFailed")  # fmt: skip
            assert browser.js(f"return {full}.textContent").endswith("CommitFailed: RESOURCE_EXHAUSTED")
            assert "RESOURCE_EXHAUSTED (0x89)" in browser.js("return document.getElementById('failed').textContent")
            assert browser.js("return window.jfdsMarker") == MARKER

            assert browser.js(A11Y) == []
            page_text = browser.js("return document.body.innerText")
            for word in ("Committed", "CommitFailed", "reachable", "Out of step"):
                assert word in page_text  # states are words, not colours
            where = artifacts(tmp_path)
            desktop = browser.screenshot(where / "dashboard.png", 1024)
            phone = browser.screenshot(where / "dashboard-phone.png", 390, mobile=True)
            assert not phone["overflow"], "the page scrolls sideways at a phone's width"
            for shot in (desktop, phone):
                assert Path(shot["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
                print(f"dashboard screenshot: {shot['path']} ({shot['height']} px high)")
            assert browser.js("return window.jfdsMarker") == MARKER

            # RefreshNode from the page: with the token typed in it is done (and the node's log shows the pass),
            # without it 401.
            assert env.device is not None
            refreshes = f"reconcile node=0x{ROOMY:016X} mode=refresh"
            before = env.device.output().count(refreshes)
            click = f"document.querySelector('form[action=\"/api/nodes/0x{ROOMY:X}/refresh\"] button').click()"
            result = "return document.getElementById('result').textContent.slice(0, 3)"
            browser.js(f"document.getElementById('token').value = {read_token(env.device.storage)!r}; {click}")
            browser.wait_js(result, "200", 20, message="the page's refresh answered 200")
            wait_until(lambda: env.device.output().count(refreshes) > before, 20, message="a refresh pass logged")
            browser.js(f"document.getElementById('result').textContent = ''; "
                       f"document.getElementById('token').value = ''; {click}")
            browser.wait_js(result, "401", 20, message="the page's refresh without the token answered 401")

            # A page of another origin (the same server as http://localhost:PORT) posting with the token: refused
            # (its CORS preflight gets 403), and no refresh happens.
            before = env.device.output().count(refreshes)
            browser.get(f"http://localhost:{HTTP.rsplit(':', 1)[1]}/")
            assert browser.js("return [document.title, location.hostname]") == ["jfds-device", "localhost"]
            browser.js(f"window.crossSite = null; fetch('http://{HTTP}/api/nodes/0x{ROOMY:X}/refresh', "
                       f"{{method: 'POST', headers: {{Authorization: 'Bearer {read_token(env.device.storage)}'}}}})"
                       ".then(r => window.crossSite = r.status, () => window.crossSite = 'refused')")
            browser.wait_js("return window.crossSite", "refused", 20, message="the cross-origin POST refused")
            time.sleep(1)
            assert env.device.output().count(refreshes) == before
        finally:
            browser.close()
