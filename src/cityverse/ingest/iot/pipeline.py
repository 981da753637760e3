"""The measure path: messages in, one ``store.mutate`` per tenant and batch out.

Transports hand every device message to ``Pipeline.submit`` (from any thread, for the
MQTT network thread; the HTTP binding also awaits the message's outcome). The pipeline
collects what arrives within the batching window, turns each message into changes of
the device's entity (creating it on its first measure), and writes each tenant's
changes with one ``store.mutate`` call: history and notifications see every measure as
they see an API update. While one batch is being written the next one is prepared.

A measure the entity already holds, with the same value and the same device timestamp
(a QoS 1 message delivered twice), leaves the entity untouched: the mutation returns
the very object it was given, so no history instance is recorded twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from cityverse.broker import attrs as algebra
from cityverse.broker.request import Broker
from cityverse.core.entity import iso_now
from cityverse.core.model import Entity, Instance
from cityverse.ingest.iot import jsonpayload, ultralight
from cityverse.ingest.iot.mapping import MeasureError, Profile
from cityverse.ingest.iot.registry import Registry
from cityverse.ingest.iot.stats import RateLimiter, Stats
from cityverse.store.base import Change, Mutation
from cityverse.store.history import utc_of

log = logging.getLogger("cityverse.iot")

MAX_BATCH = 5000
"""Most messages written in one batch, so that a backlog is written in bounded steps."""

RECENT = 64
"""Timestamped measures remembered per device, to drop a QoS 1 message delivered again
after newer ones (a publisher resending its unacknowledged messages on reconnection)."""

UL = "ul"
JSON = "json"


@dataclass(slots=True)
class Message:
    """One message from a device: measures (``attrs``, ``attr``) or command results."""

    transport: str
    apikey: str
    device_id: str
    kind: str
    payload: bytes
    attr: str | None = None
    format: str | None = None
    """``ul`` or ``json``; None: JSON when it looks like JSON, else UltraLight."""
    arrival: float = field(default_factory=time.time)
    dup: bool = False
    """MQTT's redelivery flag."""
    timestamp: str | None = None
    done: asyncio.Future[Outcome] | None = None
    outcome: Outcome | None = None


@dataclass(slots=True)
class Outcome:
    """What became of a message: written, or rejected with a reason."""

    written: int = 0
    reason: str | None = None
    detail: str = ""
    problems: list[tuple[str, str]] = field(default_factory=list)


def detect_format(payload: bytes) -> str:
    """JSON when the payload starts like a JSON object or array, else UltraLight."""
    head = payload.lstrip()[:1]
    return JSON if head in (b"{", b"[") else UL


def _same(stored: Instance, new: Instance, ignore_time: bool) -> bool:
    if "datasetId" in stored:
        return False
    for key, value in new.items():
        if key == "createdAt" or key == "modifiedAt" or (ignore_time and key == "observedAt"):
            continue
        if stored.get(key, _ABSENT) != value:
            return False
    return True


_ABSENT = object()


def measure_mutation(
    profile: Profile,
    instances: dict[str, Instance],
    now: str,
    *,
    dedupe: bool,
    ignore_time: bool,
    duplicates: list[str],
) -> Mutation:
    """The change one measure makes to the device's entity (creating it if absent)."""

    def apply(current: Entity | None) -> Entity:
        entity = profile.new_entity(now) if current is None else current
        attrs = entity["attrs"]
        patch: dict[str, list[Instance]] = {}
        for name, instance in instances.items():
            stored = attrs.get(name)
            if dedupe and stored is not None and _same(stored[0], instance, ignore_time):
                continue
            patch[name] = [instance]
        if not patch:
            duplicates.append(profile.entity_id)
            return entity
        if current is not None and profile.statics:
            for iri, static in profile.static_instances(now).items():
                if iri not in attrs:
                    patch[iri] = static
        # Append Entity Attributes (5.6.3) with overwrite, as ``appending`` does, without
        # its bookkeeping of what was updated.
        merged = dict(attrs)
        for name, new in patch.items():
            stored = merged.get(name)
            merged[name] = new if stored is None else algebra.replace_instances(stored, new)
        return {**entity, "attrs": merged, "modifiedAt": now}

    return apply


Prepared = dict[str, list[tuple[Change, Message]]]
"""Per tenant, the changes of a batch with the message each comes from."""

CommandResults = Callable[[Message, Profile, str], list[Change]]
"""Turns a command-result message into status changes (see commands.py)."""


class Pipeline:
    """Batches device messages into store writes, one ``mutate`` per tenant."""

    def __init__(
        self,
        broker: Broker,
        registry: Registry,
        stats: Stats,
        limiter: RateLimiter,
        *,
        window: float,
        command_results: CommandResults,
    ) -> None:
        self.broker = broker
        self.registry = registry
        self.stats = stats
        self.limiter = limiter
        self.window = window
        self.command_results = command_results
        self._queue: deque[Message] = deque()
        self._wake = asyncio.Event()
        self._signalled = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._in_batches = 0
        self._recent: dict[tuple[str, str], tuple[deque[bytes], set[bytes]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the batching task on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="iot-pipeline")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    @property
    def backlog(self) -> int:
        """Messages received and not yet written (queued, or in a batch being written)."""
        return len(self._queue) + self._in_batches

    def submit(self, message: Message) -> None:
        """Queue a message; safe from any thread."""
        self._queue.append(message)
        if not self._signalled and self._loop is not None:
            self._signalled = True
            self._loop.call_soon_threadsafe(self._wake.set)

    async def process(self, message: Message) -> Outcome:
        """Queue a message and wait until it is written (the HTTP binding)."""
        loop = asyncio.get_running_loop()
        message.done = loop.create_future()
        self.submit(message)
        return await message.done

    # -- the batching loop ---------------------------------------------------------------

    async def _run(self) -> None:
        previous: asyncio.Task[None] | None = None
        while True:
            if not self._queue:
                if self._stopping:
                    break
                self._wake.clear()
                self._signalled = False
                if self._queue or self._stopping:
                    continue
                await self._wake.wait()
                continue
            if self.window > 0 and not self._stopping and len(self._queue) < MAX_BATCH:
                await asyncio.sleep(self.window)
            batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
            self._in_batches += len(batch)
            duplicates: list[str] = []
            try:
                prepared = self._prepare(batch, duplicates)
            except Exception:
                log.exception("IoT batch of %d messages could not be prepared", len(batch))
                self._finish(batch)
                continue
            if previous is not None:
                await previous
            previous = asyncio.create_task(self._commit(batch, prepared, duplicates))
        if previous is not None:
            await previous

    def _prepare(self, batch: list[Message], duplicates: list[str]) -> Prepared:
        now = iso_now()
        by_tenant: Prepared = {}
        monotonic = time.monotonic()
        for message in batch:
            outcome = message.outcome = Outcome()
            try:
                tenant, changes = self._changes(message, now, monotonic, outcome, duplicates)
            except MeasureError as exc:
                outcome.reason, outcome.detail = exc.reason, exc.detail
                self.stats.reject(
                    exc.reason,
                    exc.detail,
                    apikey=message.apikey,
                    device_id=message.device_id,
                    transport=message.transport,
                )
                continue
            self.stats.count("messages")
            for reason, detail in outcome.problems:
                self.stats.reject(
                    reason,
                    detail,
                    apikey=message.apikey,
                    device_id=message.device_id,
                    transport=message.transport,
                )
            if changes:
                by_tenant.setdefault(tenant, []).extend((c, message) for c in changes)
        return by_tenant

    def _changes(
        self,
        message: Message,
        now: str,
        monotonic: float,
        outcome: Outcome,
        duplicates: list[str],
    ) -> tuple[str, list[Change]]:
        group, device = self.registry.find(message.apikey, message.device_id)
        if device is None:
            if group is None:
                raise MeasureError(
                    "unknown-apikey", f"no service group or device has apikey {message.apikey!r}"
                )
            if not group.autoprovision and message.kind != "cmdexe":
                raise MeasureError(
                    "unknown-device",
                    f"device {message.device_id!r} is not provisioned and the group of apikey "
                    f"{message.apikey!r} does not auto-provision",
                )
        if not self.limiter.allow((message.apikey, message.device_id), monotonic):
            raise MeasureError(
                "rate-limited",
                f"more than {self.limiter.rate:g} messages/s from device {message.device_id!r}",
            )
        fmt = message.format or detect_format(message.payload)
        if message.kind == "cmdexe":
            if device is None:
                raise MeasureError(
                    "unknown-device", f"command result from unknown device {message.device_id!r}"
                )
            profile = self.registry.profile(group, device, message.apikey, message.device_id)
            return profile.tenant, self.command_results(message, profile, fmt)
        groups = self._parse(message, fmt)
        if device is None:
            assert group is not None
            protocol = "IoTA-JSON" if fmt == JSON else "IoTA-UL"
            transport = "MQTT" if message.transport == "mqtt" else "HTTP"
            device = self.registry.autoprovision(group, message.device_id, protocol, transport)
            self.stats.count("devicesAutoprovisioned")
        profile = self.registry.profile(group, device, message.apikey, message.device_id)
        arrival = utc_of(int(message.arrival * 1000))
        changes = []
        for measures in groups:
            if message.timestamp is not None and "TimeInstant" not in measures:
                measures["TimeInstant"] = message.timestamp
            if self._seen(message, measures):
                duplicates.append(profile.entity_id)
                continue
            try:
                instances, timed = profile.instances(
                    measures, arrival=arrival, now=now, problems=outcome.problems
                )
            except MeasureError as exc:
                if len(groups) == 1:
                    raise
                outcome.problems.append((exc.reason, exc.detail))
                continue
            if not instances:
                continue
            outcome.written += len(instances)
            changes.append(
                Change(
                    profile.entity_id,
                    measure_mutation(
                        profile,
                        instances,
                        now,
                        dedupe=timed or message.dup,
                        ignore_time=message.dup and not timed,
                        duplicates=duplicates,
                    ),
                )
            )
        if not changes and outcome.problems:
            reason, detail = outcome.problems[0]
            outcome.problems.pop(0)
            raise MeasureError(reason, detail)
        return profile.tenant, changes

    def _seen(self, message: Message, measures: dict[str, Any]) -> bool:
        """Whether this device sent these very measures, with their timestamp, lately."""
        if "TimeInstant" not in measures and "observedAt" not in measures:
            return False
        try:
            key = orjson.dumps(measures, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return False
        device = (message.apikey, message.device_id)
        recent = self._recent.get(device)
        if recent is None:
            if len(self._recent) > 100_000:
                self._recent.clear()
            recent = self._recent[device] = (deque(), set())
        order, keys = recent
        if key in keys:
            return True
        order.append(key)
        keys.add(key)
        if len(order) > RECENT:
            keys.discard(order.popleft())
        return False

    def _parse(self, message: Message, fmt: str) -> list[dict[str, Any]]:
        try:
            if message.kind == "attr":
                assert message.attr is not None
                if fmt == JSON or message.format is None:
                    value: Any = jsonpayload.parse_value(message.payload)
                else:
                    value = message.payload.decode("utf-8").strip()
                return [{message.attr: value}]
            if fmt == JSON:
                return jsonpayload.parse_measures(message.payload)
            return list(ultralight.parse_measures(message.payload.decode("utf-8")))
        except (ultralight.UltralightError, jsonpayload.JsonPayloadError) as exc:
            raise MeasureError("malformed", f"{fmt} payload: {exc}") from None
        except UnicodeDecodeError:
            raise MeasureError("malformed", "the payload is not UTF-8 text") from None

    async def _commit(
        self, batch: list[Message], prepared: Prepared, duplicates: list[str]
    ) -> None:
        try:
            for tenant, items in prepared.items():
                await self._write(tenant, items)
            await self.registry.flush()
        except Exception:
            log.exception("IoT batch of %d messages could not be written", len(batch))
        finally:
            if duplicates:
                self.stats.count("duplicatesIgnored", len(duplicates))
            self._finish(batch)

    async def _write(self, tenant: str, items: list[tuple[Change, Message]]) -> None:
        try:
            outcomes = await self.broker.store.mutate(tenant, [change for change, _ in items])
        except Exception as exc:
            log.exception("IoT measures for tenant %r could not be written", tenant)
            for _, message in items:
                self._failed(message, f"the store could not be written: {exc}")
            return
        self.broker.tenant_written(tenant)
        written = created = 0
        for outcome, (_, message) in zip(outcomes, items, strict=True):
            if outcome.error is not None:
                self._failed(message, outcome.error.detail)
                continue
            if outcome.new is not outcome.old:
                written += 1
            if outcome.old is None and outcome.new is not None:
                created += 1
        self.stats.count("updates", written)
        if created:
            self.stats.count("entitiesCreated", created)

    def _failed(self, message: Message, detail: str) -> None:
        self.stats.reject(
            "store-error",
            detail,
            apikey=message.apikey,
            device_id=message.device_id,
            transport=message.transport,
        )
        if message.outcome is not None:
            message.outcome.reason, message.outcome.detail = "store-error", detail

    def _finish(self, batch: list[Message]) -> None:
        self._in_batches -= len(batch)
        for message in batch:
            done = message.done
            if done is not None and not done.done():
                done.set_result(message.outcome or Outcome())
