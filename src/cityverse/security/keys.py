"""API keys: created, listed and revoked by an admin; only their hash is stored.

A key reads ``cvk_<id>_<secret>``: the id finds the record, the secret is checked
against its SHA-256 (a 256-bit random secret needs no slow hash: it cannot be guessed
from a dictionary). Records live in the store's reserved tenant ``@security``, which the
NGSI-LD API cannot name, so every server process on the same store shares them::

    keys = KeyStore(store)
    token, record = await keys.create("default", "operator", "pumping station")
    identity = await keys.authenticate(token)      # None when unknown or revoked
    await keys.revoke("default", record.id)

Lookups are cached for ``CACHE_SECONDS``; a revocation is seen at once by the process
that made it and within that delay by the others.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cityverse.core.entity import iso_now
from cityverse.core.errors import BadRequestData, ResourceNotFound
from cityverse.core.model import Entity
from cityverse.security.identity import Identity
from cityverse.security.policy import ALL, ROLES
from cityverse.store.base import DEFAULT_TENANT, Change, EntityFilter, EntityStore

SECURITY_TENANT = "@security"
NS = "https://cityverse.org/ns/security#"
KEY_TYPE = NS + "ApiKey"
RECORD = NS + "record"
PREFIX = "cvk_"
CACHE_SECONDS = 5.0
_TOKEN = re.compile(r"cvk_([0-9a-f]{16})_([A-Za-z0-9_\-]{43})")


@dataclass(frozen=True)
class KeyRecord:
    """What is kept of a key: never the secret itself."""

    id: str
    tenant: str
    role: str
    name: str
    created_at: str
    revoked_at: str | None = None

    def document(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "tenant": self.tenant,
            "role": self.role,
            "name": self.name,
            "createdAt": self.created_at,
        }
        if self.revoked_at:
            out["revokedAt"] = self.revoked_at
        return out


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _entity_id(key_id: str) -> str:
    return f"urn:cityverse:security:key:{key_id}"


def looks_like_key(token: str) -> bool:
    """True when ``token`` has the shape of a CityVerse API key (not a JWT)."""
    return token.startswith(PREFIX)


def check_role(role: Any, tenant: Any) -> tuple[str, str]:
    """A valid (role, tenant) for a new key, or BadRequestData."""
    if role not in ROLES or role == "public":
        raise BadRequestData(
            f"role must be one of {', '.join(r for r in ROLES if r != 'public')}, not {role!r}"
        )
    if not isinstance(tenant, str) or not (
        tenant in (ALL, DEFAULT_TENANT) or re.fullmatch(r"[A-Za-z0-9_\-.]{1,64}", tenant)
    ):
        raise BadRequestData(f"invalid tenant {tenant!r}")
    return role, tenant


class KeyStore:
    """API keys in the store, with a short-lived cache of lookups."""

    def __init__(self, store: EntityStore) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, Identity | None]] = {}

    async def create(self, tenant: str, role: str, name: str = "") -> tuple[str, KeyRecord]:
        """A new key for ``role`` in ``tenant`` (``*``: every tenant); the token is shown once."""
        role, tenant = check_role(role, tenant)
        if not isinstance(name, str) or len(name) > 200:
            raise BadRequestData("a key's name must be a string of at most 200 characters")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        record = KeyRecord(key_id, tenant, role, name, iso_now())
        entity: Entity = {
            "id": _entity_id(key_id),
            "type": [KEY_TYPE],
            "createdAt": record.created_at,
            "modifiedAt": record.created_at,
            "attrs": {
                RECORD: [
                    {
                        "type": "JsonProperty",
                        "json": {**record.document(), "hash": _digest(secret)},
                    }
                ]
            },
        }
        await self._put(entity)
        return f"{PREFIX}{key_id}_{secret}", record

    async def list(self, tenant: str | None) -> list[KeyRecord]:
        """The keys of ``tenant`` (every key when None), oldest first."""
        page = await self.store.query(
            SECURITY_TENANT, EntityFilter(type_names=frozenset({KEY_TYPE})), limit=None
        )
        records = [_record(e)[0] for e in page.entities]
        return sorted(
            (r for r in records if tenant is None or r.tenant == tenant),
            key=lambda r: r.created_at,
        )

    async def revoke(self, tenant: str | None, key_id: str) -> KeyRecord:
        """Revoke a key of ``tenant`` (any tenant when None); 404 when there is none."""
        entity = await self.store.get(SECURITY_TENANT, _entity_id(key_id))
        if entity is None:
            raise ResourceNotFound(f"no API key {key_id!r}")
        record, digest = _record(entity)
        if tenant is not None and record.tenant != tenant:
            raise ResourceNotFound(f"no API key {key_id!r}")
        revoked = KeyRecord(
            record.id, record.tenant, record.role, record.name, record.created_at, iso_now()
        )
        entity["attrs"][RECORD][0]["json"] = {**revoked.document(), "hash": digest}
        await self._put(entity)
        self._cache.clear()
        return revoked

    async def authenticate(self, token: str) -> Identity | None:
        """The identity of a valid, unrevoked key; None otherwise."""
        now = time.monotonic()
        cached = self._cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        identity = await self._lookup(token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now + CACHE_SECONDS, identity)
        return identity

    async def _lookup(self, token: str) -> Identity | None:
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        entity = await self.store.get(SECURITY_TENANT, _entity_id(key_id))
        if entity is None:
            return None
        record, digest = _record(entity)
        if record.revoked_at or not hmac.compare_digest(digest, _digest(secret)):
            return None
        return Identity(
            subject=f"key:{record.id}",
            kind="apikey",
            roles={record.tenant: frozenset({record.role})},
            name=record.name,
        )

    async def _put(self, entity: Entity) -> None:
        [outcome] = await self.store.mutate(
            SECURITY_TENANT, [Change(str(entity["id"]), lambda _current: entity)]
        )
        if outcome.error is not None:
            raise outcome.error


def _record(entity: Entity) -> tuple[KeyRecord, str]:
    doc = entity["attrs"][RECORD][0]["json"]
    record = KeyRecord(
        doc["id"], doc["tenant"], doc["role"], doc["name"], doc["createdAt"], doc.get("revokedAt")
    )
    return record, str(doc["hash"])


class ServiceKey:
    """A key the app mints for one of its own services (the demo's devices, say) at start
    and revokes at stop; a Service. A key left by a crash is revoked at the next start::

        services.append(ServiceKey(keys, "operator", "demo", lambda h: demo.use(h)))
    """

    def __init__(
        self, keys: KeyStore, role: str, name: str, ready: Callable[[dict[str, str]], None]
    ) -> None:
        self.keys = keys
        self.role = role
        self.name = name
        self.ready = ready
        self.record: KeyRecord | None = None

    async def start(self) -> None:
        for old in await self.keys.list(DEFAULT_TENANT):
            if old.name == self.name and not old.revoked_at:
                await self.keys.revoke(DEFAULT_TENANT, old.id)
        token, self.record = await self.keys.create(DEFAULT_TENANT, self.role, self.name)
        self.ready({"Authorization": f"Bearer {token}"})

    async def stop(self) -> None:
        if self.record is not None:
            await self.keys.revoke(DEFAULT_TENANT, self.record.id)
