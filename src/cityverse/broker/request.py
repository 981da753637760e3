"""What every broker operation receives: the broker's parts and a normalised request.

The HTTP layer turns a request into a ``Call`` (tenant, @context, principal) and calls an
operation such as ``entities.create(broker, call, body)``; operations never see HTTP.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

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
    shapes: dict[str, tuple[int, Any]] = field(default_factory=dict)
    """Per tenant, what discovery last read of its entities, with the store's shape
    version it was read at (see broker/discovery.py)."""
    gate_for: GateFactory | None = None
    """The gate of an ``Owner``'s roles in a tenant, for what its subscriptions deliver
    (set by the app from its security; None: subscriptions with an owner deliver nothing)."""

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


Treatment = Literal["show", "hide", "pseudonymise"]


class Gate(Protocol):
    """What the caller may see and change, as the security layer decided for it.

    The broker asks; it never decides. ``OPEN`` (broker.gate) allows everything::

        if gate.hides(entity["type"]): ...          # not even its existence is told
        gate.attribute(entity["type"], name)        # "show", "hide" or "pseudonymise"
    """

    restricted: bool
    """False when every read and write is allowed, so that callers can skip the checks."""

    def hides(self, types: Sequence[str]) -> bool:
        """True when the caller may not read entities of these (expanded) types."""
        ...

    def attribute(self, types: Sequence[str], name: str) -> Treatment:
        """How the attribute ``name`` (expanded) of an entity of ``types`` is shown."""
        ...

    def pseudonym(self, value: Any) -> str:
        """The stable pseudonym of a personal value (keyed hash, per tenant)."""
        ...

    def may_write(self, types: Sequence[str], *, delete: bool = False) -> bool:
        """True when the caller may change (or, with ``delete``, delete) such entities."""
        ...

    def disclosed(self, entity_id: str, name: str) -> None:
        """Note that a personal attribute of ``entity_id`` was shown (for the audit)."""
        ...


class _Open:
    restricted = False

    def hides(self, types: Sequence[str]) -> bool:
        return False

    def attribute(self, types: Sequence[str], name: str) -> Treatment:
        return "show"

    def pseudonym(self, value: Any) -> str:
        return str(value)

    def may_write(self, types: Sequence[str], *, delete: bool = False) -> bool:
        return True

    def disclosed(self, entity_id: str, name: str) -> None:
        return None


OPEN: Gate = _Open()
"""The gate of a caller who may do everything (internal calls, security switched off)."""

GateFactory = Callable[[str, frozenset[str]], Awaitable[Gate]]
"""Builds the gate of the given roles in a tenant, without a request::

    gate = await broker.gate_for("berkane", frozenset({"analyst"}))
"""


OWNER = "owner"
"""The member of a stored subscription that holds its ``Owner`` (never shown by the API)."""


@dataclass(frozen=True, slots=True)
class Owner:
    """Who created or last changed a subscription: its subject and its roles in the
    subscription's tenant. Notifications show what these roles may see."""

    subject: str
    roles: frozenset[str]

    def to_doc(self) -> dict[str, Any]:
        return {"subject": self.subject, "roles": sorted(self.roles)}

    @classmethod
    def from_doc(cls, doc: Any) -> Owner:
        """The owner stored in a subscription; ValueError when it is not one."""
        if not isinstance(doc, dict) or not isinstance(doc.get("roles"), list):
            raise ValueError(f"not a subscription owner: {doc!r}")
        return cls(str(doc.get("subject", "")), frozenset(str(r) for r in doc["roles"]))


def owner_of(gate: Gate) -> Owner | None:
    """The owner a restricted gate speaks for (its ``owner`` member), else None."""
    if not gate.restricted:
        return None
    owner = getattr(gate, "owner", None)
    return owner if isinstance(owner, Owner) else None


@dataclass(frozen=True, slots=True)
class Call:
    """A normalised request: who asks, in which tenant, with which @context."""

    tenant: str
    context: Context
    principal: str | None = None
    ld_body: bool = False
    """True when the body is application/ld+json: each entity in it carries its @context."""
    gate: Gate = OPEN
    """What the caller may see and change (``broker.gate`` applies it)."""


def parse_tenant(raw: str | None) -> str:
    """The tenant named by an ``NGSILD-Tenant`` header (absent or empty: the default)."""
    if raw is None or raw == "":
        return DEFAULT_TENANT
    if not _TENANT.fullmatch(raw):
        raise BadRequestData(
            f"invalid tenant {raw!r}: use 1 to 64 letters, digits, '_', '-' or '.'"
        )
    return raw
