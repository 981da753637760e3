"""The ``cityverse`` command: the README's main job starts a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cityverse.cli import main


def test_unknown_store_url_is_a_readable_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--store", "mysql://x/y"]) == 2
    assert "unknown store URL" in capsys.readouterr().err


def test_bad_environment_is_a_readable_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYVERSE_PORT", "many")
    assert main(["serve"]) == 2
    assert "CITYVERSE_PORT" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_on_sqlite_default(tmp_path: Path) -> None:
    """`cityverse serve` with no store flag serves NGSI-LD on a SQLite file in the data dir."""
    port = _free_port()
    env = {**os.environ, "CITYVERSE_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cityverse.cli", "serve", "--insecure-open", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/ngsi-ld/v1"
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.post(
                    f"{base}/entities",
                    json={
                        "id": "urn:ngsi-ld:Lamp:1",
                        "type": "Lamp",
                        "power": {"type": "Property", "value": 60},
                    },
                )
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert r.status_code == 201
        assert httpx.get(f"{base}/entities/urn:ngsi-ld:Lamp:1").json()["power"]["value"] == 60
        assert (tmp_path / "cityverse.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
