"""Matching a subscription against a change (GS CIM 009 v1.8 5.2.12 triggers, 5.11)."""

from __future__ import annotations

from typing import Any

import pytest

from cityverse.broker.subscriptions import parse_subscription
from cityverse.core.context import ContextResolver
from cityverse.core.model import DEFAULT_CONTEXT_VOCAB as V
from cityverse.notify.match import SubscriptionIndex, compile_subscription, diff, status
from cityverse.store.subscriptions import ChangeRecord, SubscriptionRow

CTX = ContextResolver().core
T0 = "2026-01-01T00:00:00.000Z"
T1 = "2026-01-01T00:00:01.000Z"


def compiled(**members: Any) -> Any:
    body = {
        "type": "Subscription",
        "entities": [{"type": "Pipe"}],
        "notification": {"endpoint": {"uri": "http://127.0.0.1/x"}},
        **members,
    }
    body = {k: v for k, v in body.items() if v is not None}
    doc = parse_subscription(body, CTX, now=T0, creating=True)
    doc["createdAt"] = T0
    return compile_subscription(SubscriptionRow("", "urn:s", doc))


def pipe(n: int = 1, *, scope: str | None = None, **values: Any) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Pipe:{n}",
        "type": [V + "Pipe"],
        "attrs": {V + k: [{"type": "Property", "value": v}] for k, v in values.items()},
    }
    if scope:
        entity["scope"] = [scope]
    return entity


def change(old: Any, new: Any, at: str = T1) -> ChangeRecord:
    return ChangeRecord(1, "", (new or old)["id"], old, new, at)


def trigger(sub: Any, old: Any, new: Any) -> str | None:
    hit = sub.match(change(old, new))
    return None if hit is None else str(hit.trigger)


def test_default_triggers_fire_on_creation_and_update() -> None:
    """5.2.12: attributeCreated and attributeUpdated by default; an entity's creation
    creates its attributes."""
    sub = compiled()
    assert trigger(sub, None, pipe(diameter=1)) == "attributeCreated"
    assert trigger(sub, pipe(diameter=1), pipe(diameter=2)) == "attributeUpdated"
    assert trigger(sub, pipe(diameter=1), pipe(diameter=1, roughness=3)) == "attributeCreated"
    assert trigger(sub, pipe(diameter=1, roughness=3), pipe(diameter=1)) is None
    assert trigger(sub, pipe(diameter=1), None) is None


@pytest.mark.parametrize(
    ("triggers", "old", "new", "expected"),
    [
        (["entityCreated"], None, pipe(diameter=1), "entityCreated"),
        (["entityCreated"], pipe(diameter=1), pipe(diameter=2), None),
        (["entityDeleted"], pipe(diameter=1), None, "entityDeleted"),
        (["entityDeleted"], None, pipe(diameter=1), None),
        (["entityUpdated"], pipe(diameter=1), pipe(diameter=2), "entityUpdated"),
        (["entityUpdated"], pipe(diameter=1), pipe(diameter=1, scope="/a"), "entityUpdated"),
        (["attributeDeleted"], pipe(diameter=1, r=2), pipe(diameter=1), "attributeDeleted"),
        (["attributeDeleted"], pipe(diameter=1), pipe(diameter=2), None),
        (["attributeUpdated"], pipe(diameter=1), pipe(diameter=1, r=2), None),
    ],
)
def test_each_trigger(triggers: list[str], old: Any, new: Any, expected: str | None) -> None:
    """5.2.12 notificationTrigger: each value fires on its own kind of change only."""
    assert trigger(compiled(notificationTrigger=triggers), old, new) == expected


def test_watched_attributes() -> None:
    """5.2.12 watchedAttributes: only changes of those attributes count."""
    sub = compiled(watchedAttributes=["diameter"])
    assert trigger(sub, pipe(diameter=1, r=1), pipe(diameter=1, r=2)) is None
    assert trigger(sub, pipe(diameter=1, r=1), pipe(diameter=2, r=1)) == "attributeUpdated"
    hit = sub.match(change(pipe(diameter=1, r=1), pipe(diameter=2, r=2)))
    assert hit.updated == {V + "diameter"}


def test_entities_selectors() -> None:
    """5.2.33 EntitySelector: id, idPattern and type must all hold; any selector may."""
    sub = compiled(
        entities=[
            {"type": "Pipe", "idPattern": "urn:ngsi-ld:Pipe:1.*"},
            {"type": "Pipe", "id": "urn:ngsi-ld:Pipe:7"},
        ]
    )
    assert trigger(sub, None, pipe(12, d=1)) == "attributeCreated"
    assert trigger(sub, None, pipe(7, d=1)) == "attributeCreated"
    assert trigger(sub, None, pipe(8, d=1)) is None
    tank = {**pipe(12, d=1), "type": [V + "Tank"]}
    assert trigger(sub, None, tank) is None


def test_queries() -> None:
    """5.2.12 q, scopeQ and geoQ are evaluated on the entity after the change."""
    sub = compiled(q="diameter>100", scopeQ="/Oujda/#")
    assert trigger(sub, None, pipe(diameter=150, scope="/Oujda/Centre")) == "attributeCreated"
    assert trigger(sub, None, pipe(diameter=50, scope="/Oujda/Centre")) is None
    assert trigger(sub, None, pipe(diameter=150, scope="/Berkane")) is None
    near = compiled(
        geoQ={"geometry": "Point", "coordinates": [-1.9, 34.68], "georel": "near;maxDistance==1000"}
    )
    here = pipe(d=1)
    here["attrs"]["https://uri.etsi.org/ngsi-ld/location"] = [
        {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-1.901, 34.681]}}
    ]
    far = pipe(d=1)
    far["attrs"]["https://uri.etsi.org/ngsi-ld/location"] = [
        {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [-2.3, 34.9]}}
    ]
    assert trigger(near, None, here) == "attributeCreated"
    assert trigger(near, None, far) is None


def test_changes_before_the_subscription_are_ignored() -> None:
    """5.11: a subscription notifies the changes made after it was created."""
    sub = compiled()
    assert sub.match(change(None, pipe(d=1), at="2025-12-31T23:59:59.999Z")) is None
    assert sub.match(change(None, pipe(d=1), at=T0)) is not None


def test_status_and_activity() -> None:
    """5.2.12 status: paused when isActive is false, expired after expiresAt."""
    sub = compiled(expiresAt="2030-01-01T00:00:00Z")
    assert sub.is_active("2029-12-31T23:59:59.999Z")
    assert not sub.is_active("2030-01-01T00:00:00.000Z")
    assert status(sub.doc, "2030-01-01T00:00:00.001Z") == "expired"
    paused = compiled(isActive=False)
    assert not paused.is_active(T1)
    assert status(paused.doc, T1) == "paused"
    assert status(compiled().doc, T1) == "active"


def test_periodic_subscriptions_do_not_match_changes() -> None:
    """5.2.12 timeInterval: periodic notifications, not change-triggered ones."""
    assert compiled(timeInterval=60).match(change(None, pipe(d=1))) is None


def test_diff() -> None:
    """Created, updated and deleted attribute names between two states."""
    created, updated, deleted = diff(pipe(a=1, b=2, c=3), pipe(a=1, b=5, d=4))
    assert (created, updated, deleted) == ({V + "d"}, {V + "b"}, {V + "c"})


def test_index_finds_every_subscription_that_can_match() -> None:
    """The index narrows by entity id and type, and never leaves out a match."""
    by_id = compiled(entities=[{"type": "Pipe", "id": "urn:ngsi-ld:Pipe:1"}])
    by_type = compiled(entities=[{"type": "Pipe|Tank"}])
    other_type = compiled(entities=[{"type": "Junction"}])
    watched_only = compiled(entities=None, watchedAttributes=["diameter"])
    index = SubscriptionIndex([by_id, by_type, other_type, watched_only])
    found = index.candidates(pipe(1, diameter=1))
    assert set(map(id, found)) == {id(by_id), id(by_type), id(watched_only)}
    assert len(found) == 3
    found = index.candidates(pipe(2, diameter=1))
    assert set(map(id, found)) == {id(by_type), id(watched_only)}
    # Whatever the index leaves out does not match.
    subs = [by_id, by_type, other_type, watched_only]
    for entity in (pipe(1, diameter=1), pipe(2, diameter=1), {**pipe(3), "type": [V + "Tank"]}):
        left_out = [s for s in subs if s not in index.candidates(entity)]
        assert all(s.match(change(None, entity)) is None for s in left_out)
