"""Roles, permissions and the personal-data inventory of a tenant.

A tenant's policy says, for each role, which operations it may perform on which entity
types, and which attributes hold personal data. It is a JSON document (from the policy
file or ``PUT /cityverse/v1/security/policy``)::

    {
      "roles": {
        "citizen": {"write": ["ServiceRequest"]},
        "public": {"read": ["WeatherObserved", "ParkingSpot"], "subscribe": ["*"]}
      },
      "personal": [
        {"type": "ServiceRequest", "attribute": "contactPoint",
         "purpose": "answer the reporter", "retention": "P1Y", "treatment": "pseudonymise"}
      ]
    }

A role named in ``roles`` replaces the built-in permissions of the operations it lists
and keeps the others. Types are matched by their short name (the last segment of the
expanded IRI) or by their full IRI; ``*`` is every type. ``public`` is the role of a
caller without credentials: it may do nothing unless a policy opens something.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cityverse.core.errors import BadRequestData
from cityverse.core.temporal import Duration, parse_duration

OPERATIONS = ("read", "write", "delete", "subscribe", "scenarios", "devices", "personal", "admin")
"""What a role may be allowed: read entities, write (create, update, append), delete,
subscribe (subscriptions and the live stream), run water scenarios, manage devices,
see personal data in clear, and administer the tenant (keys, policy, audit)."""

ROLES = ("admin", "operator", "analyst", "developer", "citizen", "public")
ALL = "*"
Operation = str

_EVERYTHING: tuple[str, ...] = (ALL,)

DEFAULT_ROLES: dict[str, dict[Operation, tuple[str, ...]]] = {
    "admin": {op: _EVERYTHING for op in OPERATIONS},
    "operator": {
        op: _EVERYTHING
        for op in ("read", "write", "delete", "subscribe", "scenarios", "devices", "personal")
    },
    "analyst": {op: _EVERYTHING for op in ("read", "subscribe", "scenarios")},
    "developer": {op: _EVERYTHING for op in ("read", "write", "subscribe", "devices")},
    "citizen": {
        "read": _EVERYTHING,
        "write": ("ServiceRequest", "Open311ServiceRequest", "IssueReport", "Survey"),
        "subscribe": _EVERYTHING,
    },
    "public": {},
}
"""Built-in permissions per role; a tenant's policy overrides them operation by operation."""

DEFAULT_PERSONAL: tuple[dict[str, Any], ...] = (
    {
        "type": ALL,
        "attribute": "contactPoint",
        "purpose": "contact the person who reported or requested something",
        "treatment": "hide",
    },
    {"type": ALL, "attribute": "email", "purpose": "contact", "treatment": "hide"},
    {"type": ALL, "attribute": "telephone", "purpose": "contact", "treatment": "hide"},
    {
        "type": ALL,
        "attribute": "customer",
        "purpose": "bill a metered customer",
        "treatment": "pseudonymise",
    },
    {
        "type": ALL,
        "attribute": "reporter",
        "purpose": "follow up a citizen's report",
        "treatment": "pseudonymise",
    },
)
"""Attributes treated as personal in every tenant unless its policy lists its own."""

Treatment = Literal["hide", "pseudonymise"]


def short_name(iri: str) -> str:
    """The last segment of an expanded IRI: ``.../dataModel.Water/Pipe`` -> ``Pipe``."""
    return iri.rsplit("/", 1)[-1].rsplit("#", 1)[-1]


@dataclass(frozen=True)
class TypeSet:
    """A set of entity types given by short names or IRIs; ``*`` is every type."""

    names: frozenset[str]

    @property
    def everything(self) -> bool:
        return ALL in self.names

    def matches(self, types: Iterable[str]) -> bool:
        """True when one of ``types`` (expanded IRIs) is in the set."""
        if ALL in self.names:
            return True
        return any(t in self.names or short_name(t) in self.names for t in types)


@dataclass(frozen=True)
class PersonalAttribute:
    """An attribute holding personal data: where, why, how long, and how it is shown."""

    type: str
    attribute: str
    purpose: str
    retention: str | None
    treatment: Treatment

    @property
    def kept_for(self) -> Duration | None:
        return parse_duration(self.retention) if self.retention else None

    def applies(self, types: Iterable[str], name: str) -> bool:
        """True when ``name`` (expanded) of an entity of ``types`` is this attribute."""
        if name != self.attribute and short_name(name) != self.attribute:
            return False
        return self.type == ALL or TypeSet(frozenset({self.type})).matches(types)

    def document(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "attribute": self.attribute,
            "purpose": self.purpose,
            "retention": self.retention,
            "treatment": self.treatment,
        }


@dataclass(frozen=True)
class TenantPolicy:
    """The effective policy of one tenant: permissions per role, personal attributes."""

    roles: Mapping[str, Mapping[Operation, TypeSet]]
    personal: tuple[PersonalAttribute, ...]
    source: dict[str, Any] = field(default_factory=dict)
    """The document it was built from (what the API returns)."""

    def allows(self, roles: Iterable[str], operation: Operation, types: Sequence[str]) -> bool:
        """True when one of ``roles`` may perform ``operation`` on entities of ``types``."""
        for role in roles:
            allowed = self.roles.get(role, {}).get(operation)
            if allowed is not None and allowed.matches(types):
                return True
        return False

    def allows_any(self, roles: Iterable[str], operation: Operation) -> bool:
        """True when one of ``roles`` may perform ``operation`` on some type."""
        return any(self.roles.get(role, {}).get(operation) for role in roles)

    def personal_attribute(self, types: Sequence[str], name: str) -> PersonalAttribute | None:
        """The inventory entry of ``name`` on an entity of ``types``, if it is personal."""
        for item in self.personal:
            if item.applies(types, name):
                return item
        return None


def parse_tenant_policy(doc: Any, where: str = "policy") -> TenantPolicy:
    """A tenant's policy from its JSON document; BadRequestData says what is wrong."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise BadRequestData(f"{where} must be a JSON object with 'roles' and 'personal'")
    unknown = sorted(set(doc) - {"roles", "personal"})
    if unknown:
        raise BadRequestData(f"{where} has unknown member(s) {', '.join(unknown)}")
    roles: dict[str, dict[Operation, TypeSet]] = {
        role: {op: TypeSet(frozenset(types)) for op, types in ops.items()}
        for role, ops in DEFAULT_ROLES.items()
    }
    given = doc.get("roles", {})
    if not isinstance(given, dict):
        raise BadRequestData(f"{where}: 'roles' must map a role to its operations")
    for role, ops in given.items():
        if role not in ROLES:
            raise BadRequestData(f"{where}: unknown role {role!r}; roles: {', '.join(ROLES)}")
        if not isinstance(ops, dict):
            raise BadRequestData(f"{where}: role {role!r} must map operations to type lists")
        for op, types in ops.items():
            if op not in OPERATIONS:
                raise BadRequestData(
                    f"{where}: unknown operation {op!r} for role {role!r};"
                    f" operations: {', '.join(OPERATIONS)}"
                )
            roles[role][op] = TypeSet(frozenset(_names(types, f"{where}: {role}.{op}")))
    personal_doc = doc.get("personal", list(DEFAULT_PERSONAL))
    if not isinstance(personal_doc, list):
        raise BadRequestData(f"{where}: 'personal' must be a list of attributes")
    personal = tuple(
        _personal(item, f"{where}: personal[{i}]") for i, item in enumerate(personal_doc)
    )
    return TenantPolicy(roles=roles, personal=personal, source=doc)


def _names(types: Any, where: str) -> list[str]:
    if isinstance(types, str):
        types = [types]
    if not isinstance(types, list) or not all(isinstance(t, str) and t for t in types):
        raise BadRequestData(f"{where} must be a list of entity types (or '*')")
    return list(types)


def _personal(item: Any, where: str) -> PersonalAttribute:
    if not isinstance(item, dict):
        raise BadRequestData(f"{where} must be an object")
    unknown = sorted(set(item) - {"type", "attribute", "purpose", "retention", "treatment"})
    if unknown:
        raise BadRequestData(f"{where} has unknown member(s) {', '.join(unknown)}")
    attribute = item.get("attribute")
    if not isinstance(attribute, str) or not attribute:
        raise BadRequestData(f"{where} needs an 'attribute' name")
    type_name = item.get("type", ALL)
    purpose = item.get("purpose", "")
    if not isinstance(type_name, str) or not type_name or not isinstance(purpose, str):
        raise BadRequestData(f"{where}: 'type' and 'purpose' must be strings")
    retention = item.get("retention")
    if retention is not None:
        if not isinstance(retention, str):
            raise BadRequestData(f"{where}: 'retention' must be an ISO 8601 duration")
        try:
            kept = parse_duration(retention)
        except BadRequestData:
            raise BadRequestData(
                f"{where}: retention {retention!r} is not an ISO 8601 duration such as P1Y"
            ) from None
        if kept.zero:
            raise BadRequestData(f"{where}: a retention of zero would erase at once")
    treatment = item.get("treatment", "hide")
    if treatment not in ("hide", "pseudonymise"):
        raise BadRequestData(f"{where}: treatment must be 'hide' or 'pseudonymise'")
    return PersonalAttribute(type_name, attribute, purpose, retention, treatment)


@dataclass(frozen=True)
class PolicyFile:
    """Policies per tenant from the policy file; ``*`` applies to tenants not named."""

    tenants: Mapping[str, TenantPolicy]

    def for_tenant(self, tenant: str) -> TenantPolicy:
        return self.tenants.get(tenant) or self.tenants.get(ALL) or DEFAULT_POLICY


def parse_policy_file(doc: Any, where: str) -> PolicyFile:
    """The policy file: ``{"tenants": {"default": {...}, "*": {...}}}``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("tenants"), dict):
        raise BadRequestData(f"{where} must be a JSON object with a 'tenants' object")
    return PolicyFile(
        {
            tenant: parse_tenant_policy(item, f"{where} tenant {tenant!r}")
            for tenant, item in doc["tenants"].items()
        }
    )


DEFAULT_POLICY = parse_tenant_policy({})
"""The built-in roles and personal attributes, for a tenant with no policy of its own."""

PUBLIC_READ: dict[str, Any] = {
    "roles": {"public": {"read": [ALL], "subscribe": [ALL], "scenarios": [ALL]}}
}
"""A policy that opens reading, the live stream and scenarios to everyone (the demo)."""
