"""The device registry: service groups and devices, kept in the entity store.

Provisioning lives in the store itself, so it survives restarts and is shared by every
server process on the same store, whatever its kind. It sits in the reserved tenant
``@iot``, which the NGSI-LD API cannot name (``@`` is not allowed in a tenant), one
entity per group or device holding the provisioning document::

    registry = Registry(store, contexts)
    await registry.load()
    await registry.add_groups([group])
    group, device = registry.find("k1", "lamp1")
    profile = registry.profile(group, device, "k1", "lamp1")

Lookups on the measure path are dictionary reads; devices created by a first measure
(auto-provisioning) are indexed at once and written to the store in the next batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from cityverse.core.context import Context, ContextResolver
from cityverse.core.entity import iso_now
from cityverse.core.errors import NgsiError
from cityverse.core.model import Entity
from cityverse.ingest.iot.mapping import Profile, entity_id_for
from cityverse.ingest.iot.provisioning import (
    DEFAULT_TYPE,
    Device,
    Group,
    IotError,
    parse_device,
    parse_group,
)
from cityverse.store.base import Change, EntityFilter, EntityStore

log = logging.getLogger("cityverse.iot")

REGISTRY_TENANT = "@iot"
NS = "https://cityverse.org/ns/iot#"
GROUP_TYPE = NS + "ServiceGroup"
DEVICE_TYPE = NS + "Device"
PROVISIONING = NS + "provisioning"


def group_entity_id(group: Group) -> str:
    """The registry entity of a group: unique by (resource, apikey)."""
    return (
        f"urn:cityverse:iot:group:{quote(group.resource, safe='')}:{quote(group.apikey, safe='')}"
    )


def device_entity_id(device: Device) -> str:
    """The registry entity of a device: unique by (service, subservice, id, apikey)."""
    return "urn:cityverse:iot:device:" + ":".join(quote(part, safe="") for part in device.key)


def _record(entity_id: str, kind: str, payload: dict[str, Any], now: str) -> Entity:
    return {
        "id": entity_id,
        "type": [kind],
        "createdAt": now,
        "modifiedAt": now,
        "attrs": {
            PROVISIONING: [
                {"type": "JsonProperty", "json": payload, "createdAt": now, "modifiedAt": now}
            ]
        },
    }


def _group_payload(group: Group) -> dict[str, Any]:
    return {"service": group.service, "subservice": group.subservice, "doc": group.doc}


def _device_payload(device: Device) -> dict[str, Any]:
    return {"service": device.service, "subservice": device.subservice, "doc": device.doc}


class Registry:
    """Groups and devices, indexed for the measure path and persisted in the store."""

    def __init__(self, store: EntityStore, contexts: ContextResolver) -> None:
        self.store = store
        self.contexts = contexts
        self.groups: dict[tuple[str, str], Group] = {}
        self.devices: dict[tuple[str, str, str, str], Device] = {}
        self._by_apikey: dict[str, list[Group]] = {}
        self._by_device: dict[tuple[str, str], Device] = {}
        self._by_entity: dict[tuple[str, str], tuple[str, str]] = {}
        self._profiles: dict[tuple[str, str], Profile] = {}
        self._contexts: dict[str, Context] = {}
        self._pending: dict[str, Entity] = {}

    # -- loading and indexing ------------------------------------------------------------

    async def load(self) -> None:
        """Read every group and device from the store and rebuild the indexes."""
        groups: list[Group] = []
        devices: list[Device] = []
        for kind in (GROUP_TYPE, DEVICE_TYPE):
            page = await self.store.query(
                REGISTRY_TENANT, EntityFilter(type_names=frozenset({kind})), limit=None
            )
            for entity in page.entities:
                try:
                    payload = entity["attrs"][PROVISIONING][0]["json"]
                    args = (payload["doc"], payload["service"], payload["subservice"])
                    if kind == GROUP_TYPE:
                        groups.append(parse_group(*args))
                    else:
                        devices.append(parse_device(*args))
                except (KeyError, IndexError, TypeError, IotError) as exc:
                    log.error("IoT registry entry %s cannot be read: %s", entity.get("id"), exc)
        for item in [*groups, *devices]:
            await self._resolve(item.context, strict=False)
        self.groups = {g.key: g for g in groups}
        self.devices = {d.key: d for d in devices}
        self._reindex()

    def _reindex(self) -> None:
        self._by_apikey = {}
        for group in self.groups.values():
            self._by_apikey.setdefault(group.apikey, []).append(group)
        self._by_device = {(d.apikey, d.device_id): d for d in self.devices.values()}
        self._profiles = {}
        self._by_entity = {}
        for device in self.devices.values():
            self._index_entity(device)

    def _index_entity(self, device: Device) -> None:
        group = self._group_for(device.apikey, device)
        entity_type = device.entity_type or (group.entity_type if group else None) or DEFAULT_TYPE
        entity_id = entity_id_for(device.entity_name, entity_type, device.device_id)
        self._by_entity[(device.service, entity_id)] = (device.apikey, device.device_id)

    async def _resolve(self, source: Any, *, strict: bool) -> None:
        if source is None:
            return
        key = repr(source)
        if key in self._contexts:
            return
        try:
            self._contexts[key] = await self.contexts.resolve(source)
        except NgsiError as exc:
            if strict:
                raise IotError(
                    400, "WRONG_SYNTAX", f"Wrong syntax in request: jsonLdContext: {exc.detail}"
                ) from None
            log.error("IoT provisioning @context %s cannot be loaded: %s", source, exc.detail)

    def _context(self, source: Any) -> Context:
        if source is None:
            return self.contexts.core
        return self._contexts.get(repr(source), self.contexts.core)

    # -- lookups on the measure path -----------------------------------------------------

    def _group_for(self, apikey: str, device: Device | None = None) -> Group | None:
        groups = self._by_apikey.get(apikey)
        if not groups:
            return None
        if device is not None:
            for group in groups:
                if group.service == device.service and group.subservice == device.subservice:
                    return group
        return groups[0]

    def find(self, apikey: str, device_id: str) -> tuple[Group | None, Device | None]:
        """The group of an apikey and the device provisioned under it, each may be None."""
        device = self._by_device.get((apikey, device_id))
        group = self._group_for(apikey, device)
        if device is None and group is not None:
            # A device provisioned without an apikey belongs to the group of its service.
            candidate = self._by_device.get(("", device_id))
            if candidate is not None and candidate.service == group.service:
                device = candidate
        return group, device

    def profile(
        self, group: Group | None, device: Device | None, apikey: str, device_id: str
    ) -> Profile:
        """The compiled mapping of a device (cached until its provisioning changes)."""
        key = (apikey, device_id)
        profile = self._profiles.get(key)
        if profile is None:
            source = device.context if device is not None and device.context else None
            if source is None and group is not None:
                source = group.context
            profile = Profile(group, device, device_id, apikey, self._context(source))
            self._profiles[key] = profile
        return profile

    def by_entity(self, tenant: str, entity_id: str) -> Profile | None:
        """The profile of the device behind an entity, for commands."""
        key = self._by_entity.get((tenant, entity_id))
        if key is None:
            return None
        group, device = self.find(*key)
        if device is None:
            return None
        return self.profile(group, device, *key)

    def autoprovision(self, group: Group, device_id: str, protocol: str, transport: str) -> Device:
        """Register a device first seen in a measure; it is stored with the next batch."""
        doc: dict[str, Any] = {
            "device_id": device_id,
            "apikey": group.apikey,
            "protocol": protocol,
            "transport": transport,
        }
        if group.entity_type:
            doc["entity_type"] = group.entity_type
        device = parse_device(doc, group.service, group.subservice)
        self.devices[device.key] = device
        self._by_device[(device.apikey, device.device_id)] = device
        self._profiles.pop((device.apikey, device.device_id), None)
        self._index_entity(device)
        entity_id = device_entity_id(device)
        self._pending[entity_id] = _record(
            entity_id, DEVICE_TYPE, _device_payload(device), iso_now()
        )
        return device

    async def flush(self) -> None:
        """Store the devices auto-provisioned since the last flush."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        changes = [Change(i, _only_new(e)) for i, e in pending.items()]
        outcomes = await self.store.mutate(REGISTRY_TENANT, changes)
        for outcome in outcomes:
            if outcome.error is not None:
                log.error("auto-provisioned device %s not stored: %s", outcome.id, outcome.error)

    # -- provisioning API ----------------------------------------------------------------

    def list_groups(self, service: str, subservice: str | None) -> list[Group]:
        """Groups of a service (and service path; None or ``/*`` means all paths)."""
        return [
            g
            for g in self.groups.values()
            if g.service == service and (subservice is None or g.subservice == subservice)
        ]

    def get_group(self, service: str, subservice: str, resource: str, apikey: str) -> Group:
        """One group, or 404 DEVICE_GROUP_NOT_FOUND."""
        group = self.groups.get((resource, apikey))
        if group is None or group.service != service or group.subservice != subservice:
            raise IotError(
                404,
                "DEVICE_GROUP_NOT_FOUND",
                'Couldn\'t find device group for fields: ["service","subservice","resource",'
                f'"apikey"] and values: [{service!r},{subservice!r},{resource!r},{apikey!r}]',
            )
        return group

    async def add_groups(self, groups: list[Group]) -> None:
        """Create groups; 409 DUPLICATE_GROUP if one exists (then none is created)."""
        seen: set[tuple[str, str]] = set()
        for group in groups:
            if group.key in self.groups or group.key in seen:
                raise IotError(
                    409,
                    "DUPLICATE_GROUP",
                    f"A device configuration already exists for resource {group.resource} "
                    f"and API Key {group.apikey}",
                )
            seen.add(group.key)
            await self._resolve(group.context, strict=True)
        await self._write_groups(groups)
        for group in groups:
            self.groups[group.key] = group
        self._reindex()

    async def replace_group(self, old: Group, new: Group) -> None:
        """Store a group's new version (same key)."""
        await self._resolve(new.context, strict=True)
        await self._write_groups([new])
        self.groups[new.key] = new
        self._reindex()

    async def delete_group(self, group: Group, *, with_devices: bool = False) -> None:
        """Remove a group, and with ``with_devices`` the devices of its apikey and service."""
        doomed = []
        if with_devices:
            doomed = [
                d
                for d in self.devices.values()
                if d.apikey == group.apikey and d.service == group.service
            ]
        changes = [Change(group_entity_id(group), lambda cur: None)]
        changes += [Change(device_entity_id(d), lambda cur: None) for d in doomed]
        await self._mutate(changes)
        self.groups.pop(group.key, None)
        for device in doomed:
            self.devices.pop(device.key, None)
        self._reindex()

    def list_devices(self, service: str, subservice: str | None) -> list[Device]:
        """Devices of a service (and service path; None means all paths)."""
        return [
            d
            for d in self.devices.values()
            if d.service == service and (subservice is None or d.subservice == subservice)
        ]

    def get_device(
        self, service: str, subservice: str, device_id: str, apikey: str | None = None
    ) -> Device:
        """One device of a service path, or 404 DEVICE_NOT_FOUND."""
        for device in self.devices.values():
            if (
                device.device_id == device_id
                and device.service == service
                and device.subservice == subservice
                and (apikey is None or device.apikey == apikey)
            ):
                return device
        raise IotError(404, "DEVICE_NOT_FOUND", f"No device was found with id:{device_id}")

    async def add_devices(self, devices: list[Device]) -> None:
        """Create devices; 409 DUPLICATE_DEVICE_ID if one exists (then none is created)."""
        seen: set[tuple[str, str, str, str]] = set()
        for device in devices:
            if device.key in self.devices or device.key in seen:
                raise IotError(
                    409,
                    "DUPLICATE_DEVICE_ID",
                    f"A device with the same pair (Service, DeviceId) was found:{device.device_id}",
                )
            seen.add(device.key)
            await self._resolve(device.context, strict=True)
        await self._write_devices(devices)
        for device in devices:
            self.devices[device.key] = device
        self._reindex()

    async def replace_device(self, new: Device) -> None:
        """Store a device's new version (same key)."""
        await self._resolve(new.context, strict=True)
        await self._write_devices([new])
        self.devices[new.key] = new
        self._reindex()

    async def delete_devices(self, devices: Iterable[Device]) -> None:
        """Remove devices from the registry (their entities stay)."""
        doomed = list(devices)
        await self._mutate([Change(device_entity_id(d), lambda cur: None) for d in doomed])
        for device in doomed:
            self.devices.pop(device.key, None)
        self._reindex()

    # -- storage -----------------------------------------------------------------------

    async def _write_groups(self, groups: list[Group]) -> None:
        now = iso_now()
        await self._mutate(
            [
                Change(i, _keep_created(_record(i, GROUP_TYPE, _group_payload(g), now)))
                for g in groups
                for i in [group_entity_id(g)]
            ]
        )

    async def _write_devices(self, devices: list[Device]) -> None:
        now = iso_now()
        await self._mutate(
            [
                Change(i, _keep_created(_record(i, DEVICE_TYPE, _device_payload(d), now)))
                for d in devices
                for i in [device_entity_id(d)]
            ]
        )

    async def _mutate(self, changes: list[Change]) -> None:
        outcomes = await self.store.mutate(REGISTRY_TENANT, changes)
        failed = [o for o in outcomes if o.error is not None]
        if failed:
            raise IotError(500, "INTERNAL_DB_ERROR", f"registry write failed: {failed[0].error}")


def _keep_created(entity: Entity) -> Any:
    def apply(current: Entity | None) -> Entity:
        if current is None:
            return entity
        return {**entity, "createdAt": current["createdAt"]}

    return apply


def _only_new(entity: Entity) -> Any:
    # A device provisioned meanwhile (by another server process) keeps its provisioning.
    def apply(current: Entity | None) -> Entity:
        return entity if current is None else current

    return apply
