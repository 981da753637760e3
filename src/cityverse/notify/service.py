"""The notifier: matches committed changes and delivers notifications, never losing one.

One loop, woken right after each commit in this process (``Broker.listeners``) and
every ``notify_poll`` seconds otherwise (writes of other processes, retries due):

1. match: read the change log, match each change against the subscriptions of its
   tenant, and settle (outbox rows written, log rows removed, in one transaction);
2. periodic: send the subscriptions with a ``timeInterval`` whose time has come;
3. dispatch: lease due outbox rows and hand them to their endpoint's lane.

Each endpoint has a lane: a bounded queue and ``notify_concurrency`` workers. A dead or
slow endpoint fills only its own lane; while it is full or backing off after a failure,
its rows stay in the outbox and other endpoints go on. Results are written back in
batches: a success removes the row, a failure counts and schedules a retry with
exponential backoff (capped at ``notify_retry_max``) until the row is
``notify_retry_for`` seconds old.

A subscription with an owner (created by a restricted caller) notifies what the owner's
roles may see: its entities pass through their gate (``Broker.gate_for``), built once per
tenant and roles and kept ``GATE_CACHE`` seconds, so that a policy change shows soon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from typing import TYPE_CHECKING, Any, cast

import orjson

from cityverse.broker.gate import visible_all
from cityverse.broker.request import OPEN, OWNER, Gate, GateFactory, Owner
from cityverse.core.context import Context, ContextResolver
from cityverse.core.entity import iso_now
from cityverse.core.model import Entity
from cityverse.core.tasks import cancel_and_wait
from cityverse.notify.match import Compiled, SubscriptionIndex, compile_subscription
from cityverse.notify.payload import gated, notification, render_for
from cityverse.notify.senders import DeliveryFailed, HttpSender, MqttSender, StreamHub
from cityverse.settings import Settings
from cityverse.store.base import EntityFilter, EntityStore
from cityverse.store.subscriptions import (
    KIND_STREAM,
    ChangeRecord,
    Delivery,
    DeliveryResult,
    NewDelivery,
    SubscriptionStore,
)

if TYPE_CHECKING:
    from cityverse.broker.request import Broker

log = logging.getLogger("cityverse.notify")

MATCH_BATCH = 500
"""Changes matched per transaction."""
LANE_QUEUE = 64
"""Deliveries queued per lane worker before the lane counts as full: enough that a burst
to a healthy endpoint goes straight to its lane rather than round through the outbox."""
FLUSH_SIZE = 500
"""Results written back per transaction."""
PERIODIC_MAX = 1000
"""Most entities in one periodic notification."""
PARK = 3600.0
"""Seconds the backlog of a failing endpoint is put off (probes go on meanwhile, and a
notifier that starts brings it back at once)."""
STREAM_HEARTBEAT = 60.0
STREAM_STALE = 300.0
"""A live stream whose process has not renewed it for this long is gone."""
GATE_CACHE = 5.0
"""Seconds an owner's gate is kept (the tenant's policy is cached as long)."""


class _Early(Exception):
    """A throttled subscription's notification came up before its period ended."""

    def __init__(self, until: float) -> None:
        super().__init__(until)
        self.until = until


class Lane:
    """The deliveries of one endpoint: a queue and its workers."""

    def __init__(self, notifier: Notifier, endpoint: str, workers: int) -> None:
        self.endpoint = endpoint
        self.capacity = workers * LANE_QUEUE
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self.blocked_until = 0.0
        self.probing = False
        """After a failure: one delivery at a time is tried until one succeeds, and the
        rest wait in the outbox, put off until ``parked_until``."""
        self.parked_until = 0.0
        self.sending = 0
        self.tasks = [
            asyncio.create_task(notifier._work(self), name=f"notify:{endpoint[:40]}")
            for _ in range(workers)
        ]

    def room(self) -> int:
        return self.capacity - self.queue.qsize()


class Notifier:
    """The notification service of one app (a ``Service``: start, stop)."""

    def __init__(
        self,
        store: SubscriptionStore,
        contexts: ContextResolver,
        settings: Settings,
        *,
        owner: str | None = None,
        gate_for: GateFactory | None = None,
    ) -> None:
        self.store = store
        self.contexts = contexts
        self.settings = settings
        self.gate_for = gate_for
        """Builds an owner's gate; without it, subscriptions with an owner deliver nothing."""
        self._gates: dict[tuple[str, frozenset[str]], tuple[float, Gate]] = {}
        self._warned: set[tuple[str, str]] = set()
        self.owner = owner or uuid.uuid4().hex[:12]
        """This process's name in the endpoint of its live streams."""
        self.streams = StreamHub()
        self._subs: dict[str, list[Compiled]] = {}
        self._index: dict[str, SubscriptionIndex] = {}
        self._periodic_subs: list[Compiled] = []
        self._compiled: dict[tuple[Any, ...], Compiled] = {}
        self._version: int | None = None
        self._stale = True
        self._wake = asyncio.Event()
        self._lanes: dict[str, Lane] = {}
        self._inflight: set[int] = set()
        self._results: list[DeliveryResult] = []
        self._flush = asyncio.Event()
        self._next_allowed: dict[tuple[str, str], float] = {}
        self._last_sent: dict[tuple[str, str], float] = {}
        self._next_periodic: dict[tuple[str, str], float] = {}
        self._own_streams: dict[tuple[str, str], dict[str, Any]] = {}
        self._heartbeat = 0.0
        self._dispatch_due = False
        self._tasks: list[asyncio.Task[None]] = []
        self._http: HttpSender | None = None
        self._mqtt: MqttSender | None = None

    @classmethod
    def for_broker(cls, broker: Broker) -> Notifier | None:
        """The broker's notifier, woken by its writes; None if its store keeps no
        subscriptions."""
        if not hasattr(broker.store, "create_subscription"):
            return None
        store = cast(SubscriptionStore, broker.store)
        notifier = cls(store, broker.contexts, broker.settings, gate_for=broker.gate_for)
        broker.listeners.append(notifier.listener)
        return notifier

    # -- service -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start matching and delivering."""
        self._http = HttpSender(self.settings.notify_timeout)
        self._mqtt = MqttSender(self.settings.notify_timeout)
        self._tasks = [
            asyncio.create_task(self._run(), name="notify:run"),
            asyncio.create_task(self._finisher(), name="notify:results"),
        ]

    async def stop(self) -> None:
        """Stop; rows not yet sent are handed back to the outbox for the next start."""
        for task in self._tasks:
            task.cancel()
        for lane in self._lanes.values():
            for task in lane.tasks:
                task.cancel()
            while not lane.queue.empty():
                self._defer(lane.queue.get_nowait(), time.time())
        tasks = [t for lane in self._lanes.values() for t in lane.tasks] + self._tasks
        await cancel_and_wait(tasks, what="notifier")
        self._lanes.clear()
        # Rows whose send was cancelled mid-way stay leased; hand them back too.
        for delivery_id in list(self._inflight):
            if not any(r.id == delivery_id for r in self._results):
                self._results.append(_handed_back(delivery_id, time.time()))
        with contextlib.suppress(Exception):
            await self._write_results()
        for key in list(self._own_streams):
            with contextlib.suppress(Exception):
                await self.store.delete_subscription(*key)
        if self._http is not None:
            await self._http.close()
        if self._mqtt is not None:
            await self._mqtt.close()
        await self.store.release()

    def listener(self, event: str, tenant: str) -> None:
        """Wake the loop (``Broker.listeners``); a subscription change reloads them."""
        if event == "subscriptions":
            self._stale = True
        self._wake.set()

    # -- main loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        poll = self.settings.notify_poll
        last_dispatch = 0.0
        # Backlogs put off by a process that is gone are due again.
        await self._quietly(self.store.unpark())
        while True:
            await _woken(self._wake, poll)
            self._wake.clear()
            try:
                await self._match()
                await self._periodic()
                # Due rows other than those just matched (retries, throttled ones, other
                # processes' writes) are looked for every poll interval, or at once when
                # a round left some behind.
                now = time.monotonic()
                if self._dispatch_due or now - last_dispatch >= poll:
                    self._dispatch_due = False
                    last_dispatch = now
                    await self._refresh()
                    await self._dispatch()
                await self._streams_heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier round failed; retrying")
                await asyncio.sleep(poll)

    async def _refresh(self) -> None:
        """Reload the subscriptions when any changed (in this process or another)."""
        version = await self.store.subscriptions_version()
        if not self._stale and version == self._version:
            return
        self._stale = False
        self._version = version
        subs: dict[str, list[Compiled]] = {}
        compiled: dict[tuple[Any, ...], Compiled] = {}
        for row in await self.store.all_subscriptions():
            # Unchanged documents keep their compiled form: reloading after each of a
            # thousand subscriptions created in a row stays linear.
            key = (row.tenant, row.id, row.doc.get("modifiedAt"), row.doc.get("heartbeat"))
            sub = self._compiled.get(key)
            if sub is None:
                try:
                    sub = compile_subscription(row)
                except Exception:
                    log.exception(
                        "subscription %s of tenant %r does not compile", row.id, row.tenant
                    )
                    continue
            compiled[key] = sub
            subs.setdefault(row.tenant, []).append(sub)
        self._compiled = compiled
        self._subs = subs
        self._index = {tenant: SubscriptionIndex(group) for tenant, group in subs.items()}
        self._periodic_subs = [c for group in subs.values() for c in group if c.interval]

    async def _match(self) -> None:
        while True:
            changes = await self.store.pending_changes(MATCH_BATCH)
            if not changes:
                return
            # Read after the changes, so that every subscription those changes could
            # match (created before they committed) is loaded.
            await self._refresh()
            deliveries, ready = await self._deliveries(changes)
            lease_until = time.time() + self.settings.notify_lease
            ids = await self.store.settle_changes([c.seq for c in changes], deliveries, lease_until)
            if ids is None:
                continue  # another process matched them
            created = time.time()
            for delivery_id, new, go in zip(ids, deliveries, ready, strict=True):
                if go:
                    self._enqueue(
                        Delivery(
                            delivery_id,
                            new.tenant,
                            new.subscription_id,
                            new.endpoint,
                            new.body,
                            0,
                            created,
                        )
                    )
            if len(changes) < MATCH_BATCH:
                return

    async def _deliveries(
        self, changes: list[ChangeRecord]
    ) -> tuple[list[NewDelivery], list[bool]]:
        """The deliveries the changes trigger, and which go to their lane at once."""
        now_text = iso_now()
        now = time.time()
        out: list[NewDelivery] = []
        ready: list[bool] = []
        room = {key: lane.room() for key, lane in self._lanes.items()}
        for change in changes:
            index = self._index.get(change.tenant)
            if index is None:
                continue
            entity = cast(Entity, change.new if change.new is not None else change.old)
            for sub in index.candidates(entity):
                if not sub.is_active(now_text):
                    continue
                hit = sub.match(change)
                if hit is None:
                    continue
                gate = await self._gate(sub)
                seen = gated(gate, entity, hit, change.old) if gate is not None else None
                if seen is None:
                    continue
                ctx = await self._context(sub)
                item = render_for(sub, *seen, change.at, ctx)
                body = notification(sub, [item], ctx, change.tenant)
                endpoint = _endpoint_key(sub)
                not_before = max(self._throttle(sub, now), self._held_until(endpoint))
                free = room.get(endpoint, self.settings.notify_concurrency * LANE_QUEUE)
                go = not_before <= now and free > 0
                room[endpoint] = free - 1 if go else free
                if not go and not_before <= now:
                    self._dispatch_due = True
                out.append(
                    NewDelivery(change.tenant, sub.id, endpoint, body, not_before, leased=go)
                )
                ready.append(go)
        return out, ready

    def _throttle(self, sub: Compiled, now: float) -> float:
        """When the next notification of a throttled subscription may go (5.2.12)."""
        if not sub.throttling:
            return 0.0
        key = (sub.tenant, sub.id)
        at = max(now, self._next_allowed.get(key, 0.0))
        self._next_allowed[key] = at + float(sub.throttling)
        return at

    async def _context(self, sub: Compiled) -> Context:
        source = sub.doc.get("context")
        if source is None:
            return self.contexts.core
        try:
            return await self.contexts.resolve(source)
        except Exception:
            # Names then go out expanded, which loses nothing; the notification still goes.
            log.warning("cannot resolve the @context of subscription %s", sub.id, exc_info=True)
            return self.contexts.core

    async def _gate(self, sub: Compiled) -> Gate | None:
        """The gate of the subscription's owner (OPEN without one); None when it cannot
        be built, and the subscription then delivers nothing."""
        stored = sub.doc.get(OWNER)
        if stored is None:
            return OPEN
        try:
            owner = Owner.from_doc(stored)
        except ValueError:
            self._unjudged(sub, "its stored owner cannot be read")
            return None
        if self.gate_for is None:
            self._unjudged(sub, "it has an owner but this server has no security to judge it")
            return None
        key = (sub.tenant, owner.roles)
        now = time.monotonic()
        cached = self._gates.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        gate = await self.gate_for(sub.tenant, owner.roles)
        if len(self._gates) > 1000:
            self._gates = {k: v for k, v in self._gates.items() if v[0] > now}
        self._gates[key] = (now + GATE_CACHE, gate)
        return gate

    def _unjudged(self, sub: Compiled, why: str) -> None:
        if (sub.tenant, sub.id) not in self._warned:
            self._warned.add((sub.tenant, sub.id))
            log.error("subscription %s of tenant %r delivers nothing: %s", sub.id, sub.tenant, why)

    # -- periodic notifications --------------------------------------------------------

    async def _periodic(self) -> None:
        now = time.time()
        now_text = iso_now()
        entity_store = cast(EntityStore, self.store)
        for sub in self._periodic_subs:
            key = (sub.tenant, sub.id)
            if not sub.is_active(now_text) or self._next_periodic.get(key, 0.0) > now:
                continue
            self._next_periodic[key] = now + float(sub.interval or 0.0)
            flt = EntityFilter(type_names=sub.type_names(), predicates=(sub,))
            page = await entity_store.query(sub.tenant, flt, limit=PERIODIC_MAX)
            gate = await self._gate(sub)
            entities = visible_all(gate, page.entities) if gate is not None else []
            if not entities:
                continue
            ctx = await self._context(sub)
            data = [render_for(sub, e, None, None, now_text, ctx) for e in entities]
            body = notification(sub, data, ctx, sub.tenant)
            delivery = NewDelivery(sub.tenant, sub.id, _endpoint_key(sub), body, leased=False)
            await self.store.settle_changes([], [delivery], 0.0)
            self._dispatch_due = True

    # -- delivery ----------------------------------------------------------------------

    def _held_until(self, endpoint: str) -> float:
        """Until when new notifications to the endpoint wait: its backoff, or its
        parking while it is being probed."""
        lane = self._lanes.get(endpoint)
        if lane is None:
            return 0.0
        return lane.parked_until if lane.probing else lane.blocked_until

    def _enqueue(self, delivery: Delivery) -> None:
        if delivery.id in self._inflight:
            return
        lane = self._lanes.get(delivery.endpoint)
        if lane is None:
            workers = 1 if delivery.endpoint.startswith(KIND_STREAM) else None
            lane = Lane(self, delivery.endpoint, workers or self.settings.notify_concurrency)
            self._lanes[delivery.endpoint] = lane
        self._inflight.add(delivery.id)
        lane.queue.put_nowait(delivery)

    async def _dispatch(self) -> None:
        now = time.time()
        lease_until = now + self.settings.notify_lease
        exclude = [
            key
            for key, lane in self._lanes.items()
            if lane.room() <= 0 or lane.blocked_until > now or lane.probing
        ]
        limit = 500
        due = await self.store.lease_deliveries(
            now, lease_until, limit, exclude=exclude, owner=self.owner
        )
        # A failing endpoint gets one probe at a time once its backoff has passed: its
        # backlog stays in the outbox instead of being leased and handed back in bulk.
        for key, lane in list(self._lanes.items()):
            idle = not lane.sending and lane.queue.empty()
            if lane.probing and lane.blocked_until <= now and idle:
                due += await self.store.lease_deliveries(
                    now, lease_until, 1, exclude=[], owner=self.owner, only=key
                )
        for delivery in due:
            # A lane may take a little more than its room here: the rows are leased
            # already, and a full lane is excluded from the next lease.
            self._enqueue(delivery)
        if len(due) >= limit:
            self._dispatch_due = True
            self._wake.set()

    async def _work(self, lane: Lane) -> None:
        while True:
            delivery = await lane.queue.get()
            now = time.time()
            if lane.blocked_until > now:
                self._defer(delivery, lane.parked_until if lane.probing else lane.blocked_until)
                continue
            lane.sending += 1
            try:
                await self._send(delivery)
            except _Early as early:
                self._defer(delivery, early.until)
            except asyncio.CancelledError:
                self._defer(delivery, time.time())
                raise
            except DeliveryFailed as exc:
                await self._failed(lane, delivery, exc.reason, permanent=exc.permanent)
            except Exception as exc:
                log.exception("delivery %s to %s failed unexpectedly", delivery.id, lane.endpoint)
                reason = f"{type(exc).__name__}: {exc}"
                await self._failed(lane, delivery, reason, permanent=False)
            else:
                self._done(
                    DeliveryResult(
                        delivery.id, delivery.tenant, delivery.subscription_id, True, iso_now()
                    )
                )
                if lane.probing:
                    lane.probing = False
                    lane.parked_until = 0.0
                    await self._quietly(self.store.unpark(lane.endpoint))
                    self._dispatch_due = True
            finally:
                lane.sending -= 1

    async def _quietly(self, step: Any) -> None:
        """Run a store step whose failure only costs time (parking, unparking)."""
        try:
            await step
        except Exception:
            log.warning("notifier store step failed", exc_info=True)

    async def _send(self, delivery: Delivery) -> None:
        envelope = orjson.loads(delivery.body)
        throttling = envelope.get("throttling")
        if throttling:
            # Spaced by when they go, not when they were matched: the period holds
            # however late a notification comes out of the outbox.
            key = (delivery.tenant, delivery.subscription_id)
            now = time.time()
            earliest = self._last_sent.get(key, 0.0) + float(throttling)
            if now < earliest:
                raise _Early(earliest)
            self._last_sent[key] = now
        headers: dict[str, str] = envelope["headers"]
        body: dict[str, Any] = envelope["notification"]
        body["notifiedAt"] = iso_now()
        content = orjson.dumps(body)
        endpoint = delivery.endpoint
        if endpoint.startswith(KIND_STREAM + ":"):
            self.streams.send(endpoint, content)
            return
        if endpoint.startswith("mqtt"):
            assert self._mqtt is not None
            await self._mqtt.send(endpoint, headers, content, envelope.get("notifierInfo", {}))
            return
        assert self._http is not None
        timeout = envelope.get("timeout")
        seconds = float(timeout) / 1000.0 if timeout else self.settings.notify_timeout
        await self._http.send(endpoint, headers, content, seconds)

    async def _failed(
        self, lane: Lane, delivery: Delivery, reason: str, *, permanent: bool
    ) -> None:
        now = time.time()
        attempts = delivery.attempts + 1
        backoff = min(
            self.settings.notify_retry_max,
            self.settings.notify_retry_base * 2 ** (attempts - 1),
        )
        retry_at: float | None = now + backoff * random.uniform(0.8, 1.0)
        if permanent or now - delivery.created > self.settings.notify_retry_for:
            retry_at = None
            log.warning("giving up notification %s to %s: %s", delivery.id, lane.endpoint, reason)
        self._done(
            DeliveryResult(
                delivery.id,
                delivery.tenant,
                delivery.subscription_id,
                False,
                iso_now(),
                reason,
                retry_at,
            )
        )
        if retry_at is not None:
            lane.blocked_until = max(lane.blocked_until, retry_at)
            if not lane.probing or lane.parked_until <= now:
                lane.probing = True
                lane.parked_until = now + PARK
                await self._quietly(self.store.park(lane.endpoint, lane.parked_until))

    def _defer(self, delivery: Delivery, until: float) -> None:
        self._done(
            DeliveryResult(
                delivery.id,
                delivery.tenant,
                delivery.subscription_id,
                False,
                iso_now(),
                retry_at=until,
                attempted=False,
            )
        )

    def _done(self, result: DeliveryResult) -> None:
        self._results.append(result)
        if len(self._results) >= FLUSH_SIZE or not self._flush.is_set():
            self._flush.set()

    async def _finisher(self) -> None:
        while True:
            await self._flush.wait()
            # A short pause lets results that finish together share one transaction.
            await asyncio.sleep(0.002)
            self._flush.clear()
            try:
                await self._write_results()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("cannot record delivery results; retrying")
                await asyncio.sleep(self.settings.notify_poll)
                self._flush.set()

    async def _write_results(self) -> None:
        while self._results:
            batch, self._results = self._results[:FLUSH_SIZE], self._results[FLUSH_SIZE:]
            try:
                await self.store.finish_deliveries(batch)
            except BaseException:
                self._results[:0] = batch
                raise
            for result in batch:
                self._inflight.discard(result.id)
            if any(not r.ok and r.retry_at is not None for r in batch):
                self._dispatch_due = True

    # -- live streams ------------------------------------------------------------------

    async def open_stream(self, tenant: str, doc: dict[str, Any]) -> tuple[str, Any]:
        """Register a live stream's transient subscription; its id and event queue."""
        stream_id = f"urn:ngsi-ld:Subscription:stream:{uuid.uuid4()}"
        key = f"{KIND_STREAM}:{self.owner}:{stream_id}"
        doc = {**doc, "id": stream_id, "heartbeat": time.time()}
        doc["notification"] = {**doc["notification"], "endpoint": {"uri": key}}
        queue = self.streams.open(key)
        await self.store.create_subscription(tenant, stream_id, doc, kind=KIND_STREAM)
        self._own_streams[(tenant, stream_id)] = doc
        self.listener("subscriptions", tenant)
        return stream_id, queue

    async def close_stream(self, tenant: str, stream_id: str) -> None:
        """Remove a live stream and what is still queued for it."""
        self.streams.close(f"{KIND_STREAM}:{self.owner}:{stream_id}")
        self._own_streams.pop((tenant, stream_id), None)
        await self.store.delete_subscription(tenant, stream_id)
        self.listener("subscriptions", tenant)

    async def _streams_heartbeat(self) -> None:
        """Renew this process's streams; remove those of processes that are gone."""
        now = time.time()
        if now - self._heartbeat < STREAM_HEARTBEAT:
            return
        self._heartbeat = now
        for (tenant, stream_id), doc in list(self._own_streams.items()):
            doc["heartbeat"] = now
            await self.store.replace_subscription(tenant, stream_id, doc)
        for tenant, subs in list(self._subs.items()):
            for sub in subs:
                beat = sub.doc.get("heartbeat", 0.0)
                if sub.kind == KIND_STREAM and now - float(beat) > STREAM_STALE:
                    await self.store.delete_subscription(tenant, sub.id)


async def _woken(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` passes.

    Not ``asyncio.wait_for``: on Python 3.11 it can swallow a cancellation that arrives
    as the event is set, and the loop would then outlive ``stop``.
    """
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()


def _endpoint_key(sub: Compiled) -> str:
    return str(sub.doc["notification"]["endpoint"]["uri"])


def _handed_back(delivery_id: int, now: float) -> DeliveryResult:
    # Counters are not touched by a row handed back unsent, so tenant and id can be empty.
    return DeliveryResult(delivery_id, "", "", False, iso_now(), retry_at=now, attempted=False)
