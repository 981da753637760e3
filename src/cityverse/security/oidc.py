"""Bearer tokens (JWT) from the city's OpenID Connect provider (Keycloak or any other).

A token is valid when its signature checks against the issuer's published keys (JWKS,
fetched from ``CITYVERSE_OIDC_JWKS`` and cached, or read from a file on air-gapped
sites), its issuer and audience are the configured ones and it has not expired. Its
roles come from a claim (``CITYVERSE_OIDC_ROLES_CLAIM``, a dotted path such as
``realm_access.roles``): each value is ``tenant:role`` or a bare role, which applies in
the tenants named by the tenant claim (``CITYVERSE_OIDC_TENANT_CLAIM``) or else in the
default tenant::

    verifier = TokenVerifier.from_settings(settings)
    identity = await verifier.verify(token)       # Unauthenticated when invalid
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import jwt

from cityverse.core.errors import Unauthenticated
from cityverse.security.identity import Identity
from cityverse.security.policy import ROLES
from cityverse.settings import Settings
from cityverse.store.base import DEFAULT_TENANT

ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"]
CACHE_SIZE = 4096


class TokenVerifier:
    """Checks bearer tokens against one issuer's keys; caches identities until expiry."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        jwks: str,
        *,
        roles_claim: str = "roles",
        tenant_claim: str = "tenant",
    ) -> None:
        self.issuer = issuer
        self.audience = audience or None
        self.roles_claim = roles_claim
        self.tenant_claim = tenant_claim
        self._client: jwt.PyJWKClient | None = None
        self._keys: jwt.PyJWKSet | None = None
        if jwks.startswith(("https://", "http://")):
            self._client = jwt.PyJWKClient(jwks, cache_keys=True, lifespan=3600)
        else:
            try:
                self._keys = jwt.PyJWKSet.from_dict(json.loads(Path(jwks).read_text()))
            except (OSError, ValueError, jwt.PyJWKSetError) as exc:
                raise ValueError(f"CITYVERSE_OIDC_JWKS {jwks!r} cannot be read: {exc}") from None
        self._cache: dict[str, tuple[float, Identity]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier | None:
        """The verifier the settings configure, or None when no issuer is set."""
        if not settings.oidc_issuer:
            return None
        if not settings.oidc_jwks:
            raise ValueError("CITYVERSE_OIDC_ISSUER is set but CITYVERSE_OIDC_JWKS is not")
        return cls(
            settings.oidc_issuer,
            settings.oidc_audience,
            settings.oidc_jwks,
            roles_claim=settings.oidc_roles_claim,
            tenant_claim=settings.oidc_tenant_claim,
        )

    async def verify(self, token: str) -> Identity:
        """The identity a valid token carries; Unauthenticated otherwise."""
        cached = self._cache.get(token)
        if cached is not None and cached[0] > time.time():
            return cached[1]
        if self._client is not None:
            # Fetching the issuer's keys is blocking network I/O: off the event loop.
            claims, expires = await asyncio.to_thread(self._decode, token)
        else:
            claims, expires = self._decode(token)
        identity = self._identity(claims)
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[token] = (expires, identity)
        return identity

    def _decode(self, token: str) -> tuple[dict[str, Any], float]:
        try:
            key = self._signing_key(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "sub"], "verify_aud": bool(self.audience)},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the bearer token is not valid: {exc}") from None
        return claims, float(claims["exp"])

    def _signing_key(self, token: str) -> Any:
        if self._client is not None:
            return self._client.get_signing_key_from_jwt(token).key
        assert self._keys is not None
        kid = jwt.get_unverified_header(token).get("kid")
        for key in self._keys.keys:
            if kid is None or key.key_id == kid:
                return key.key
        raise jwt.InvalidTokenError(f"no key {kid!r} in the issuer's key set")

    def _identity(self, claims: dict[str, Any]) -> Identity:
        raw: Any = claims
        for part in self.roles_claim.split("."):
            raw = raw.get(part) if isinstance(raw, dict) else None
        values = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []
        tenants_raw = claims.get(self.tenant_claim)
        tenants = (
            [tenants_raw]
            if isinstance(tenants_raw, str)
            else [t for t in tenants_raw if isinstance(t, str)]
            if isinstance(tenants_raw, list)
            else [DEFAULT_TENANT]
        )
        roles: dict[str, set[str]] = {}
        for value in values:
            if not isinstance(value, str):
                continue
            tenant, _, role = value.rpartition(":")
            if role not in ROLES:
                continue  # the provider's other roles (offline_access, ...) mean nothing here
            for where in [tenant] if tenant else tenants:
                roles.setdefault(where, set()).add(role)
        return Identity(
            subject=f"oidc:{claims['sub']}",
            kind="jwt",
            roles={t: frozenset(r) for t, r in roles.items()},
            name=str(claims.get("preferred_username") or claims.get("name") or ""),
        )
