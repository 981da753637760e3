"""The attribute algebra behind append, update, merge and replace (GS CIM 009 5.6)."""

from __future__ import annotations

from cityverse.broker import attrs


def inst(value: object, dataset: str | None = None, **extra: object) -> dict[str, object]:
    out: dict[str, object] = {"type": "Property", "value": value, **extra}
    if dataset is not None:
        out["datasetId"] = dataset
    return out


def test_replace_matches_by_dataset_and_keeps_created() -> None:
    """5.6.3: an instance replaces the one with its datasetId; createdAt survives."""
    stored = [inst(1, createdAt="t0"), inst(2, "urn:d:a", createdAt="t0")]
    result = attrs.replace_instances(stored, [inst(5, "urn:d:a", createdAt="t1")])
    assert result == [inst(1, createdAt="t0"), inst(5, "urn:d:a", createdAt="t0")]


def test_replace_adds_new_datasets_default_first() -> None:
    """4.5.5 multi-attributes: a new datasetId is added; the default instance stays first."""
    stored = [inst(2, "urn:d:a")]
    result = attrs.replace_instances(stored, [inst(1)])
    assert [i.get("datasetId") for i in result] == [None, "urn:d:a"]


def test_merge_instance_merges_sub_attributes_and_deletes_nulls() -> None:
    """5.6.17: merge keeps what the patch does not name and removes NGSI-LD nulls."""
    stored = {
        "type": "Property",
        "value": 1,
        "unitCode": "CEL",
        "createdAt": "t0",
        "sub": {"a": inst(1), "b": inst(2)},
    }
    patch = {
        "type": "Property",
        "value": 3,
        "createdAt": "t1",
        "sub": {"a": inst("urn:ngsi-ld:null"), "c": inst(4)},
    }
    merged = attrs.merge_instance(stored, patch)
    assert merged["value"] == 3 and merged["unitCode"] == "CEL" and merged["createdAt"] == "t0"
    assert merged["sub"] == {"b": inst(2), "c": inst(4)}


def test_merge_instance_drops_none_sub_attributes() -> None:
    """5.6.17: a sub-attribute parsed as a deletion (None) is removed."""
    stored = {"type": "Property", "value": 1, "sub": {"a": inst(1)}}
    merged = attrs.merge_instance(stored, {"type": "Property", "value": 1, "sub": {"a": None}})
    assert "sub" not in merged


def test_merge_instance_changing_type_drops_old_value_member() -> None:
    """5.6.17: turning a Property into a Relationship leaves no stale 'value'."""
    stored = inst(1)
    merged = attrs.merge_instance(stored, {"type": "Relationship", "object": "urn:x:1"})
    assert merged == {"type": "Relationship", "object": "urn:x:1"}


def test_find_and_is_null() -> None:
    assert attrs.find([inst(1), inst(2, "urn:d:a")], "urn:d:a") == 1
    assert attrs.find([inst(1)], "urn:d:z") == -1
    assert attrs.is_null(inst("urn:ngsi-ld:null"))
    assert not attrs.is_null(inst("urn:ngsi-ld:other"))
