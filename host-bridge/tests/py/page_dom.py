"""Loads a page in headless Chromium and prints its DOM once it holds every needle.

    page_dom.py BROWSER URL TIMEOUT_S NEEDLE...

Chromium's `--dump-dom` prints the DOM when a `--virtual-time-budget` runs out, and
virtual time does not wait for WebSocket messages: on a busy machine the echoes
arrived after the dump. Instead this asks the page for its DOM over the DevTools
protocol (Chromium picks the port: `--remote-debugging-port=0`, read back from
`DevToolsActivePort`) every 100 ms until every needle is in it, or TIMEOUT_S of real
time has passed; either way it prints the last DOM and exits 0 (the caller checks).
"""
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from websockets.sync.client import connect

browser, url, timeout, needles = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
deadline = time.monotonic() + timeout
profile = tempfile.mkdtemp(prefix="server-page-chromium-")
chromium = subprocess.Popen(
    [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--remote-debugging-port=0",
        "--user-data-dir=" + profile,
        url,
    ],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
)
try:
    port = None
    while port is None:
        try:
            with open(profile + "/DevToolsActivePort") as f:
                port = int(f.readline())
        except (OSError, ValueError):
            if chromium.poll() is not None or time.monotonic() > deadline:
                sys.exit("chromium never opened its DevTools port:\n"
                         + chromium.stderr.read().decode(errors="replace"))
            time.sleep(0.05)
    page = None
    while page is None:
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port) as r:
            page = next((t for t in json.load(r) if t.get("type") == "page"), None)
        if page is None:
            if time.monotonic() > deadline:
                sys.exit("chromium opened no page")
            time.sleep(0.05)
    dom = ""
    with connect(page["webSocketDebuggerUrl"], max_size=None) as cdp:
        n = 0
        while True:
            n += 1
            cdp.send(json.dumps({
                "id": n,
                "method": "Runtime.evaluate",
                "params": {"expression": "document.documentElement.outerHTML",
                           "returnByValue": True},
            }))
            while True:
                answer = json.loads(cdp.recv())
                if answer.get("id") == n:
                    break
            dom = answer.get("result", {}).get("result", {}).get("value") or ""
            if all(needle in dom for needle in needles) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    print(dom)
finally:
    chromium.terminate()
    try:
        chromium.wait(10)
    except subprocess.TimeoutExpired:
        chromium.kill()
    shutil.rmtree(profile, ignore_errors=True)
