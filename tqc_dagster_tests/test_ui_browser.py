"""The UI in a real browser: headless Chromium against `dagster dev`, screenshots of what it shows.

Chromium is Debian's `chromium` package; `scripts/ensure-chromium` (the project's setup) installs
it where it is missing and can be installed (root, apt). The tests skip, saying why, only when
Chromium is still missing after that. No Playwright: Chromium is driven over the DevTools
protocol (a websocket; `websockets` comes with Dagster), which lets the tests wait for what the
page shows instead of sleeping.

What the UI does with the project's charts (inline PNGs in markdown metadata): Dagster renders
markdown metadata inline only when it is under 1,000 characters; a chart is always longer, so the
metadata table shows `[Show Markdown]`, and the chart renders (as an <img> with the data: URI)
in the dialog that link opens. The tests click it, as a user must.

Screenshots go to tqc_dagster_tests/screenshots/ (ui-asset-graph.png, ui-asset-page.png).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import quote

import pytest

from tqc_dagster.assets import OWNERS
from tqc_dagster_tests.dagster_server import ALL_ASSETS, REPO_ROOT, DagsterServer, running_dagster

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
WIDTH, HEIGHT = 1280, 800
ASSETS = sorted(ALL_ASSETS)
GROUPS = list(OWNERS)
PAGE_TIMEOUT_S = 60


# --- Chromium ---------------------------------------------------------------------------------


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary, installed by scripts/ensure-chromium when missing; skip (saying why) only when that fails."""
    binary = find_chromium()
    if binary:
        return binary
    try:
        result = subprocess.run([str(REPO_ROOT / "scripts" / "ensure-chromium")], capture_output=True, text=True, timeout=900)
        why = (result.stderr or result.stdout).strip()
    except (OSError, subprocess.TimeoutExpired) as error:
        why = f"scripts/ensure-chromium could not run: {error}"
    binary = find_chromium()
    if not binary:
        pytest.skip(f"headless Chromium is not installed and could not be installed here: {why}")
    return binary


class Browser:
    """One headless Chromium page driven over the DevTools protocol."""

    def __init__(self, binary: str, profile: Path):
        from websockets.sync.client import connect

        self.exit_stack = ExitStack()
        profile.mkdir(parents=True, exist_ok=True)
        port_file = profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: close() stops every Chromium process
        )
        try:
            deadline = time.monotonic() + 30
            while not (port_file.exists() and port_file.read_text().strip()):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Chromium did not open its DevTools port (exit code {self.process.poll()})")
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
                page = next(target for target in json.loads(response.read()) if target["type"] == "page")
            self.socket = self.exit_stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30))
            self.ids = 0
            self.call("Page.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, **params) -> dict:
        self.ids += 1
        request_id = self.ids
        self.socket.send(json.dumps({"id": request_id, "method": method, "params": params}))
        while True:  # events arrive in between; only our answer matters
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == request_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, what: str, timeout: float = PAGE_TIMEOUT_S):
        """Poll a JS expression until it is truthy; fail naming `what` with the page text."""
        deadline = time.monotonic() + timeout
        error = None
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError as exception:  # e.g. no document.body yet while the page loads
                value, error = None, exception
            if value:
                return value
            if time.monotonic() > deadline:
                text = self.evaluate("document.body ? document.body.innerText : ''") or ""
                raise AssertionError(f"the page did not show {what} within {timeout} s (last error: {error}); it shows:\n{text[:3000]}")
            time.sleep(0.25)

    def text(self) -> str:
        return self.evaluate("document.body.innerText")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.exit_stack.close()  # the websocket
        except Exception:  # noqa: BLE001 - the browser is going away anyway
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue


# --- the project and the server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def config_path(full_run, tmp_path_factory) -> Path:
    """A copy of the session's full `tqc run` (every asset and partition), so the asset pages have metadata and charts."""
    return full_run.copy(tmp_path_factory.mktemp("ui_browser") / "project")


@pytest.fixture(scope="module")
def server(config_path) -> DagsterServer:
    with running_dagster(config_path, timeout=180) as running:
        # The "Join the Dagster community" dialog covers every page of a new instance on localhost;
        # this is what its Skip button does on the server side.
        assert running.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
        yield running


@pytest.fixture(scope="module")
def browser(chromium, server, tmp_path_factory):
    page = Browser(chromium, tmp_path_factory.mktemp("chromium-profile"))
    yield page
    page.close()


def shown(name: str, text: str) -> bool:
    """The page shows `name`, in full or as the graph elides long names (`quarant…_judgments`)."""
    if name in text:
        return True
    return any(
        "…" in word and name.startswith(word.split("…")[0]) and name.endswith(word.split("…")[-1])
        for word in text.split()
    )


def test_asset_graph_shows_every_asset(browser, server):
    # The global lineage shows groups collapsed; `expanded` (the UI's own query parameter) opens them.
    # Group ids are `global@global:<group>` (per code location with a feature flag: both are given).
    expanded = ",".join(f"{prefix}:{group}" for group in GROUPS for prefix in ("global@global", "__repository__@tqc_dagster"))
    browser.goto(f"{server.url}/asset-groups?expanded={quote(expanded, safe=',:@')}")
    names = json.dumps(ASSETS)
    browser.wait_for(
        f"""(() => {{ const text = document.body.innerText;
            return {names}.filter(n => text.includes(n)).length >= {len(ASSETS) - 1}; }})()""",
        "the expanded asset graph",
    )
    time.sleep(1)  # the graph animates its zoom-to-fit; let it settle before the screenshot
    browser.screenshot(SCREENSHOTS / "ui-asset-graph.png")
    text = browser.text()
    assert "Global asset lineage" in text
    missing = [name for name in ASSETS if not shown(name, text)]
    assert not missing, f"not on the asset graph: {missing}\n{text[:3000]}"
    for group in GROUPS:
        assert group in text


OPEN_CHART = """
(() => {
  const row = Array.from(document.querySelectorAll('tr')).find(r => r.innerText.includes('%(label)s'));
  if (!row) return false;
  const link = Array.from(row.querySelectorAll('a')).find(a => a.textContent.includes('Show Markdown'));
  if (!link) return false;
  link.click();
  return true;
})()
"""

CHART_IN_DIALOG = """
(() => {
  const dialog = Array.from(document.querySelectorAll('[role=dialog]')).find(d => d.innerText.includes('%(label)s'));
  if (!dialog) return null;
  const images = Array.from(dialog.querySelectorAll('img')).filter(i => i.complete && i.naturalWidth > 0);
  return images.length ? images.map(i => ({src: i.src.slice(0, 22), alt: i.alt, width: i.naturalWidth, height: i.naturalHeight,
                                           shownWidth: Math.round(i.getBoundingClientRect().width)})) : null;
})()
"""

DIALOG_SETTLED = """
(() => {
  const dialog = Array.from(document.querySelectorAll('[role=dialog]')).find(d => d.innerText.includes('%(label)s'));
  if (!dialog || document.querySelector('[class*="overlay-enter-active"], [class*="overlay-appear-active"]')) return false;
  for (let e = dialog; e; e = e.parentElement) if (getComputedStyle(e).opacity !== '1') return false;
  return true;
})()
"""

INLINE_IMAGES = "Array.from(document.images).filter(i => i.src.startsWith('data:image/png')).length"


def open_chart(browser: Browser, label: str) -> list[dict]:
    """Click the metadata entry's `[Show Markdown]` and return the rendered images of its dialog."""
    browser.wait_for(OPEN_CHART % {"label": label}, f"the metadata entry {label} with its [Show Markdown] link")
    images = browser.wait_for(CHART_IN_DIALOG % {"label": label}, f"the rendered chart of {label}")
    browser.wait_for(DIALOG_SETTLED % {"label": label}, f"the dialog of {label} fully faded in")
    return images


def test_asset_page_shows_the_label_balance_chart(browser, server):
    # The Events tab with a partition picked: that partition's latest materialization and its metadata.
    browser.goto(f"{server.url}/assets/processed_samples?view=events&partition={quote('v1|model_a', safe='')}")
    browser.wait_for("document.body.innerText.includes('materialized in run')", "the v1|model_a materialization")
    text = browser.text()
    assert "processed_samples" in text and "Partition v1|model_a materialized in run" in text
    for label in ("rows", "label_balance_chart", "by_label", "duplicates", "path"):
        assert label in text, label
    # Markdown metadata of 1,000 characters or more is not rendered inline: a chart is a link.
    assert browser.evaluate(INLINE_IMAGES) == 0
    assert "[Show Markdown]" in text
    images = open_chart(browser, "label_balance_chart")
    assert len(images) == 1, images
    chart = images[0]
    assert chart["src"].startswith("data:image/png;base64")
    assert chart["alt"] == "samples by criterion and label"
    assert chart["width"] > 300 and chart["height"] > 100 and chart["shownWidth"] > 300, chart
    browser.screenshot(SCREENSHOTS / "ui-asset-page.png")
    dialog_text = browser.evaluate("Array.from(document.querySelectorAll('[role=dialog]')).map(d => d.innerText).join(' ')")
    assert "label_balance_chart" in dialog_text


def test_agreement_page_shows_the_kappa_chart(browser, server):
    browser.goto(f"{server.url}/assets/judge_agreement?view=events&partition=model_a")
    browser.wait_for("document.body.innerText.includes('materialized in run')", "the model_a materialization of judge_agreement")
    text = browser.text()
    assert "Partition model_a materialized in run" in text and "kappa_chart" in text
    images = open_chart(browser, "kappa_chart")
    assert [image["alt"] for image in images] == ["judge agreement by criterion"]
    assert images[0]["src"].startswith("data:image/png;base64") and images[0]["width"] > 200
