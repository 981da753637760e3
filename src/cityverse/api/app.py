"""The app factory: one ASGI application from one Settings object.

    app = create_app(Settings.from_env())

The store is opened in the lifespan and closed after it, and the app's background
services (``Service``: delivery of notifications, the IoT agent, history retention)
start after the store opens and stop before it closes. Every error, expected or not,
leaves as ProblemDetails.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cityverse import __version__
from cityverse.api import (
    iot,
    ngsi_ld,
    openapi,
    security,
    subscriptions,
    temporal,
    water,
    water_forecast,
    water_leaks,
)
from cityverse.api.http import JSON, problem_response
from cityverse.broker.jsonld import hosted_lookup
from cityverse.broker.request import Broker
from cityverse.broker.retention import Retention
from cityverse.core.context import ContextResolver
from cityverse.core.entity import iso_now
from cityverse.core.errors import (
    InvalidRequest,
    MethodNotAllowed,
    NgsiError,
    ResourceNotFound,
)
from cityverse.demo.service import DemoService
from cityverse.ingest.iot.agent import IotAgent
from cityverse.notify.service import Notifier
from cityverse.security.audit import AuditLog
from cityverse.security.guard import Guard
from cityverse.security.keys import ServiceKey
from cityverse.security.middleware import SecurityMiddleware
from cityverse.security.privacy import PersonalRetention
from cityverse.security.secrets import site_secret
from cityverse.settings import Settings
from cityverse.store.base import EntityStore, open_store
from cityverse.twins.water.demand import DemandForecasts
from cityverse.twins.water.jobs import WaterJobs
from cityverse.ui import routes as ui_routes

log = logging.getLogger("cityverse")
DEMO_KEY_NAME = "demo city devices and story"


class Service(Protocol):
    """A background task that lives as long as the app, over its open store::

    class Retention:
        async def start(self) -> None: self.task = asyncio.create_task(self.loop())
        async def stop(self) -> None: await cancel_and_wait([self.task], what="retention")
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def _ngsi_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NgsiError)
    return problem_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return problem_response(ResourceNotFound(f"no resource at {request.url.path}"))
    if exc.status_code == 405:
        return problem_response(
            MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
        )
    return problem_response(InvalidRequest(str(exc.detail)))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(NgsiError("the server met an unexpected error; it has been logged"))


async def source_identity(request: Request) -> Response:
    """GET /info/sourceIdentity (GS CIM 009 v1.8 5.15.2)."""
    broker: Broker = request.app.state.broker
    body = {
        "id": "urn:ngsi-ld:ContextSourceIdentity:cityverse",
        "type": "ContextSourceIdentity",
        "contextSourceExtras": {
            "product": "CityVerse",
            "version": __version__,
            "security": "on" if request.app.state.guard.enabled else "OFF: open to everyone",
        },
        "contextSourceUptime": f"PT{int(time.monotonic() - request.app.state.started)}S",
        "contextSourceTimeAt": iso_now(),
        "contextSourceAlias": "cityverse",
        "store": broker.store.__class__.__name__,
    }
    return Response(orjson.dumps(body), media_type=JSON)


def create_app(settings: Settings, *, store: EntityStore | None = None) -> Starlette:
    """Build the CityVerse ASGI app; ``store`` overrides the one the settings name."""
    the_store = store if store is not None else open_store(settings.store_url)
    contexts = ContextResolver(
        timeout=settings.context_timeout,
        cache_size=settings.context_cache_size,
        local=hosted_lookup(the_store),
    )
    broker = Broker(settings=settings, store=the_store, contexts=contexts)
    secret = site_secret(settings)
    guard = Guard.from_settings(settings, the_store, secret)
    broker.gate_for = guard.gate_for
    audit = audit_log(settings, secret)
    services: list[Service] = []
    if audit is not None:
        services.append(audit)
    services.append(PersonalRetention(the_store, guard.policy))
    services.append(Retention.for_broker(broker))
    services.append(IotAgent(broker))
    services.append(WaterJobs(broker))
    services.append(DemandForecasts(the_store))
    notifier = Notifier.for_broker(broker)
    if notifier is not None:
        services.append(notifier)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await the_store.open()
        started: list[Service] = []
        try:
            for service in services:
                await service.start()
                started.append(service)
            yield
        finally:
            for service in reversed(started):
                try:
                    await service.stop()
                except Exception:
                    log.exception("service %s did not stop cleanly", type(service).__name__)
            await the_store.close()

    handlers: dict[Any, Any] = {
        NgsiError: _ngsi_error,
        HTTPException: _http_error,
        Exception: _unexpected,
    }
    app = Starlette(
        routes=[
            *ngsi_ld.routes,
            *iot.routes,
            *temporal.routes,
            *subscriptions.routes,
            Route(ngsi_ld.PREFIX + "/info/sourceIdentity", source_identity, methods=["GET"]),
            *water.routes,
            *water_leaks.routes,
            *water_forecast.routes,
            *openapi.routes,
            *security.routes,
            *ui_routes,
        ],
        exception_handlers=handlers,
        lifespan=lifespan,
        middleware=[Middleware(SecurityMiddleware, guard=guard, audit=audit)],
    )
    if not guard.enabled:
        log.warning(
            "SECURITY IS OFF (CITYVERSE_AUTH=off / --insecure-open): every caller may read,"
            " change and delete everything; never run a city's twin like this"
        )
    if settings.demo_speed > 0:
        # The demo city: loaded into the store, then played through this same API, with
        # a key of its own (revoked when the app stops).
        demo = DemoService(broker, settings)
        if guard.enabled:
            services.append(ServiceKey(guard.keys, "operator", DEMO_KEY_NAME, demo.use))
        services.append(demo)
    app.state.broker = broker
    app.state.guard = guard
    app.state.audit = audit
    app.state.services = services
    app.state.notifier = notifier
    app.state.settings = settings
    app.state.started = time.monotonic()
    return app


def audit_log(settings: Settings, secret: bytes) -> AuditLog | None:
    """The audit log the settings name (None when switched off)."""
    if settings.audit_log == "off":
        return None
    path = settings.audit_log or str(Path(settings.data_dir) / "audit.log")
    return AuditLog(path, secret)


def app_from_env() -> Starlette:
    """The app as configured by ``CITYVERSE_*`` variables (used by server worker processes)."""
    # A server decodes and drops many small JSON documents; the default thresholds make
    # the collector run every few hundred of them, tripling the cost of a large query.
    gc.set_threshold(100_000, 50, 100)
    app = create_app(Settings.from_env())
    gc.freeze()
    return app
