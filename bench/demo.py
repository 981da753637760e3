"""How long ``cityverse demo`` takes from the command to a live map, on a fresh store.

Starts the demo on a free port with an empty data directory and measures: the API
answering, the dashboard page served, the city's buildings answered, and the first live
reading (a pressure) arriving. Prints the figures and writes them as JSON.

    python bench/demo.py [--runs 3] [--out bench/results/demo.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REL = 'rel="http://www.w3.org/ns/json-ld#context"'
EPANET = (
    "https://raw.githubusercontent.com/smart-data-models/"
    "dataModel.WaterDistributionManagementEPANET/master/context.jsonld"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_once() -> dict[str, float]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYVERSE_")}
    with tempfile.TemporaryDirectory() as data:
        t0 = time.monotonic()
        process = subprocess.Popen(
            ["cityverse", "demo", "--port", str(port), "--data-dir", data],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        figures: dict[str, float] = {}
        try:
            with httpx.Client(base_url=base, timeout=10) as client:
                while "api" not in figures:
                    try:
                        if client.get("/ngsi-ld/v1/info/sourceIdentity").status_code == 200:
                            figures["api"] = time.monotonic() - t0
                    except httpx.TransportError:
                        time.sleep(0.05)
                client.get("/")
                figures["dashboard"] = time.monotonic() - t0
                building = f"{base}/ngsi-ld/v1/jsonldContexts/sdm-Building"
                client.get(
                    "/ngsi-ld/v1/entities",
                    params={"type": "Building", "limit": "1000"},
                    headers={"Link": f"<{building}>; {REL}"},
                )
                figures["buildings"] = time.monotonic() - t0
                while True:
                    found = client.get(
                        "/ngsi-ld/v1/entities",
                        params={"type": "Junction", "q": "pressure>0", "limit": "1"},
                        headers={"Link": f"<{EPANET}>; {REL}"},
                    ).json()
                    if found:
                        break
                    time.sleep(0.05)
                figures["live"] = time.monotonic() - t0
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="bench/results/demo.json")
    args = parser.parse_args()
    runs = [run_once() for _ in range(args.runs)]
    for i, figures in enumerate(runs, 1):
        print(f"run {i}: " + ", ".join(f"{k} {v:.2f} s" for k, v in figures.items()))
    worst = max(r["live"] for r in runs)
    print(f"command to live map (worst of {len(runs)}): {worst:.2f} s (target <= 15 s)")
    result = {
        "bench": "demo",
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        "python": sys.version.split()[0],
        "runs": runs,
        "live_worst_s": round(worst, 2),
        "target_s": 15,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
