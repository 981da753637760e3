"""One settings object, built from ``CITYVERSE_*`` environment variables and CLI flags.

Nothing is configured at import time: the CLI builds a ``Settings`` and hands it to the
app factory; tests build as many as they need::

    settings = Settings.from_env(port=1027)
    app = create_app(settings)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "CITYVERSE_"


@dataclass(frozen=True)
class Settings:
    """Every setting of CityVerse, with its default. Each maps to ``CITYVERSE_<NAME>``."""

    host: str = "127.0.0.1"
    """Address the HTTP server listens on."""
    port: int = 1026
    """Port the HTTP server listens on (1026 is the usual NGSI-LD broker port)."""
    workers: int = 1
    """Number of server processes."""
    data_dir: str = "./data"
    """Directory for the embedded store and other local files."""
    store: str = ""
    """Store URL: sqlite:///path/to/file.db or postgresql://user@host/db; empty means
    a SQLite file in the data directory."""
    default_limit: int = 20
    """Entities per page when a query gives no limit."""
    max_limit: int = 1000
    """Largest limit a query may ask for; above it the answer is TooManyResults."""
    max_body_bytes: int = 64 * 1024 * 1024
    """Largest request body accepted; larger bodies get 413."""
    max_json_depth: int = 64
    """Deepest nesting of JSON accepted in a request body."""
    max_batch: int = 100_000
    """Most entities in one batch operation."""
    context_timeout: float = 5.0
    """Seconds allowed to fetch a user @context from the network."""
    context_cache_size: int = 256
    """Processed @contexts kept in memory."""
    core_context: str = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
    """The core @context URL used in responses."""
    log_level: str = "info"
    """Log level of the server: debug, info, warning, error."""
    temporal_max_instances: int = 1000
    """Most instances per attribute in one temporal answer; the rest is paged with
    Content-Range."""
    temporal_retention: str = ""
    """History kept per entity type, as ``Type=P90D,OtherType=P1Y,*=P5Y`` (ISO 8601
    durations; ``*`` is every other type); empty keeps all history."""
    tiles_url: str = ""
    """Raster map tiles for the dashboard's basemap, as a ``{z}/{x}/{y}`` URL template;
    empty draws the city's own layers on a plain background."""
    demo_speed: float = 0.0
    """Speed of the demo city's clock (city seconds per real second); above 0 the app
    loads the demo city when its store is empty and plays its devices and story
    (``cityverse demo`` sets it); 0 runs no demo."""
    notify_timeout: float = 5.0
    """Seconds one notification may take to deliver (HTTP answer, MQTT acknowledgement)
    unless its endpoint sets a timeout."""
    notify_concurrency: int = 8
    """Notifications in flight at once per endpoint."""
    notify_retry_base: float = 1.0
    """Seconds before the first retry of a failed notification; each retry doubles it."""
    notify_retry_max: float = 300.0
    """Longest wait between two retries of a notification, in seconds."""
    notify_retry_for: float = 86400.0
    """Seconds a notification is retried before it is given up (and counted failed)."""
    notify_poll: float = 0.05
    """Seconds between looks at the change log and the outbox when no write in this
    process wakes the notifier (writes of other processes, retries falling due)."""
    notify_lease: float = 30.0
    """Seconds a process holds a notification it is sending; after a crash, another
    process (or the restarted one) sends it when the lease runs out."""
    iot_mqtt_url: str = ""
    """MQTT broker of the IoT agent's device transport, ``mqtt://[user:pass@]host:port``;
    empty disables MQTT (devices can still use HTTP)."""
    iot_mqtt_client_id: str = "cityverse-iot"
    """Client id of the IoT agent's persistent MQTT session (unique per broker)."""
    iot_rate_limit: float = 20.0
    """Messages per second one device may send (bursts up to as many); 0 is no limit."""
    iot_batch_ms: float = 5.0
    """Milliseconds the IoT agent collects measures before writing them in one batch."""
    dask_scheduler: str = ""
    """Dask distributed scheduler (``tcp://host:8786``) that runs the water twin's scenario
    batches; empty runs them on this machine's cores."""

    auth: str = "on"
    """``on``: every request needs an identity (API key or bearer token) unless the
    tenant's policy opens it to the public; ``off`` serves everything to everyone (local
    development only: ``cityverse serve --insecure-open``)."""
    policy_file: str = ""
    """JSON file of the tenants' roles and personal-data inventory (docs/security.md);
    empty uses the built-in roles. A policy set through the API wins over the file."""
    secret_key: str = ""
    """The site's secret (audit chain, pseudonyms); empty keeps a random one in
    ``<data dir>/secret.key``."""
    oidc_issuer: str = ""
    """Issuer (``iss``) of the bearer tokens accepted, e.g. a Keycloak realm URL; empty
    accepts API keys only."""
    oidc_audience: str = ""
    """Audience (``aud``) the bearer tokens must carry; empty does not check it."""
    oidc_jwks: str = ""
    """The issuer's signing keys: a JWKS URL (fetched and cached) or a file path (for
    sites without a route to the provider)."""
    oidc_roles_claim: str = "roles"
    """Claim holding a token's roles (dotted path, e.g. ``realm_access.roles``); values
    are ``role`` or ``tenant:role``."""
    oidc_tenant_claim: str = "tenant"
    """Claim naming the tenant(s) where a token's bare roles apply (else the default)."""
    audit_log: str = ""
    """File of the hash-chained audit log; empty is ``<data dir>/audit.log``; ``off``
    keeps none."""
    rate_limit: float = 1000.0
    """Requests per second one identity (or one address, without credentials) may make,
    in bursts of twice as many; 0 is no limit."""
    data_residency: str = "on this server (its data directory and store)"
    """Where the city's data is stored, as the operator states it (``cityverse status``)."""
    tls_cert: str = ""
    """PEM certificate file: serve HTTPS (with ``tls_key``)."""
    tls_key: str = ""
    """PEM private key file of ``tls_cert``."""

    @property
    def store_url(self) -> str:
        """The store URL in force (the SQLite default resolved against ``data_dir``)."""
        if self.store:
            return self.store
        return "sqlite:///" + str(Path(self.data_dir) / "cityverse.db")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from the environment, then ``overrides`` (CLI flags; None is ignored)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed."""
        return dataclasses.replace(self, **changes)


def _convert(name: str, type_name: Any, raw: str) -> Any:
    kind = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", "str")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw


def documented_settings() -> list[str]:
    """Names of the environment variables, for the docs and their test."""
    return [ENV_PREFIX + f.name.upper() for f in fields(Settings)]
