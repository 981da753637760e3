"""Who is calling: an identity and its roles per tenant.

An identity comes from an API key, from a bearer token (JWT) of the city's OpenID
Connect provider, or is the anonymous caller. Its roles are per tenant; ``*`` grants
them in every tenant (a platform administrator)::

    Identity("key:3f2a", "apikey", {"default": frozenset({"operator"})})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cityverse.security.policy import ALL


@dataclass(frozen=True)
class Identity:
    """A caller: its subject, how it proved it, and its roles per tenant."""

    subject: str
    kind: str
    """``apikey``, ``jwt``, ``anonymous`` or ``open`` (security switched off)."""
    roles: Mapping[str, frozenset[str]] = field(default_factory=dict)
    name: str = ""

    def roles_in(self, tenant: str) -> frozenset[str]:
        """The caller's roles in ``tenant`` (``public`` for the anonymous caller)."""
        if self.kind == "anonymous":
            return frozenset({"public"})
        return self.roles.get(tenant, frozenset()) | self.roles.get(ALL, frozenset())

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS = Identity("anonymous", "anonymous")
OPEN_ACCESS = Identity("open", "open", {ALL: frozenset({"admin"})}, "security off")
"""The identity of every caller when security is switched off."""
