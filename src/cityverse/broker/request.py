"""What every broker operation receives: the broker's parts and a normalised request.

The HTTP layer turns a request into a ``Call`` (tenant, @context, principal) and calls an
operation such as ``entities.create(broker, call, body)``; operations never see HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from cityverse.core.context import Context, ContextResolver
from cityverse.core.errors import BadRequestData, NonexistentTenant
from cityverse.settings import Settings
from cityverse.store.base import DEFAULT_TENANT, EntityStore

_TENANT = re.compile(r"[A-Za-z0-9_\-.]{1,64}")


@dataclass
class Broker:
    """The broker's long-lived parts: settings, store and @context resolver."""

    settings: Settings
    store: EntityStore
    contexts: ContextResolver
    _known_tenants: set[str] = field(default_factory=lambda: {DEFAULT_TENANT})
    listeners: list[Callable[[str, str], None]] = field(default_factory=list)
    """Called with (event, tenant) after a commit: ``written`` after every entity write,
    ``subscriptions`` after a subscription changes. The notifier wakes on them."""

    async def check_tenant(self, tenant: str) -> None:
        """Raise NonexistentTenant when a read names a tenant that holds no data."""
        if tenant in self._known_tenants:
            return
        if tenant in await self.store.tenants():
            self._known_tenants.add(tenant)
            return
        raise NonexistentTenant(f"tenant {tenant!r} does not exist")

    def tenant_written(self, tenant: str) -> None:
        """Remember that a write created ``tenant`` (and tell the listeners it wrote)."""
        self._known_tenants.add(tenant)
        for listener in self.listeners:
            listener("written", tenant)

    def signal(self, event: str, tenant: str) -> None:
        """Tell the listeners that ``event`` happened in ``tenant``."""
        for listener in self.listeners:
            listener(event, tenant)


@dataclass(frozen=True, slots=True)
class Call:
    """A normalised request: who asks, in which tenant, with which @context."""

    tenant: str
    context: Context
    principal: str | None = None
    ld_body: bool = False
    """True when the body is application/ld+json: each entity in it carries its @context."""


def parse_tenant(raw: str | None) -> str:
    """The tenant named by an ``NGSILD-Tenant`` header (absent or empty: the default)."""
    if raw is None or raw == "":
        return DEFAULT_TENANT
    if not _TENANT.fullmatch(raw):
        raise BadRequestData(
            f"invalid tenant {raw!r}: use 1 to 64 letters, digits, '_', '-' or '.'"
        )
    return raw
