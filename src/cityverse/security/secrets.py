"""The site's secret: the key of the audit chain and the root of pseudonyms.

It is ``CITYVERSE_SECRET_KEY`` when set, else a random 32-byte key kept in
``<data dir>/secret.key`` (created on first use, readable by its owner only). Each
tenant's pseudonymisation key is derived from it, so a pseudonym means nothing outside
its tenant and nothing without the site's secret::

    key = site_secret(settings)
    tenant_key = derive(key, "pseudonym", "default")
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cityverse.settings import Settings

SECRET_FILE = "secret.key"


def secret_path(settings: Settings) -> Path:
    return Path(settings.data_dir) / SECRET_FILE


def site_secret(settings: Settings, *, create: bool = True) -> bytes:
    """The site's secret key; created in the data directory when missing and ``create``."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = secret_path(settings)
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        if not create:
            raise
    except ValueError:
        raise ValueError(f"{path} does not hold a hexadecimal key") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process created it first: use that one.
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key


def derive(key: bytes, purpose: str, tenant: str) -> bytes:
    """A key for one purpose in one tenant, derived from the site's secret."""
    return hmac.new(key, f"{purpose}\x00{tenant}".encode(), hashlib.sha256).digest()
