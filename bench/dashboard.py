"""Dashboard speed: first meaningful paint, and map pan/zoom with 10,000 assets.

Starts ``cityverse serve`` on a free loopback port over a temporary data directory, loads
a city of ``--assets`` point assets (junctions, streetlights, waste containers, parking
spots) plus its pipes through the NGSI-LD API, opens the dashboard in headless Chromium
(Debian's, driven by Playwright) and measures:

- first contentful paint and the time until the map has drawn the city's layers
  (Performance API, ``performance.mark`` set when the layers are loaded);
- every frame while the map pans and zooms over all assets, from a Chrome performance
  trace (CDP ``Tracing``): the longest frame and the share over 50 ms.

    .venv/bin/python bench/dashboard.py                 # 10,000 assets
    .venv/bin/python bench/dashboard.py --assets 2000 --out /tmp/dash.json

Figures go to stdout and to ``bench/results/dashboard.json``; the trace is kept in the
run's temporary directory (its path is printed; open it in Chrome's performance panel).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
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
    for (const step of steps) {
        await new Promise((resolve) => { map.once('moveend', resolve); step(); });
    }
}"""


def frame_times(trace: dict[str, Any]) -> list[float]:
    """Milliseconds between frames the compositor drew, from a Chrome trace."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    draws = sorted(
        e["ts"] for e in events if e.get("name") in ("DrawFrame", "Graphics.Pipeline.DrawFrame")
    )
    if len(draws) < 2:
        draws = sorted(e["ts"] for e in events if e.get("name") == "BeginFrame")
    return [(b - a) / 1000 for a, b in itertools.pairwise(draws)]


def run(assets: int, out: Path) -> dict[str, Any]:
    """Measure and return the figures."""
    from playwright.sync_api import sync_playwright

    data = Path(tempfile.mkdtemp(prefix="cityverse-bench-"))
    port = free_port()
    server = start_server(data, port)
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        load_city(base, assets)
        load_s = time.monotonic() - t0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 860})
            page.goto(base + "/")
            page.wait_for_selector("body[data-ready='true']", timeout=120_000)
            page.wait_for_function(
                "() => performance.getEntriesByName('cityverse-layers-drawn').length > 0",
                timeout=120_000,
            )
            paint = page.evaluate(
                """() => {
                const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                const ready = performance.getEntriesByName('cityverse-layers-drawn')[0];
                return { fcp: fcp ? fcp.startTime : null, layers: ready ? ready.startTime : null };
            }"""
            )
            shown = page.evaluate("() => window.cityverse.entities.size")
            trace_path = data / "dashboard-trace.json"
            browser.start_tracing(page=page, path=str(trace_path), screenshots=False)
            page.evaluate(PAN_ZOOM)
            browser.stop_tracing()
            browser.close()
        frames = frame_times(json.loads(trace_path.read_text()))
        print(f"trace: {trace_path}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(10)
    over = [f for f in frames if f > 50]
    return {
        "benchmark": "dashboard",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "browser": subprocess.run(
                [CHROMIUM, "--version"], capture_output=True, text=True, check=False
            ).stdout.strip(),
            "rendering": "headless Chromium, WebGL on SwiftShader (CPU)",
        },
        "assets": assets,
        "entities_shown": shown,
        "load_city_s": round(load_s, 2),
        "first_contentful_paint_ms": round(paint["fcp"], 1) if paint["fcp"] else None,
        "layers_drawn_ms": round(paint["layers"], 1) if paint["layers"] else None,
        "frames": len(frames),
        "frame_max_ms": round(max(frames), 1) if frames else None,
        "frame_p95_ms": round(sorted(frames)[int(len(frames) * 0.95)], 1) if frames else None,
        "frames_over_50ms": len(over),
        "targets": {"first_meaningful_paint_ms": 2000, "frame_max_ms": 50},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dashboard.json")
    args = parser.parse_args()
    figures = run(args.assets, args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
