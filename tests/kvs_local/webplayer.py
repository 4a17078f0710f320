"""Play an HLS session URL in headless Chromium with hls.js and return what the page observed.

Used by tests/integration/servers/kvs_local/test_media_browser.py.  Needs Debian ``chromium`` and hls.js
from npm in ``tests/kvs_local/web/node_modules`` (``npm install`` in tests/kvs_local/web; the
node_modules folder is not committed).  The page (web/player.html) is served from 127.0.0.1 by a
tiny HTTP server started here; it POSTs its observations to /result.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
HLS_JS = os.path.join(WEB_DIR, "node_modules", "hls.js", "dist", "hls.min.js")
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


def chromium_path() -> str | None:
    for c in CHROMIUM_CANDIDATES:
        if os.path.exists(c):
            return c
    return None


def ensure_hlsjs(timeout: float = 120) -> str | None:
    """Path of hls.min.js, running ``npm install`` in the web folder if it is missing."""
    if not os.path.exists(HLS_JS) and shutil.which("npm"):
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=WEB_DIR, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return HLS_JS if os.path.exists(HLS_JS) else None


class _PageServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _PageHandler)
        self.result = None
        self.got = threading.Event()


class _PageHandler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        files = {"/player.html": (os.path.join(WEB_DIR, "player.html"), "text/html"),
                 "/hls.min.js": (HLS_JS, "application/javascript")}
        if path not in files:
            return self._send(404, "text/plain", b"not found")
        fn, ctype = files[path]
        with open(fn, "rb") as f:
            self._send(200, ctype, f.read())

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n)
        if urllib.parse.urlsplit(self.path).path == "/result":
            try:
                self.server.result = json.loads(data)
            except ValueError:
                self.server.result = {"unparsable": data.decode("utf-8", "replace")}
            self.server.got.set()
        self._send(200, "text/plain", b"ok")


def play(session_url: str, mode: str = "live", seek: float = 4.0, wait_ms: int = 15000,
         timeout: float = 60.0, goal: float = 0.0) -> dict:
    """Open the player page in headless Chromium; return the page's JSON report. goal (live
    mode): the page reports as soon as playback advanced goal seconds over 3 fragments, so a
    long wait_ms costs nothing on a fast machine and leaves a loaded one time to get there."""
    chrome = chromium_path()
    if not chrome:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    if not ensure_hlsjs():
        raise RuntimeError("hls.js is not installed (npm install in tests/kvs_local/web)")
    srv = _PageServer()
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    profile = tempfile.mkdtemp(prefix="kvs-chromium-")
    proc = None
    try:
        q = urllib.parse.urlencode({"src": session_url, "mode": mode, "seek": str(seek), "wait": str(wait_ms),
                                   "goal": str(goal)})
        page = f"http://127.0.0.1:{srv.server_address[1]}/player.html?{q}"
        cmd = [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--autoplay-policy=no-user-gesture-required", "--mute-audio",
               f"--user-data-dir={profile}", page]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        deadline = time.monotonic() + timeout
        while not srv.got.wait(0.2):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
        if srv.result is None:
            err = b""
            if proc.poll() is not None:
                err = proc.stderr.read()[-3000:]
            raise RuntimeError("the player page reported nothing; chromium rc=%s stderr=%s"
                               % (proc.poll(), err.decode("utf-8", "replace")))
        return srv.result
    finally:
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc is not None and proc.stderr:
            proc.stderr.close()
        srv.shutdown()
        srv.server_close()
        shutil.rmtree(profile, ignore_errors=True)


def advance(report: dict) -> float:
    """How far currentTime moved forward during playback (seconds)."""
    ts = [s[1] for s in report.get("samples", [])]
    if not ts:
        return 0.0
    return max(ts) - min(t for t in ts if t is not None)
