"""``cityverse demo`` end to end: a real server on a free port, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

SDM = "https://raw.githubusercontent.com/smart-data-models/dataModel.{}/master/context.jsonld"
REL = 'rel="http://www.w3.org/ns/json-ld#context"'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def demo(data_dir: Path, *flags: str) -> Iterator[httpx.Client]:
    """Run ``cityverse demo`` until the API answers; SIGINT it after the block."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYVERSE_")}
    command = [sys.executable, "-m", "cityverse.cli", "demo", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--data-dir", str(data_dir), "--speed", "600", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                if client.get("/ngsi-ld/v1/info/sourceIdentity").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the demo did not answer within 60 s"
            time.sleep(0.2)
        yield client
    finally:
        client.close()
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "Application shutdown complete" in output


def _query(client: httpx.Client, kind: str, context: str, **params: str) -> httpx.Response:
    return client.get(
        "/ngsi-ld/v1/entities",
        params={"type": kind, "count": "true", "limit": "1", **params},
        headers={"Link": f"<{context}>; {REL}"},
    )


def _count(client: httpx.Client, kind: str, context: str) -> int:
    response = _query(client, kind, context)
    assert response.status_code == 200, response.text
    return int(response.headers["NGSILD-Results-Count"])


def test_demo_serves_the_city_and_its_live_readings(tmp_path: Path) -> None:
    with demo(tmp_path) as client:
        building = f"{client.base_url}/ngsi-ld/v1/jsonldContexts/sdm-Building"
        roads = f"{client.base_url}/ngsi-ld/v1/jsonldContexts/sdm-Transportation"
        assert _count(client, "Building", building) > 1000
        assert _count(client, "RoadSegment", roads) > 100
        assert _count(client, "Streetlight", SDM.format("Streetlighting")) > 100
        assert _count(client, "WasteContainer", SDM.format("WasteManagement")) > 100
        assert _count(client, "ParkingSpot", SDM.format("Parking")) > 100
        assert _count(client, "WeatherObserved", SDM.format("Weather")) == 1
        epanet = SDM.format("WaterDistributionManagementEPANET")
        assert _count(client, "Pipe", epanet) == 905
        # The sensors publish through the API: pressures appear on the metered junctions.
        deadline = time.monotonic() + 20
        while _count_q(client, epanet) < 33:
            assert time.monotonic() < deadline, "no pressure readings arrived"
            time.sleep(0.3)
        hosted = client.get("/ngsi-ld/v1/jsonldContexts/sdm-Building")
        assert hosted.status_code == 200
        assert "Building" in hosted.json()["@context"]
    assert (tmp_path / "cityverse.db").exists()


def _count_q(client: httpx.Client, epanet: str) -> int:
    response = _query(client, "Junction", epanet, q="pressure>0")
    return int(response.headers["NGSILD-Results-Count"])


def _operator_key(data_dir: Path) -> str:
    """An operator's API key in the demo's store (the demo opens reading only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYVERSE_")}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "cityverse.cli", "keys", "create", "--role", "operator"),
            *("--data-dir", str(data_dir), "--name", "test"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_reset_empties_and_reloads(tmp_path: Path) -> None:
    extra = {"id": "urn:ngsi-ld:Thing:extra", "type": "Thing"}
    key = {"Authorization": f"Bearer {_operator_key(tmp_path)}"}
    with demo(tmp_path) as client:
        assert client.post("/ngsi-ld/v1/entities", json=extra).status_code == 401
        assert client.post("/ngsi-ld/v1/entities", json=extra, headers=key).status_code == 201
    with demo(tmp_path) as client:  # a restart keeps the store
        assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Thing:extra").status_code == 200
    with demo(tmp_path, "--reset") as client:
        assert client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:Thing:extra").status_code == 404
        assert _count(client, "Pipe", SDM.format("WaterDistributionManagementEPANET")) == 905


def test_bad_speed_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cityverse.cli",
            "demo",
            "--speed",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--speed must be greater than 0" in result.stderr
