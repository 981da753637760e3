"""Identities: API keys through the API, bearer tokens from an OpenID Connect issuer."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from cityverse.api.app import create_app
from cityverse.settings import Settings
from cityverse.store.base import EntityStore
from tests.security.conftest import Secured

ISSUER = "https://sso.berkane.example/realms/city"


async def test_keys_created_listed_revoked_through_the_api(secured: Secured) -> None:
    h = secured.headers("admin")
    r = await secured.client.post(
        "/cityverse/v1/security/keys", json={"role": "analyst", "name": "dashboards"}, headers=h
    )
    assert r.status_code == 201, r.text
    created = r.json()
    token = created["key"]
    listed = (await secured.client.get("/cityverse/v1/security/keys", headers=h)).json()
    assert created["id"] in {k["id"] for k in listed}
    assert all("key" not in k and "hash" not in k for k in listed), "secrets never listed"
    as_analyst = {"Authorization": f"Bearer {token}"}
    me = (await secured.client.get("/cityverse/v1/security/whoami", headers=as_analyst)).json()
    assert me["roles"] == ["analyst"] and me["subject"] == f"key:{created['id']}"
    r = await secured.client.delete(f"/cityverse/v1/security/keys/{created['id']}", headers=h)
    assert r.status_code == 204
    r = await secured.client.get("/ngsi-ld/v1/entities?type=X", headers=as_analyst)
    assert r.status_code == 401
    assert "revoked" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [{"role": "emperor"}, {"role": "public"}, [], {"role": "admin", "colour": "red"}],
)
async def test_bad_key_requests_are_refused_clearly(secured: Secured, body: Any) -> None:
    r = await secured.client.post(
        "/cityverse/v1/security/keys", json=body, headers=secured.headers("admin")
    )
    assert r.status_code == 400 and r.json()["detail"]


async def test_a_tenant_admin_cannot_mint_keys_elsewhere(secured: Secured) -> None:
    r = await secured.client.post(
        "/cityverse/v1/security/keys",
        json={"role": "admin", "tenant": "other"},
        headers=secured.headers("admin"),
    )
    assert r.status_code == 403


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer cvk_0000000000000000_" + "A" * 43, "Bearer "]
)
async def test_bad_credentials_are_401(secured: Secured, header: str) -> None:
    r = await secured.client.get("/ngsi-ld/v1/entities?type=X", headers={"Authorization": header})
    assert r.status_code == 401 and r.json()["title"]


async def test_bad_policy_changes_nothing(secured: Secured) -> None:
    h = secured.headers("admin")
    good = {"roles": {"public": {"read": ["WeatherObserved"]}}}
    assert (
        await secured.client.put("/cityverse/v1/security/policy", json=good, headers=h)
    ).status_code == 204
    for bad in (
        {"roles": {"mayor": {"read": ["*"]}}},
        {"roles": {"public": {"fly": ["*"]}}},
        {"personal": [{"attribute": "email", "retention": "forever"}]},
        {"personal": [{"attribute": "email", "treatment": "shout"}]},
        ["not", "an", "object"],
    ):
        r = await secured.client.put("/cityverse/v1/security/policy", json=bad, headers=h)
        assert r.status_code == 400, bad
    policy = (await secured.client.get("/cityverse/v1/security/policy", headers=h)).json()
    assert policy["roles"]["public"] == {"read": ["WeatherObserved"]}


def _issuer(tmp_path: Path) -> tuple[Any, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    return key, path


def _token(key: Any, **claims: Any) -> str:
    body = {"iss": ISSUER, "sub": "u-42", "aud": "cityverse", "exp": time.time() + 300, **claims}
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"})


async def test_oidc_bearer_tokens(store: EntityStore, tmp_path: Path) -> None:
    key, jwks = _issuer(tmp_path)
    settings = Settings(
        data_dir=str(tmp_path),
        auth="on",
        oidc_issuer=ISSUER,
        oidc_audience="cityverse",
        oidc_jwks=str(jwks),
        oidc_roles_claim="realm_access.roles",
    )
    app = create_app(settings, store=store)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

        async def status(token: str, tenant: str = "") -> int:
            h = {"Authorization": f"Bearer {token}"} | ({"NGSILD-Tenant": tenant} if tenant else {})
            body = {"id": "urn:ngsi-ld:Building:o", "type": "Building"}
            return (await client.post("/ngsi-ld/v1/entities", json=body, headers=h)).status_code

        operator = _token(key, realm_access={"roles": ["operator", "offline_access"]})
        assert await status(operator) in (201, 409)
        analyst = _token(key, realm_access={"roles": ["analyst"]})
        assert await status(analyst) == 403
        scoped = _token(key, realm_access={"roles": ["north:operator"]})
        assert await status(scoped) == 403
        assert await status(scoped, "north") == 201
        (tmp_path / "other").mkdir()
        other_key, _ = _issuer(tmp_path / "other")
        assert await status(_token(other_key, realm_access={"roles": ["admin"]})) == 401
        assert (
            await status(_token(key, exp=time.time() - 10, realm_access={"roles": ["admin"]}))
            == 401
        )
        assert await status(_token(key, aud="elsewhere", realm_access={"roles": ["admin"]})) == 401
        assert (
            await status(_token(key, iss="https://evil.example", realm_access={"roles": ["admin"]}))
            == 401
        )


async def test_rate_limit_per_identity(store: EntityStore, tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=str(tmp_path), auth="on", rate_limit=5), store=store)
    token, _ = await app.state.guard.keys.create("", "analyst")
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        h = {"Authorization": f"Bearer {token}"}
        codes = [
            (await client.get("/ngsi-ld/v1/entities?type=X", headers=h)).status_code
            for _ in range(20)
        ]
    assert codes[:10].count(429) == 0, codes
    assert 429 in codes[10:]


async def test_open_mode_and_dashboard_headers(store: EntityStore, tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=str(tmp_path), auth="off"), store=store)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        info = (await client.get("/ngsi-ld/v1/info/sourceIdentity")).json()
        assert info["contextSourceExtras"]["security"].startswith("OFF")
        page = await client.get("/")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
