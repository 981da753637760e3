"""No query of any kind returns another tenant's data or a personal attribute to a role
without the right to see it (property-based: hypothesis draws the queries)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.security.conftest import Secured

TYPES = ("Building", "ServiceRequest", "Streetlight")
SECRET = "amina@example.org"


def _entity(tenant: str, kind: str, n: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:{kind}:{tenant or 'default'}-{n}",
        "type": kind,
        "level": {"type": "Property", "value": n},
        "contactPoint": {"type": "Property", "value": {"email": SECRET}},
        "customer": {"type": "Property", "value": f"customer-{n}"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [-2.32 + n / 1000, 34.92]},
        },
    }


async def _seed(s: Secured) -> None:
    for tenant in ("", "other"):
        batch = [_entity(tenant, kind, n) for kind in TYPES for n in range(5)]
        r = await s.client.post(
            "/ngsi-ld/v1/entityOperations/upsert", json=batch, headers=s.headers("admin", tenant)
        )
        assert r.status_code in (201, 204), r.text


queries = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from([*TYPES, ",".join(TYPES)]),
        "q": st.sampled_from(["level>2", "level<3", "level==1", "level!=0", "customer"]),
        "idPattern": st.sampled_from([".*", "urn:ngsi-ld:.*other.*", ".*default.*"]),
        "attrs": st.sampled_from(["contactPoint", "customer", "level,contactPoint", "level"]),
        "georel": st.just("near;maxDistance==5000"),
        "options": st.sampled_from(["keyValues", "sysAttrs"]),
    },
).map(lambda q: {**q, "geometry": "Point", "coordinates": "[-2.32,34.92]"} if "georel" in q else q)


def _seen(body: Any) -> str:
    return str(body)


@pytest.mark.parametrize("role", ["analyst", "developer", "citizen", "operator"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(query=queries, temporal=st.booleans())
async def test_queries_stay_in_their_tenant_and_keep_personal_data(
    secured: Secured, role: str, query: dict[str, str], temporal: bool
) -> None:
    if not getattr(secured.app.state, "seeded", False):
        await _seed(secured)
        secured.app.state.seeded = True
    if "type" not in query and "attrs" not in query and "q" not in query and "georel" not in query:
        query = {**query, "type": "Building"}
    path = "/ngsi-ld/v1/temporal/entities" if temporal else "/ngsi-ld/v1/entities"
    r = await secured.client.get(path, params=query, headers=secured.headers(role))
    assert r.status_code < 500, r.text
    text = _seen(r.json())
    assert "other-" not in text, "another tenant's entity was returned"
    if role != "operator":
        assert SECRET not in text and "customer-" not in text, f"{role} saw personal data"
    # The key of one tenant opens nothing in another.
    r = await secured.client.get(
        path, params=query, headers={**secured.headers(role), "NGSILD-Tenant": "other"}
    )
    assert r.status_code == 403


async def test_personal_attributes_hidden_or_pseudonymised(secured: Secured) -> None:
    await _seed(secured)
    url = "/ngsi-ld/v1/entities/urn:ngsi-ld:ServiceRequest:default-3"
    seen = (await secured.client.get(url, headers=secured.headers("analyst"))).json()
    assert "contactPoint" not in seen
    pseudonym = seen["customer"]["value"]
    assert pseudonym.startswith("pseudonym:") and "customer-3" not in pseudonym
    again = (await secured.client.get(url, headers=secured.headers("citizen"))).json()
    assert again["customer"]["value"] == pseudonym, "a pseudonym is stable within a tenant"
    clear = (await secured.client.get(url, headers=secured.headers("operator"))).json()
    assert clear["contactPoint"]["value"] == {"email": SECRET}
    assert clear["customer"]["value"] == "customer-3"
    # Discovery shows a role the attributes it may see, as it sees them.
    listed = await secured.client.get("/ngsi-ld/v1/attributes", headers=secured.headers("analyst"))
    assert "contactPoint" not in listed.json()["attributeList"]
    assert "customer" in listed.json()["attributeList"]
    hidden = await secured.client.get(
        "/ngsi-ld/v1/attributes/contactPoint", headers=secured.headers("analyst")
    )
    assert hidden.status_code == 404, hidden.text
    shown = await secured.client.get(
        "/ngsi-ld/v1/attributes/contactPoint", headers=secured.headers("operator")
    )
    assert shown.status_code == 200 and shown.json()["attributeCount"] == 15
    other = "/ngsi-ld/v1/entities/urn:ngsi-ld:ServiceRequest:other-3"
    there = (await secured.client.get(other, headers=secured.headers("analyst", "other"))).json()
    assert there["customer"]["value"] != pseudonym, "the same value has another pseudonym there"
    # The operator's sight of personal data is in the audit log.
    secured.app.state.audit.flush_now()
    log = (secured.app.state.audit.path).read_text()
    assert "urn:ngsi-ld:ServiceRequest:default-3" in log and "contactPoint" in log


async def test_hidden_types_are_not_even_said_to_exist(secured: Secured) -> None:
    await _seed(secured)
    policy = {"roles": {"citizen": {"read": ["Streetlight"]}}}
    r = await secured.client.put(
        "/cityverse/v1/security/policy", json=policy, headers=secured.headers("admin")
    )
    assert r.status_code == 204, r.text
    h = secured.headers("citizen")
    hidden = await secured.client.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:default-1", headers=h
    )
    missing = await secured.client.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:nothing", headers=h
    )
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["type"] == missing.json()["type"]
    listed = await secured.client.get(
        "/ngsi-ld/v1/entities", params={"type": "Building,Streetlight"}, headers=h
    )
    assert {e["type"] for e in listed.json()} == {"Streetlight"}
    # Counts and pages are those of what it may read: the hidden Buildings are not
    # counted, and a page is not cut short by them.
    for kind, total in (("Building", 0), ("Building,Streetlight", 5), ("Streetlight", 5)):
        counted = await secured.client.get(
            "/ngsi-ld/v1/entities", params={"type": kind, "count": "true"}, headers=h
        )
        assert counted.headers["NGSILD-Results-Count"] == str(total), kind
    page = await secured.client.get(
        "/ngsi-ld/v1/entities",
        params={"type": "Building,Streetlight", "limit": "3", "offset": "1"},
        headers=h,
    )
    assert [e["id"] for e in page.json()] == [
        f"urn:ngsi-ld:Streetlight:default-{n}" for n in (1, 2, 3)
    ]
    # Nor does discovery name them, count them or list their attributes.
    types = await secured.client.get("/ngsi-ld/v1/types", headers=h)
    assert types.json()["typeList"] == ["Streetlight"]
    details = await secured.client.get("/ngsi-ld/v1/types?details=true", headers=h)
    assert [t["typeName"] for t in details.json()] == ["Streetlight"]
    for path in ("/ngsi-ld/v1/types/Building", "/ngsi-ld/v1/types/ServiceRequest"):
        info = await secured.client.get(path, headers=h)
        assert info.status_code == 404, info.text
    lamps = (await secured.client.get("/ngsi-ld/v1/types/Streetlight", headers=h)).json()
    assert lamps["entityCount"] == 5
    attributes = await secured.client.get("/ngsi-ld/v1/attributes?details=true", headers=h)
    assert {n for a in attributes.json() for n in a["typeNames"]} == {"Streetlight"}
    assert all(a["attributeCount"] == 5 for a in attributes.json())
    # And it cannot change what it cannot see.
    body = {"level": {"type": "Property", "value": 99}}
    r = await secured.client.patch(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:default-1/attrs", json=body, headers=h
    )
    assert r.status_code in (403, 404)
    stored = await secured.client.get(
        "/ngsi-ld/v1/entities/urn:ngsi-ld:Building:default-1", headers=secured.headers("admin")
    )
    assert stored.json()["level"]["value"] == 1


async def test_subscriptions_devices_and_keys_stay_in_their_tenant(secured: Secured) -> None:
    for tenant in ("", "other"):
        h = secured.headers("operator", tenant)
        sub = {
            "type": "Subscription",
            "entities": [{"type": "Building"}],
            "notification": {"endpoint": {"uri": f"http://127.0.0.1:9/{tenant or 'default'}"}},
        }
        assert (
            await secured.client.post("/ngsi-ld/v1/subscriptions", json=sub, headers=h)
        ).status_code == 201
        group = {
            "services": [
                {"apikey": f"k-{tenant or 'default'}", "entity_type": "Thing", "resource": "/iot/d"}
            ]
        }
        iot_h = {**h, "Fiware-Service": tenant} if tenant else h
        assert (
            await secured.client.post("/iot/services", json=group, headers=iot_h)
        ).status_code == 201
    subs = (
        await secured.client.get("/ngsi-ld/v1/subscriptions", headers=secured.headers("operator"))
    ).text
    assert "/default" in subs and "/other" not in subs
    groups = (await secured.client.get("/iot/services", headers=secured.headers("operator"))).text
    assert "k-default" in groups and "k-other" not in groups
    keys = (
        await secured.client.get("/cityverse/v1/security/keys", headers=secured.headers("admin"))
    ).json()
    assert keys and all(k["tenant"] == "" for k in keys)
    other_keys = (
        await secured.client.get(
            "/cityverse/v1/security/keys", headers=secured.headers("admin", "other")
        )
    ).json()
    assert other_keys and all(k["tenant"] == "other" for k in other_keys)
