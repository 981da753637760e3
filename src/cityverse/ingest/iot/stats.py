"""What the IoT agent did: counters, the last rejections, and the per-device rate limit.

Every message or measure the agent refuses is counted under a reason an operator can
act on (``unknown-apikey``, ``unknown-device``, ``malformed``, ``wrong-type``,
``bad-timestamp``, ``rate-limited`` ...), kept among the last rejections with its
details, and logged (at most one line per reason per second, so that a flood cannot
drown the log). ``GET /iot/stats`` shows them.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from cityverse.core.entity import iso_now

log = logging.getLogger("cityverse.iot")

REASONS = {
    "unknown-apikey": "no service group has this apikey (and no device was provisioned with it)",
    "unknown-device": "the device is not provisioned and its group does not auto-provision",
    "malformed": "the payload is not valid UltraLight 2.0 or JSON",
    "bad-topic": "the MQTT topic is not /{apikey}/{device}/attrs[/{attr}] or /cmdexe",
    "wrong-type": "a value does not fit the provisioned attribute type",
    "bad-timestamp": "the measure's TimeInstant/observedAt is not an ISO 8601 date-time",
    "bad-attribute": "a measure name is not a valid NGSI-LD attribute name",
    "rate-limited": "the device sent more messages than the per-device rate limit allows",
    "unknown-command": "a command result names a command the device does not have",
    "store-error": "the store refused the update",
}
"""Rejection reasons and what each means."""

LAST = 50


@dataclass(slots=True)
class Rejection:
    """One rejected message or value."""

    at: str
    reason: str
    detail: str
    apikey: str | None
    device_id: str | None
    transport: str

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "reason": self.reason,
            "detail": self.detail,
            "apikey": self.apikey,
            "deviceId": self.device_id,
            "transport": self.transport,
        }


class Stats:
    """Counters of the agent's work and of its rejections."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.last: deque[Rejection] = deque(maxlen=LAST)
        self._logged: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a counter (messages, measures, entitiesCreated ...)."""
        self.counts[name] += n

    def reject(
        self,
        reason: str,
        detail: str,
        *,
        apikey: str | None = None,
        device_id: str | None = None,
        transport: str = "",
    ) -> None:
        """Count and remember a rejection, and log it unless that reason just was."""
        self.rejected[reason] += 1
        self.last.append(Rejection(iso_now(), reason, detail, apikey, device_id, transport))
        now = time.monotonic()
        if now - self._logged.get(reason, -10.0) < 1.0:
            self._suppressed[reason] += 1
            return
        self._logged[reason] = now
        more = self._suppressed.pop(reason, 0)
        log.warning(
            "IoT %s rejected (%s): %s [apikey=%s device=%s]%s",
            transport or "message",
            reason,
            detail,
            apikey,
            device_id,
            f" (+{more} more of this reason not logged)" if more else "",
        )

    def as_json(self) -> dict[str, Any]:
        """The counters and the last rejections, newest first."""
        return {
            "counts": dict(self.counts),
            "rejected": dict(self.rejected),
            "reasons": REASONS,
            "lastRejections": [r.as_json() for r in reversed(self.last)],
        }


class RateLimiter:
    """A token bucket per device: ``rate`` messages per second, bursts up to ``rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(1.0, rate)
        self._buckets: dict[Any, list[float]] = {}

    def allow(self, key: Any, now: float) -> bool:
        """Whether the device may send one more message now (rate 0: always)."""
        if self.rate <= 0:
            return True
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 200_000:
                self._prune(now)
            self._buckets[key] = [self.burst - 1.0, now]
            return True
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def _prune(self, now: float) -> None:
        # Buckets idle long enough to be full again carry no state.
        idle = self.burst / self.rate
        self._buckets = {k: b for k, b in self._buckets.items() if now - b[1] < idle}
