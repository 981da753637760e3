"""Dashboard speed: first meaningful paint, and map pan/zoom with 10,000 assets.

Starts ``cityverse serve`` on a free loopback port over a temporary data directory, loads
a city of ``--assets`` point assets (junctions, streetlights, waste containers, parking
spots, a quarter each) through the NGSI-LD API, opens the dashboard in headless Chromium
(Debian's, driven by Playwright) and measures:

- first contentful paint, the time until the map has drawn the layers that are switched
  on (``performance.mark('cityverse-layers-drawn')``: the first meaningful paint), the
  time the twin's list of types confirmed that nothing of those layers was missing
  (``cityverse-layers-checked``; the first mark is made then, with the time of the
  drawing) and the time until every entity is loaded, those of the layers switched off
  included (``cityverse-all-loaded``: search and counts complete);
- the requests the page made before that paint (the dashboard's own files left out):
  what each asked for, when it left and when its answer had arrived; when each of the
  dashboard's files was asked for and arrived; the page's own marks on the way
  (``cityverse-map-loaded``, ``-layers-begun``: the view fitted to the first answers,
  ``-layers-answered``: every answer for the layers switched on is in);
- every frame while the map pans, zooms and tilts (six movements of a second each), from
  a Chrome performance trace (CDP ``Tracing``): the longest frame and the share over 50
  ms, once with the layers as the dashboard opens and once with every layer switched
  on. Frames are counted from each movement's start to the frame that ends it (see
  ``frame_times``): the still map between movements draws nothing.

With ``--demo`` it measures the demo city instead (``cityverse demo``: 4,300 buildings,
streets, the water network, 1,200 street lights...), once it is loaded.

To compare with another checkout, run the same command with ``PYTHONPATH=<checkout>/src``:
the server (``cityverse serve`` or ``cityverse demo``) then runs that code and serves
that build. ``--bundle DIR`` serves only another build's files (the page and its assets)
to the browser from this process, not from the server, which lightens the server's work
at the page's start: compare two ``--bundle`` runs with each other, not with a plain one.

    .venv/bin/python bench/dashboard.py                 # 10,000 assets
    .venv/bin/python bench/dashboard.py --assets 2000 --out /tmp/dash.json
    .venv/bin/python bench/dashboard.py --demo --out bench/results/dashboard-demo.json

Figures go to stdout and to ``bench/results/dashboard.json``; the trace is kept in the
run's temporary directory (its path is printed; open it in Chrome's performance panel).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, free_port, start_server  # noqa: E402

CONFIG_MARK = "<!--cityverse-config-->"
LINK = '<{}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
SDM = "https://smart-data-models.github.io/dataModel.{}/context.jsonld"
KINDS = [
    ("WaterDistributionManagementEPANET", "Junction", "pressure", lambda i: 5 + (i * 7) % 70),
    ("Streetlighting", "Streetlight", "powerState", lambda i: "on" if i % 2 else "off"),
    ("WasteManagement", "WasteContainer", "fillingLevel", lambda i: (i % 10) / 10),
    ("Parking", "ParkingSpot", "status", lambda i: "free" if i % 3 else "occupied"),
]


def load_city(base: str, assets: int) -> None:
    """``assets`` points on a grid around Berkane, a quarter of each kind, and pipes."""
    side = int(assets**0.5) + 1
    with httpx.Client(base_url=base, timeout=120) as client:
        for k, (subject, kind, attr, value) in enumerate(KINDS):
            batch = []
            for i in range(k, assets, len(KINDS)):
                x, y = -2.36 + (i % side) * 0.0008, 34.89 + (i // side) * 0.0006
                batch.append(
                    {
                        "id": f"urn:ngsi-ld:{kind}:b{i}",
                        "type": kind,
                        attr: {"type": "Property", "value": value(i)},
                        "location": {
                            "type": "GeoProperty",
                            "value": {"type": "Point", "coordinates": [x, y]},
                        },
                    }
                )
            headers = {"Link": LINK.format(SDM.format(subject))}
            for start in range(0, len(batch), 2000):
                r = client.post(
                    "/ngsi-ld/v1/entityOperations/upsert",
                    json=batch[start : start + 2000],
                    headers=headers,
                )
                r.raise_for_status()


PAN_ZOOM = """async () => {
    const map = window.cityverse.map;
    const steps = [
        () => map.easeTo({ zoom: 15, duration: 1000 }),
        () => map.panBy([300, 150], { duration: 1000 }),
        () => map.easeTo({ zoom: 13, duration: 1000 }),
        () => map.panBy([-300, -150], { duration: 1000 }),
        () => map.easeTo({ zoom: 16, pitch: 50, duration: 1000 }),
        () => map.easeTo({ zoom: 14, pitch: 0, duration: 1000 }),
    ];
    // Each step by the clock, not by 'moveend': the map may fire move events of its own.
    // The marks bound each movement in the trace: between two movements the map is still
    // and draws nothing, and that pause is not a frame.
    for (const step of steps) {
        map.once('moveend', () => performance.mark('cityverse-move-end'));
        performance.mark('cityverse-move-start');
        await new Promise((resolve) => { step(); setTimeout(resolve, 1100); });
    }
}"""
ALL_LAYERS_ON = """async () => {
    for (const box of document.querySelectorAll('#layers input[type=checkbox]')) {
        if (!box.checked) box.click();
    }
    await new Promise((resolve) => window.cityverse.map.once('idle', resolve));
}"""


# The dashboard's own files: when each was asked for and when it had arrived.
STATIC_FILES = """() => performance.getEntriesByType('resource')
    .filter((e) => new URL(e.name).pathname.startsWith('/ui/static/'))
    .map((e) => ({ what: new URL(e.name).pathname.slice('/ui/static/'.length),
                   start_ms: Math.round(e.startTime), end_ms: Math.round(e.responseEnd) }))"""


# The requests the page made before its first meaningful paint (the dashboard's files
# left out): what each asked for, when it left and when its answer had arrived.
LOAD_REQUESTS = """() => {
    const drawn = performance.getEntriesByName('cityverse-layers-drawn')[0]?.startTime ?? Infinity;
    const short = (iri) => iri.slice(Math.max(iri.lastIndexOf('/'), iri.lastIndexOf('#')) + 1);
    return performance.getEntriesByType('resource')
        .filter((e) => e.startTime < drawn && !new URL(e.name).pathname.startsWith('/ui/static/'))
        .map((e) => {
            const url = new URL(e.name);
            const type = url.searchParams.get('type');
            const offset = url.searchParams.get('offset');
            return {
                what: url.pathname + (type ? ` ${type.split(',').map(short).join(',')}` : '')
                    + (offset ? ` @${offset}` : ''),
                start_ms: Math.round(e.startTime),
                end_ms: Math.round(e.responseEnd),
                bytes: e.encodedBodySize,
            };
        })
        .sort((a, b) => a.start_ms - b.start_ms);
}"""


def frame_times(trace: dict[str, Any] | list[dict[str, Any]]) -> list[float]:
    """Milliseconds each frame took while the map moved, from a Chrome trace.

    A movement runs from its ``cityverse-move-start`` mark to the first frame drawn after
    its ``cityverse-move-end`` mark (the frame of its last step). Its first frame counts
    from the start mark, each next one from the frame before. The still map between two
    movements draws nothing: counting that pause as a frame would measure the script's
    timer, not the map.
    """
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    draws = sorted(
        e["ts"] for e in events if e.get("name") in ("DrawFrame", "Graphics.Pipeline.DrawFrame")
    )
    if len(draws) < 2:
        draws = sorted(e["ts"] for e in events if e.get("name") == "BeginFrame")

    def marks(name: str) -> list[float]:
        return sorted({e["ts"] for e in events if e.get("name") == name})

    starts, ends = marks("cityverse-move-start"), marks("cityverse-move-end")
    if not starts or len(starts) != len(ends):
        raise ValueError(f"the trace holds {len(starts)} movement starts and {len(ends)} ends")
    times: list[float] = []
    for start, end in zip(starts, ends, strict=True):
        before = start
        for draw in draws:
            if draw <= start:
                continue
            times.append((draw - before) / 1000)
            before = draw
            if draw >= end:
                break
    return times


def frame_figures(frames: list[float]) -> dict[str, Any]:
    """The longest frame, the 95th percentile and how many took over 50 ms."""
    ordered = sorted(frames)
    return {
        "frames": len(frames),
        "frame_max_ms": round(ordered[-1], 1) if frames else None,
        "frame_p50_ms": round(ordered[len(frames) // 2], 1) if frames else None,
        "frame_p95_ms": round(ordered[int(len(frames) * 0.95)], 1) if frames else None,
        "frames_over_50ms": sum(f > 50 for f in frames),
    }


def start_demo(data: Path, port: int) -> subprocess.Popen[bytes]:
    """``cityverse demo`` on ``port``, once its city is loaded and its devices play."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYVERSE_")}
    script = Path(sys.executable).with_name("cityverse")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cityverse.cli"]
    process = subprocess.Popen(
        [*command, "demo", "--port", str(port), "--data-dir", str(data)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    epanet = SDM.format("WaterDistributionManagementEPANET")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            found = httpx.get(
                f"{base}/ngsi-ld/v1/entities",
                params={"type": "Junction", "q": "pressure>0", "limit": "1"},
                headers={"Link": LINK.format(epanet)},
                timeout=5,
            )
            if found.status_code == 200 and found.json():
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("the demo did not play within 120 s")


def _serve_bundle(page: Any, base: str, bundle: Path) -> None:
    """Serve the dashboard's page and files from ``bundle`` (another build, to compare):
    the page as the server renders it, with that build's ``index.html``."""

    def handle_page(route: Any) -> None:
        served = route.fetch()
        config = re.search(r'<script id="cityverse-config".*?</script>', served.text(), re.S)
        template = (bundle / "index.html").read_text(encoding="utf-8")
        body = template.replace(CONFIG_MARK, config.group(0) if config else "")
        route.fulfill(response=served, body=body)

    page.route(base + "/", handle_page)

    def handle(route: Any) -> None:
        name = route.request.url.split("/ui/static/", 1)[1].split("?")[0]
        path = bundle / name
        if not path.is_file():
            route.continue_()
            return
        kinds = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}
        route.fulfill(body=path.read_bytes(), content_type=kinds.get(path.suffix, "text/plain"))

    page.route("**/ui/static/**", handle)


def run(assets: int, *, demo: bool = False, bundle: Path | None = None) -> dict[str, Any]:
    """Measure and return the figures."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    data = Path(tempfile.mkdtemp(prefix="cityverse-bench-"))
    port = free_port()
    load_at_start = os.getloadavg()
    t0 = time.monotonic()
    server = start_demo(data, port) if demo else start_server(data, port)
    base = f"http://127.0.0.1:{port}"
    try:
        if not demo:
            load_city(base, assets)
        load_s = time.monotonic() - t0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 860})
            if bundle is not None:
                _serve_bundle(page, base, bundle)
            page.goto(base + "/")
            page.wait_for_selector("body[data-ready='true']", timeout=120_000)
            page.wait_for_function(
                "() => performance.getEntriesByName('cityverse-layers-drawn').length > 0",
                timeout=120_000,
            )
            # A build from before this mark loaded everything before drawing.
            with contextlib.suppress(PlaywrightTimeout):
                page.wait_for_function(
                    "() => performance.getEntriesByName('cityverse-all-loaded').length > 0",
                    timeout=60_000 if bundle is None else 5_000,
                )
            paint = page.evaluate(
                """() => {
                const at = (name) => performance.getEntriesByName(name)[0]?.startTime ?? null;
                return { fcp: at('first-contentful-paint'), layers: at('cityverse-layers-drawn'),
                         checked: at('cityverse-layers-checked'),
                         all: at('cityverse-all-loaded') ?? at('cityverse-layers-drawn') };
            }"""
            )
            marks = page.evaluate(
                """() => Object.fromEntries(performance.getEntriesByType('mark')
                    .filter((m) => m.name.startsWith('cityverse-'))
                    .map((m) => [m.name, Math.round(m.startTime)]))"""
            )
            requests = page.evaluate(LOAD_REQUESTS)
            files = page.evaluate(STATIC_FILES)
            shown = page.evaluate("() => window.cityverse.entities.size")
            software = page.evaluate("() => document.body.dataset.rendering === 'software'")
            frames = {}
            for name, setup in (("opening", None), ("all_layers", ALL_LAYERS_ON)):
                if setup is not None:
                    page.evaluate(setup)
                page.evaluate("() => window.cityverse.map.jumpTo({zoom: 14})")
                page.wait_for_timeout(1000)
                trace_path = data / f"dashboard-trace-{name}.json"
                browser.start_tracing(page=page, path=str(trace_path), screenshots=False)
                page.evaluate(PAN_ZOOM)
                browser.stop_tracing()
                frames[name] = frame_times(json.loads(trace_path.read_text()))
                print(f"trace: {trace_path}", file=sys.stderr)
            browser.close()
    finally:
        server.send_signal(signal.SIGINT) if demo else server.terminate()
        server.wait(30)
    return {
        "benchmark": "dashboard",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average": os.getloadavg(),
            "browser": subprocess.run(
                [CHROMIUM, "--version"], capture_output=True, text=True, check=False
            ).stdout.strip(),
            "rendering": "headless Chromium, WebGL on SwiftShader (CPU)",
        },
        "city": "demo" if demo else f"{assets} point assets",
        "bundle": str(bundle) if bundle else "src/cityverse/ui/static",
        "software_rendering_detected": software,
        "entities_shown": shown,
        "load_city_s": round(load_s, 2),
        "first_contentful_paint_ms": round(paint["fcp"], 1) if paint["fcp"] else None,
        "layers_drawn_ms": round(paint["layers"], 1) if paint["layers"] else None,
        "layers_checked_ms": round(paint["checked"], 1) if paint["checked"] else None,
        "all_loaded_ms": round(paint["all"], 1) if paint["all"] else None,
        "marks_ms": marks,
        "requests_before_paint": len(requests),
        "first_request_ms": min((r["start_ms"] for r in requests), default=None),
        "last_answer_before_paint_ms": max((r["end_ms"] for r in requests), default=None),
        "load_requests": requests,
        "static_files": files,
        "pan_zoom": {name: frame_figures(times) for name, times in frames.items()},
        "targets": {"first_meaningful_paint_ms": 2000, "frame_max_ms": 50},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--demo", action="store_true", help="measure the demo city instead")
    parser.add_argument(
        "--bundle", type=Path, help="serve the dashboard's static files from this directory"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dashboard.json")
    args = parser.parse_args()
    figures = run(args.assets, demo=args.demo, bundle=args.bundle)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
