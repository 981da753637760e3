"""The algebra of attributes: pure functions that combine stored attribute instances.

Create, append, update, merge and replace differ only in how new instances meet the
ones already stored; each rule is one function here, over the shape of core/model.py.
Matching instances share a ``datasetId`` (absent means the default instance).
"""

from __future__ import annotations

from typing import Any

from cityverse.core.model import Instance

NGSI_LD_NULL = "urn:ngsi-ld:null"


def find(instances: list[Instance], dataset_id: str | None) -> int:
    """Index of the instance with this datasetId in ``instances``, or -1."""
    for i, inst in enumerate(instances):
        if inst.get("datasetId") == dataset_id:
            return i
    return -1


def ordered(instances: list[Instance]) -> list[Instance]:
    """The instances with the default instance (no datasetId) first."""
    if len(instances) > 1 and "datasetId" in instances[0]:
        instances.sort(key=lambda inst: "datasetId" in inst)
    return instances


def replace_instances(
    stored: list[Instance], new: list[Instance], *, keep_created: bool = True
) -> list[Instance]:
    """``stored`` with each new instance replacing the one of its datasetId, or added."""
    if len(stored) == len(new) == 1:
        # The usual case, a measure's or a patch's: one instance replacing its own.
        old, inst = stored[0], new[0]
        if old.get("datasetId") == inst.get("datasetId"):
            if keep_created and "createdAt" in old:
                inst = {**inst, "createdAt": old["createdAt"]}
            return [inst]
    result = list(stored)
    for inst in new:
        i = find(result, inst.get("datasetId"))
        if i < 0:
            result.append(inst)
            continue
        if keep_created and "createdAt" in result[i]:
            inst = {**inst, "createdAt": result[i]["createdAt"]}
        result[i] = inst
    return ordered(result)


def merge_instance(stored: Instance, patch: Instance) -> Instance:
    """``stored`` with the members of ``patch`` merged in (GS CIM 009 5.6.17 merge-patch).

    Value members and metadata of the patch win; sub-attributes are merged one by one,
    a sub-attribute whose value is the NGSI-LD null being removed.
    """
    merged: dict[str, Any] = dict(stored)
    for key, value in patch.items():
        if key == "sub":
            continue
        if key == "createdAt":
            continue
        merged[key] = value
    if patch.get("type") and patch["type"] != stored.get("type"):
        # A change of attribute type: drop the old value member.
        for member in (
            "value",
            "object",
            "languageMap",
            "vocab",
            "valueList",
            "objectList",
            "json",
        ):
            if member in stored and member not in patch:
                merged.pop(member, None)
    subs = dict(stored.get("sub", {}))
    for name, sub in patch.get("sub", {}).items():
        if is_null(sub):
            subs.pop(name, None)
        elif name in subs:
            subs[name] = merge_instance(subs[name], sub)
        else:
            subs[name] = sub
    if subs:
        merged["sub"] = subs
    else:
        merged.pop("sub", None)
    return merged


def merge_instances(stored: list[Instance], patch: list[Instance]) -> list[Instance]:
    """Merge each patch instance into the stored instance of its datasetId, or add it."""
    result = list(stored)
    for inst in patch:
        i = find(result, inst.get("datasetId"))
        if i < 0:
            result.append(inst)
        else:
            result[i] = merge_instance(result[i], inst)
    return ordered(result)


def is_null(instance: Instance | None) -> bool:
    """True for a deletion in a merge-patch: None, or a value that is the NGSI-LD null."""
    if instance is None:
        return True
    for member in ("value", "object", "vocab", "json"):
        if instance.get(member) == NGSI_LD_NULL:
            return True
    return False


def touch(instances: list[Instance], now: str) -> list[Instance]:
    """The instances with ``modifiedAt`` set to now."""
    for inst in instances:
        inst["modifiedAt"] = now
    return instances
