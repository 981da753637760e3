"""What a change to an entity adds to its history: a pure function both stores share.

``entity_history(old, new, now)`` compares the entity before and after one change and
returns the instances to record, each with its times as epoch milliseconds::

    change = entity_history(stored, updated, now=ms_of("2026-11-21T08:31:26.123Z"))
    for record in change.records:   # only the instances that are new or changed
        ...

An instance is recorded when it is new or differs in any member from the instance of
the same datasetId before (its own ``modifiedAt`` changing counts as a change), so a
merge records the attributes it touched and not the others. An instance that
disappears (its attribute or the whole entity deleted) is recorded as a deletion: the
NGSI-LD Null as its value, ``deletedAt`` and ``modifiedAt`` set to ``now``.

A recorded instance is stored as its document without the four times, which the stores
keep in columns (``observed``, ``created``, ``modified``, ``deleted``) and put back on
the way out, so that times are compared and indexed as integers.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from cityverse.core.entity import format_utc, normalise_datetime
from cityverse.core.errors import BadRequestData, NgsiError
from cityverse.core.model import VALUE_MEMBER, Entity, Instance

NGSI_NULL = "urn:ngsi-ld:null"
INSTANCE_PREFIX = "urn:ngsi-ld:attribute:instance:"
"""InstanceIds are this prefix and the row number the store gave the instance."""

NO_TIME = -(2**63)
"""Stands for a missing observedAt in the stores' (series, observed) key, which cannot
hold NULL: below every real time, so such instances sort first and fall outside every
observedAt window."""

TIME_MEMBERS = ("observedAt", "createdAt", "modifiedAt", "deletedAt")

_NULL_VALUE: dict[str, Any] = {
    "languageMap": {"@none": NGSI_NULL},
    "valueList": [NGSI_NULL],
    "objectList": [NGSI_NULL],
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1).toordinal()


class Record(NamedTuple):
    """One instance to append to a series (entity, attribute, datasetId)."""

    attr: str
    dataset_id: str | None
    instance: Instance
    """The instance as held (or the deletion marker); its times are the fields below."""
    observed: int
    """observedAt, or ``NO_TIME``."""
    created: int
    modified: int
    deleted: int | None


class EntityHistory(NamedTuple):
    """What one change records: the entity's identity and its new instances."""

    id: str
    types: list[str]
    scope: list[str] | None
    deleted_at: int | None
    """When the change deleted the entity; None when it exists after the change."""
    records: list[Record]


def entity_history(old: Entity | None, new: Entity | None, now: int) -> EntityHistory | None:
    """The history one change (entity before, after) records; None when nothing changed."""
    if old is new or (old is None and new is None):
        return None
    if new is None:
        assert old is not None
        records = [
            _deletion(name, instance, now)
            for name, instances in old.get("attrs", {}).items()
            for instance in instances
        ]
        return EntityHistory(old["id"], list(old["type"]), old.get("scope"), now, records)
    before: dict[str, list[Instance]] = {} if old is None else old.get("attrs", {})
    after: dict[str, list[Instance]] = new.get("attrs", {})
    records = []
    for name, instances in after.items():
        previous = before.get(name)
        if previous is instances:
            continue
        for instance in instances:
            match = _same_dataset(previous, instance.get("datasetId"))
            if match is None or (match is not instance and match != instance):
                records.append(record(name, instance, now))
    for name, instances in before.items():
        current = after.get(name)
        if current is instances:
            continue
        for instance in instances:
            if _same_dataset(current, instance.get("datasetId")) is None:
                records.append(_deletion(name, instance, now))
    return EntityHistory(new["id"], list(new["type"]), new.get("scope"), None, records)


def record(attr: str, instance: Instance, now: int) -> Record:
    """The record of one instance as held; missing createdAt/modifiedAt become ``now``."""
    observed = instance.get("observedAt")
    created = instance.get("createdAt")
    modified = instance.get("modifiedAt")
    deleted = instance.get("deletedAt")
    return Record(
        attr,
        instance.get("datasetId"),
        instance,
        NO_TIME if observed is None else ms_of(observed),
        now if created is None else ms_of(created),
        now if modified is None else ms_of(modified),
        None if deleted is None else ms_of(deleted),
    )


def _deletion(attr: str, instance: Instance, now: int) -> Record:
    kind = instance.get("type", "Property")
    member = VALUE_MEMBER.get(kind, "value")
    marker: Instance = {"type": kind, member: _NULL_VALUE.get(member, NGSI_NULL)}
    if "datasetId" in instance:
        marker["datasetId"] = instance["datasetId"]
    created = instance.get("createdAt")
    return Record(
        attr,
        instance.get("datasetId"),
        marker,
        NO_TIME,
        now if created is None else ms_of(created),
        now,
        now,
    )


def _same_dataset(instances: list[Instance] | None, dataset_id: str | None) -> Instance | None:
    if not instances:
        return None
    for instance in instances:
        if instance.get("datasetId") == dataset_id:
            return instance
    return None


def number(instance: Instance) -> float | None:
    """The value of a Property holding a JSON number, as a float; None otherwise."""
    if instance.get("type", "Property") != "Property":
        return None
    value = instance.get("value")
    # bool is an int subclass, but true is not the number 1 to aggregate.
    if type(value) is int or type(value) is float:
        return float(value)
    return None


def stored_doc(instance: Instance) -> bytes:
    """The instance as stored: its JSON without the times kept in columns."""
    if any(member in instance for member in _OUT_OF_DOC):
        instance = {k: v for k, v in instance.items() if k not in _OUT_OF_DOC}
    try:
        return orjson.dumps(instance)
    except TypeError as exc:
        raise BadRequestData(f"an instance cannot be stored as JSON: {exc}") from None


def split_number(instance: Instance, *, ints: bool = True) -> tuple[bytes, int | float | None]:
    """The stored document and, for a Property holding a number, that number apart
    (the document then has no ``value``: ``loaded`` puts it back). With ``ints`` False
    (a store whose number column is a double) an integer stays in the document too, so
    that it comes back an integer."""
    value: Any = instance.get("value")
    kind = type(value)
    if kind is int:
        if not INT64_MIN <= value <= INT64_MAX:
            return stored_doc(instance), None
        if not ints:
            return stored_doc(instance), value if instance.get("type") == "Property" else None
    elif kind is not float:
        return stored_doc(instance), None
    if instance.get("type") != "Property":
        return stored_doc(instance), None
    unit = instance.get("unitCode")
    if instance.keys() <= _PLAIN and (unit is None or type(unit) is str):
        doc = _plain_docs.get(unit)
        if doc is None:
            doc = orjson.dumps(
                {"type": "Property"} if unit is None else {"type": "Property", "unitCode": unit}
            )
            if len(_plain_docs) < 1024:
                _plain_docs[unit] = doc
        return doc, value
    rest = {k: v for k, v in instance.items() if k != "value" and k not in _OUT_OF_DOC}
    return orjson.dumps(rest), value


_OUT_OF_DOC = frozenset({*TIME_MEMBERS, "instanceId"})
_PLAIN = frozenset({"type", "value", "unitCode", *TIME_MEMBERS})
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""The integers the stores keep as numbers."""
_plain_docs: dict[str | None, bytes] = {}


def loaded(
    doc: str | bytes,
    iid: int,
    observed: int,
    created: int | None,
    modified: int | None,
    deleted: int | None,
    value: int | float | None = None,
) -> Instance:
    """A stored row back as an instance, with its times and its instanceId (``value``:
    the number ``split_number`` kept apart, if any)."""
    instance: Instance = orjson.loads(doc)
    if value is not None and "value" not in instance:
        instance["value"] = value
    if observed != NO_TIME:
        instance["observedAt"] = utc_of(observed)
    if created is not None:
        instance["createdAt"] = utc_of(created)
    if modified is not None:
        instance["modifiedAt"] = utc_of(modified)
    if deleted is not None:
        instance["deletedAt"] = utc_of(deleted)
    instance["instanceId"] = INSTANCE_PREFIX + str(iid)
    return instance


def instance_number(instance_id: str) -> int | None:
    """The row number inside an instanceId this store made; None for any other URI."""
    if not instance_id.startswith(INSTANCE_PREFIX):
        return None
    digits = instance_id[len(INSTANCE_PREFIX) :]
    if not digits.isdigit() or len(digits) > 18 or not digits.isascii():
        return None
    return int(digits)


def ms_of(text: str) -> int:
    """Epoch milliseconds of a stored UTC timestamp (``YYYY-MM-DDTHH:MM:SS.mmmZ``)."""
    found = _seen.get(text)
    if found is None:
        found = _ms_of(text)
        if len(_seen) >= 4096:
            _seen.clear()
        _seen[text] = found
    return found


_seen: dict[str, int] = {}
"""Recent conversions: an instance's createdAt, or a reading time shared by many
sensors, comes again and again."""


def _ms_of(text: str) -> int:
    if len(text) != 24 or text[23] != "Z" or text[10] != "T":
        text = normalise_datetime(text)
    try:
        days = date(int(text[0:4]), int(text[5:7]), int(text[8:10])).toordinal() - _EPOCH_DAY
        seconds = int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
        return (days * 86400 + seconds) * 1000 + int(text[20:23])
    except ValueError:
        return _ms_of(normalise_datetime(text))


def utc_of(ms: int) -> str:
    """The stored UTC timestamp of epoch milliseconds."""
    days, rest = divmod(ms, 86_400_000)
    day = _days.get(days)
    if day is None:
        if not _MIN_DAY <= days <= _MAX_DAY:
            return format_utc(_EPOCH + timedelta(milliseconds=ms))
        if len(_days) >= 4096:
            _days.clear()
        day = _days[days] = date.fromordinal(_EPOCH_DAY + days).isoformat()
    seconds, millis = divmod(rest, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{day}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


_days: dict[int, str] = {}
"""The date part of recent times: a history read formats many times of a few days."""
_MIN_DAY = date(1, 1, 1).toordinal() - _EPOCH_DAY
_MAX_DAY = date(9999, 12, 31).toordinal() - _EPOCH_DAY


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def change_time(old: Entity | None, new: Entity | None) -> int:
    """When a change happened: the new entity's modifiedAt, else the clock."""
    if new is not None and new is not old:
        stamp = new.get("modifiedAt")
        if isinstance(stamp, str):
            try:
                return ms_of(stamp)
            except NgsiError:
                pass
    return now_ms()
