"""Retention erases expired personal data from the current state and from history."""

from __future__ import annotations

from cityverse.security.policy import parse_tenant_policy
from cityverse.security.privacy import PersonalRetention
from tests.security.conftest import Secured

POLICY = {
    "personal": [
        {
            "type": "ServiceRequest",
            "attribute": "contactPoint",
            "purpose": "reply",
            "retention": "P30D",
            "treatment": "hide",
        }
    ]
}


async def test_expired_personal_data_is_erased(secured: Secured) -> None:
    h = secured.headers("admin")
    for n, seen in ((1, "2026-01-01T00:00:00.000Z"), (2, "2026-11-20T00:00:00.000Z")):
        body = {
            "id": f"urn:ngsi-ld:ServiceRequest:{n}",
            "type": "ServiceRequest",
            "status": {"type": "Property", "value": "open"},
            "contactPoint": {"type": "Property", "value": f"r{n}@example.org", "observedAt": seen},
        }
        assert (
            await secured.client.post("/ngsi-ld/v1/entities", json=body, headers=h)
        ).status_code == 201
    store = secured.app.state.broker.store
    retention = PersonalRetention(store, lambda tenant: _policy())
    now = 1_795_219_200_000  # 2026-11-21
    erased = await retention.run_once(now)
    assert erased >= 1
    old = (
        await secured.client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:ServiceRequest:1", headers=h)
    ).json()
    recent = (
        await secured.client.get("/ngsi-ld/v1/entities/urn:ngsi-ld:ServiceRequest:2", headers=h)
    ).json()
    assert "contactPoint" not in old and old["status"]["value"] == "open"
    assert recent["contactPoint"]["value"] == "r2@example.org"
    history = await secured.client.get(
        "/ngsi-ld/v1/temporal/entities/urn:ngsi-ld:ServiceRequest:1",
        params={"attrs": "contactPoint"},
        headers=h,
    )
    assert "r1@example.org" not in history.text


async def _policy():  # type: ignore[no-untyped-def]
    return parse_tenant_policy(POLICY)
