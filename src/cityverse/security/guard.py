"""The one decision point: who is calling, in which tenant, and what it may do there.

Every HTTP request passes through ``Guard.admit`` (from the middleware) before any
route runs: the caller is identified (API key, bearer token, or anonymous), the route
is classified into an operation (``routes.classify``), the tenant's policy is asked
whether one of the caller's roles may perform it, and the answer is an ``Access``: the
broker's ``Gate`` for the finer decisions by entity type and attribute::

    guard = Guard.from_settings(settings, store)
    access = await guard.admit(headers, "PATCH", "/ngsi-ld/v1/entities/x/attrs", client)
    # Unauthenticated (401), Forbidden (403) or TooManyRequests (429) when refused
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cityverse.broker.request import OPEN, Gate, Owner, Treatment, parse_tenant
from cityverse.core.errors import (
    BadRequestData,
    Forbidden,
    TooManyRequests,
    Unauthenticated,
)
from cityverse.core.model import Entity
from cityverse.security.identity import ANONYMOUS, OPEN_ACCESS, Identity
from cityverse.security.keys import SECURITY_TENANT, KeyStore, looks_like_key
from cityverse.security.oidc import TokenVerifier
from cityverse.security.policy import (
    DEFAULT_POLICY,
    PUBLIC_READ,
    PolicyFile,
    TenantPolicy,
    parse_policy_file,
    parse_tenant_policy,
)
from cityverse.security.ratelimit import RateLimiter
from cityverse.security.routes import classify
from cityverse.security.secrets import derive
from cityverse.settings import Settings
from cityverse.store.base import DEFAULT_TENANT, Change, EntityStore

log = logging.getLogger("cityverse.security")

POLICY_TYPE = "https://cityverse.org/ns/security#Policy"
POLICY_DOC = "https://cityverse.org/ns/security#document"
POLICY_CACHE_SECONDS = 5.0


def _policy_id(tenant: str) -> str:
    return f"urn:cityverse:security:policy:{tenant or '-'}"


@dataclass
class Access:
    """What one request may do: the broker's ``Gate`` for this caller in this tenant."""

    identity: Identity
    tenant: str
    roles: frozenset[str]
    operation: str
    policy: TenantPolicy
    pseudonym_key: bytes
    disclosures: dict[str, set[str]] = field(default_factory=dict)
    _personal_shown: set[str] = field(default_factory=set)
    _hidden: dict[tuple[str, ...], bool] = field(default_factory=dict)
    _attrs: dict[tuple[tuple[str, ...], str], Treatment] = field(default_factory=dict)

    restricted: bool = True
    """Always: even a caller who may see everything has its sight of personal data logged."""

    @property
    def owner(self) -> Owner:
        """The caller as the owner of a subscription it creates (its notifications show
        what these roles may see)."""
        return Owner(self.identity.subject, self.roles)

    def allows(self, operation: str, types: Sequence[str]) -> bool:
        return self.policy.allows(self.roles, operation, types)

    def hides(self, types: Sequence[str]) -> bool:
        key = tuple(types)
        hidden = self._hidden.get(key)
        if hidden is None:
            hidden = self._hidden[key] = not self.allows("read", types)
        return hidden

    def attribute(self, types: Sequence[str], name: str) -> Treatment:
        key = (tuple(types), name)
        treatment = self._attrs.get(key)
        if treatment is None:
            item = self.policy.personal_attribute(types, name)
            if item is None:
                treatment = "show"
            elif self.allows("personal", types):
                treatment = "show"
                self._personal_shown.add(name)
            else:
                treatment = item.treatment
            self._attrs[key] = treatment
        return treatment

    def pseudonym(self, value: Any) -> str:
        body = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        return "pseudonym:" + hmac.new(self.pseudonym_key, body, hashlib.sha256).hexdigest()[:32]

    def may_write(self, types: Sequence[str], *, delete: bool = False) -> bool:
        return self.allows("delete" if delete else "write", types)

    def disclosed(self, entity_id: str, name: str) -> None:
        if name not in self._personal_shown or len(self.disclosures) >= 1000:
            return
        self.disclosures.setdefault(entity_id, set()).add(name)


class Guard:
    """Identifies callers and decides on every request, from the tenant's policy."""

    def __init__(
        self,
        settings: Settings,
        store: EntityStore,
        *,
        secret: bytes,
        policy_file: PolicyFile | None = None,
        verifier: TokenVerifier | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.enabled = settings.auth != "off"
        self.keys = KeyStore(store)
        self.verifier = verifier
        self.policy_file = policy_file
        self.secret = secret
        self.limiter = RateLimiter(settings.rate_limit)
        self._policies: dict[str, tuple[float, TenantPolicy]] = {}
        self._pseudonym_keys: dict[str, bytes] = {}

    @classmethod
    def from_settings(cls, settings: Settings, store: EntityStore, secret: bytes) -> Guard:
        """The guard the settings describe; ValueError when they are inconsistent."""
        if settings.auth not in ("on", "off"):
            raise ValueError(f"CITYVERSE_AUTH must be 'on' or 'off', not {settings.auth!r}")
        return cls(
            settings,
            store,
            secret=secret,
            policy_file=load_policy_file(settings.policy_file) if settings.policy_file else None,
            verifier=TokenVerifier.from_settings(settings),
        )

    # -- identities ------------------------------------------------------------------------

    async def identify(self, headers: Mapping[str, str]) -> Identity:
        """The caller named by the request's credentials; ANONYMOUS without any."""
        if not self.enabled:
            return OPEN_ACCESS
        token = _credential(headers)
        if token is None:
            return ANONYMOUS
        if looks_like_key(token):
            identity = await self.keys.authenticate(token)
            if identity is None:
                raise Unauthenticated("the API key is not valid or has been revoked")
            return identity
        if self.verifier is None:
            raise Unauthenticated(
                "bearer tokens are not accepted here: no OpenID Connect issuer is configured"
            )
        return await self.verifier.verify(token)

    # -- decisions ---------------------------------------------------------------------------

    async def admit(
        self, headers: Mapping[str, str], method: str, path: str, client: str
    ) -> Access:
        """The access of a request, or the error that refuses it."""
        identity = await self.identify(headers)
        operation = classify(method, path)
        tenant = request_tenant(headers, path)
        policy = await self.policy(tenant)
        roles = identity.roles_in(tenant)
        access = Access(identity, tenant, roles, operation, policy, self.pseudonym_key(tenant))
        if not self.enabled or operation in ("open", "measure"):
            return access
        if not self.limiter.allow(identity.subject if not identity.anonymous else client):
            raise TooManyRequests(
                f"more than {self.settings.rate_limit:g} requests per second; slow down"
            )
        if operation == "admin":
            allowed = "admin" in roles and (tenant != SECURITY_TENANT)
        else:
            allowed = policy.allows_any(roles, operation)
        if not allowed:
            if identity.anonymous:
                raise Unauthenticated(
                    "this request needs credentials: an API key or a bearer token"
                    " in the Authorization header"
                )
            raise Forbidden(f"your role in this tenant does not allow {operation}")
        return access

    async def gate_for(self, tenant: str, roles: frozenset[str]) -> Gate:
        """The gate of ``roles`` in ``tenant`` without a request: what a subscription
        owned by them may deliver (everything when security is off)."""
        if not self.enabled:
            return OPEN
        policy = await self.policy(tenant)
        identity = Identity("subscription owner", "owner", {tenant: roles})
        return Access(identity, tenant, roles, "read", policy, self.pseudonym_key(tenant))

    # -- policies ----------------------------------------------------------------------------

    async def policy(self, tenant: str) -> TenantPolicy:
        """The tenant's policy: set through the API, else from the file, else built in."""
        now = time.monotonic()
        cached = self._policies.get(tenant)
        if cached is not None and cached[0] > now:
            return cached[1]
        policy = await self._stored_policy(tenant)
        if policy is None:
            if self.policy_file is not None:
                policy = self.policy_file.for_tenant(tenant)
            elif self.settings.demo_speed > 0 and tenant == DEFAULT_TENANT:
                policy = DEMO_POLICY
            else:
                policy = DEFAULT_POLICY
        self._policies[tenant] = (now + POLICY_CACHE_SECONDS, policy)
        return policy

    async def _stored_policy(self, tenant: str) -> TenantPolicy | None:
        entity = await self.store.get(SECURITY_TENANT, _policy_id(tenant))
        if entity is None:
            return None
        try:
            return parse_tenant_policy(entity["attrs"][POLICY_DOC][0]["json"])
        except (BadRequestData, KeyError, IndexError) as exc:
            log.error("the stored policy of tenant %r cannot be read: %s", tenant, exc)
            return DEFAULT_POLICY

    async def set_policy(self, tenant: str, doc: Any) -> TenantPolicy:
        """Store a tenant's policy (validated first: a bad one changes nothing)."""
        policy = parse_tenant_policy(doc)
        entity: Entity = {
            "id": _policy_id(tenant),
            "type": [POLICY_TYPE],
            "attrs": {POLICY_DOC: [{"type": "JsonProperty", "json": doc}]},
        }
        [outcome] = await self.store.mutate(
            SECURITY_TENANT, [Change(str(entity["id"]), lambda _current: entity)]
        )
        if outcome.error is not None:
            raise outcome.error
        self._policies.pop(tenant, None)
        return policy

    def pseudonym_key(self, tenant: str) -> bytes:
        key = self._pseudonym_keys.get(tenant)
        if key is None:
            key = self._pseudonym_keys[tenant] = derive(self.secret, "pseudonym", tenant)
        return key


DEMO_POLICY = parse_tenant_policy(PUBLIC_READ)
"""The demo city's default tenant: everyone may look, stream and run scenarios."""


def load_policy_file(path: str) -> PolicyFile:
    """The policy file at ``path``; ValueError with the reason when it cannot be used."""
    try:
        doc = json.loads(Path(path).read_text())
        return parse_policy_file(doc, f"policy file {path}")
    except OSError as exc:
        raise ValueError(f"the policy file {path} cannot be read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the policy file {path} is not valid JSON: {exc}") from None
    except BadRequestData as exc:
        raise ValueError(exc.detail) from None


def _credential(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token or API key>'")
        return token.strip()
    key = headers.get("x-api-key")
    return key.strip() if key else None


def request_tenant(headers: Mapping[str, str], path: str) -> str:
    """The tenant a request addresses (NGSILD-Tenant, or Fiware-Service for /iot)."""
    raw = headers.get("ngsild-tenant")
    if raw is None and path.startswith("/iot/"):
        raw = headers.get("fiware-service")
    return parse_tenant(raw)
