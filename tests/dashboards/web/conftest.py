"""Fixtures for the web app tests: real headless Chromium, a local webhook receiver.

Chromium is Debian's (/usr/bin/chromium) driven by the playwright Python client;
`scripts/install-browser.sh` installs both. When either is missing the tests FAIL
with that hint, never skip.
"""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from simulators.camera import CameraSimulator, IncidentSpec, simulated_camera
from stream.vision import VisionConfig, VisionProcessor, annotate

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
HINT = "run scripts/install-browser.sh (Debian chromium + the playwright Python client)"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A Chromium context with a fresh --user-data-dir (playwright's persistent context)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: {HINT}", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the playwright Python package is missing: {HINT}", pytrace=False)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        yield context
        context.close()


class PageLog:
    """Console errors and uncaught exceptions of a page."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))


@pytest.fixture
def new_page(browser):
    """Open a page with its error log; pages are closed after the test."""
    pages = []

    def make():
        page = browser.new_page()
        pages.append(page)
        return page, PageLog(page)

    yield make
    for page in pages:
        page.close()


@dataclass
class Received:
    """Requests a webhook receiver got: (headers, raw body, status answered)."""

    url: str = ""
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, predicate, timeout_s: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: predicate(self.requests), timeout=timeout_s)


@contextmanager
def receiver(answer=None):
    """A local HTTP receiver on 127.0.0.1; ``answer(delivery_id, attempts_so_far) -> status``.

    By default it answers 503 to the first attempt of every delivery, then 200.
    """
    received = Received()
    attempts: dict[str, int] = {}
    answer = answer or (lambda delivery, n: 503 if n == 0 else 200)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            delivery = self.headers.get("X-Roadpulse-Delivery", "")
            status = answer(delivery, attempts.get(delivery, 0))
            attempts[delivery] = attempts.get(delivery, 0) + 1
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"ok": status == 200}).encode())
            with received.cond:
                received.requests.append((dict(self.headers.items()), body, status))
                received.cond.notify_all()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def make_receiver():
    """The :func:`receiver` context manager, for tests and module fixtures."""
    return receiver


@pytest.fixture(scope="session")
def camera_snapshot():
    """The :func:`annotated_snapshot` helper."""
    return annotated_snapshot


def annotated_snapshot(camera_id: str, station_id: str, segment_id: str, start_ms: int, seconds: float = 8.0,
                       stopped: bool = True):
    """(spec, raw jpeg, annotated jpeg, time_ms) after ``seconds`` of video of a 3-lane road.

    With ``stopped`` a vehicle stops in lane 2 (an incident in front of the camera).
    """
    cam = simulated_camera(camera_id, station_id, segment_id, n_lanes=3)
    sim = CameraSimulator(cam, seed=3, start_ms=start_ms)
    vp = VisionProcessor(cam.spec, VisionConfig(interval_ms=60_000))
    flow, speed = np.array([1500.0, 1400.0, 1100.0]), np.array([70.0, 60.0, 55.0])
    incident = IncidentSpec(active=stopped, lane=2, x_m=45.0)
    frame = None
    for _ in range(int(seconds * cam.spec.fps)):
        frame = sim.frame(flow, speed, incident=incident)
        vp.process(frame.jpeg(), frame.time_ms)
    picture = annotate(frame.image, vp.detections_full_px(), cam.spec.calibration,
                       label=f"{camera_id} {segment_id}")
    ok, buf = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return cam.spec, frame.jpeg(), bytes(buf), int(frame.time_ms)
