"""`cityverse serve --tls-cert --tls-key` serves HTTPS, and security holds there too."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _certificate(where: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = where / "cert.pem", where / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_over_tls(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYVERSE_")}
    cli = [sys.executable, "-m", "cityverse.cli"]
    token = subprocess.run(
        [*cli, "keys", "create", "--role", "analyst", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    ).stdout.strip()
    flags = ["--port", str(port), "--data-dir", str(tmp_path)]
    proc = subprocess.Popen(
        [*cli, "serve", *flags, "--tls-cert", str(cert), "--tls-key", str(key)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"https://127.0.0.1:{port}/ngsi-ld/v1/types"
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    anonymous = client.get(url.replace("127.0.0.1", "localhost"))
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            assert anonymous.status_code == 401
            signed = client.get(
                url.replace("127.0.0.1", "localhost"),
                headers={"Authorization": f"Bearer {token}"},
            )
            assert signed.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
