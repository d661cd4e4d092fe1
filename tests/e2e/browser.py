"""Debian's headless Chromium, driven by Selenium inside a test's network namespace (test support).

The dashboard listens on the device namespace's own loopback, so the browser must run in that namespace:
``Browser(netns, workdir)`` starts ``ip netns exec NETNS python -m tests.e2e.browser WORKDIR``, which runs
chromedriver and Chromium there and executes one JSON command per stdin line, answering one JSON line each
(``get``, ``js``, ``wait_js``, ``screenshot``, ``quit``). The test keeps driving the rest of the world (the CHIP
controller, the lights) from outside.

Nothing is downloaded: the browser is ``/usr/bin/chromium`` and the driver ``/usr/bin/chromedriver`` (Debian's
``chromium`` and ``chromium-driver``, installed by ``.ci/run``), both given to Selenium by path; Selenium Manager is
pointed at a path that does not exist, so any attempt to run it would fail the test instead of fetching a driver.
Chromium starts with its background networking, sync, component updates, first-run and the other phone-home
features switched off, in a throw-away profile.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.e2e.harness import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-sync",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-pings",
    "--no-proxy-server",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
)


def missing() -> str | None:
    """Why the browser cannot run here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (Debian's {package}; .ci/run installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extras pin it)"
    return None


class Browser:
    """The test's side: one Chromium inside ``netns``; every method waits for the browser's answer."""

    def __init__(self, netns: str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self._stderr = (workdir / "browser.log").open("w")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "tests.e2e.browser", str(workdir)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.log = workdir / "browser.log"
        try:
            self.call("ready", timeout=60)
        except BaseException:
            self.close()
            raise

    def call(self, op: str, timeout: float = 30, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        # One answer line per command and nothing else, so nothing waits in the pipe's buffer between commands.
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.proc.kill()
            raise AssertionError(f"browser {op}: no answer in {timeout} s:\n{self.log.read_text()[-3000:]}")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the browser process ended:\n{self.log.read_text()[-3000:]}")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"browser {op}: {answer['error']}")
        return answer.get("value")

    def get(self, url: str) -> None:
        self.call("get", url=url)

    def js(self, script: str) -> Any:
        return self.call("js", script=script)

    def wait_js(self, script: str, expected: Any, timeout: float = 30, message: str = "") -> Any:
        """Poll ``script`` in the page until it returns ``expected``; AssertionError (with the last value) if not."""
        answer = self.call("wait_js", timeout=timeout + 30, script=script, expected=expected, wait=timeout)
        if not answer["ok"]:
            raise AssertionError(f"{message or script}: still {answer['last']!r} after {timeout} s")
        return answer["last"]

    def screenshot(self, path: Path, width: int, *, mobile: bool = False) -> dict[str, Any]:
        """A full-page PNG at ``width`` CSS pixels (a phone's viewport when ``mobile``); returns its height and
        whether the page itself scrolled sideways."""
        result: dict[str, Any] = self.call("screenshot", path=str(path), width=width, mobile=mobile)
        return result

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.call("quit", timeout=20)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()


# ---------------------------------------------------------------------------------------------------- in netns


def _driver(workdir: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_MANAGER_PATH"] = str(workdir / "no-selenium-manager")  # would fail, never fetch
    os.environ["SE_OFFLINE"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = workdir / "profile"
    shutil.rmtree(profile, ignore_errors=True)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument("--window-size=1024,800")
    service = Service(executable_path=CHROMEDRIVER, log_output=str(workdir / "chromedriver.log"))
    return webdriver.Chrome(service=service, options=options)


def _screenshot(driver: Any, path: str, width: int, mobile: bool) -> dict[str, Any]:
    def metrics(height: int) -> None:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
    metrics(800)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    metrics(max(height, 200))
    overflow = bool(driver.execute_script(
        "return document.documentElement.scrollWidth > document.documentElement.clientWidth"))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(path)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return {"path": path, "height": height, "overflow": overflow}


def serve(workdir: Path) -> None:
    driver = _driver(workdir)
    try:
        for line in sys.stdin:
            command = json.loads(line)
            op = command.pop("op")
            try:
                if op == "ready":
                    value: Any = driver.capabilities.get("browserVersion")
                elif op == "get":
                    value = driver.get(command["url"])
                elif op == "js":
                    value = driver.execute_script(command["script"])
                elif op == "wait_js":
                    deadline = time.monotonic() + command["wait"]
                    while True:
                        last = driver.execute_script(command["script"])
                        if last == command["expected"] or time.monotonic() >= deadline:
                            break
                        time.sleep(0.05)
                    value = {"ok": last == command["expected"], "last": last}
                elif op == "screenshot":
                    value = _screenshot(driver, command["path"], command["width"], command["mobile"])
                elif op == "quit":
                    print(json.dumps({"value": None}), flush=True)
                    return
                else:
                    raise ValueError(f"unknown op {op!r}")
            except Exception as exc:  # the test gets it as an assertion with the browser's words
                print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
                continue
            print(json.dumps({"value": value}), flush=True)
    finally:
        driver.quit()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
