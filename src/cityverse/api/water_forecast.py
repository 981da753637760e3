"""Demand forecasting routes under /cityverse/v1/water: run a forecast, read forecasts.

``POST .../networks/{network}/forecast`` trains and forecasts every zone of the network
as a water job (202, ``Location`` the job); ``GET .../networks/{network}/forecast``
answers the stored ``WaterDemandForecast`` entities (``?zone=`` for one zone). Errors are
NGSI-LD ProblemDetails.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cityverse.api.water import PREFIX, _accepted, _broker, _jobs, _json, _network, _object, _tenant
from cityverse.core.entity import normalise_datetime
from cityverse.core.errors import BadRequestData, ResourceNotFound
from cityverse.twins.water import demand, twin
from cityverse.twins.water.calendar import MOROCCO, Calendar
from cityverse.twins.water.forecast import HORIZON

OPTIONS = {"start", "horizon", "level", "country", "timezone", "ramadan"}


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """Check a forecast request's options: start, horizon, level and the calendar."""
    unknown = sorted(set(body) - OPTIONS)
    if unknown:
        raise BadRequestData(f"unknown forecast options: {', '.join(unknown)}")
    out: dict[str, Any] = {}
    if "start" in body:
        out["start"] = datetime.fromisoformat(
            normalise_datetime(body["start"]).replace("Z", "+00:00")
        )
    horizon = body.get("horizon", HORIZON)
    if not isinstance(horizon, int) or isinstance(horizon, bool) or not 1 <= horizon <= HORIZON:
        raise BadRequestData(f"horizon is a number of hours from 1 to {HORIZON}")
    out["horizon"] = horizon
    level = body.get("level", 0.9)
    if not isinstance(level, int | float) or isinstance(level, bool) or not 0 < level < 1:
        raise BadRequestData("level is the prediction intervals' coverage, between 0 and 1")
    out["level"] = float(level)
    ramadan = body.get("ramadan", MOROCCO.ramadan)
    if not isinstance(ramadan, bool):
        raise BadRequestData("ramadan is true or false")
    country, timezone = body.get("country", MOROCCO.country), body.get("timezone")
    if not isinstance(country, str) or (timezone is not None and not isinstance(timezone, str)):
        raise BadRequestData("country (ISO 3166 code) and timezone (IANA name) are strings")
    if timezone is None:
        timezone = MOROCCO.timezone if country == MOROCCO.country else "UTC"
    try:
        out["calendar"] = Calendar(country=country, timezone=timezone, ramadan=ramadan)
    except ValueError as exc:
        raise BadRequestData(str(exc)) from None
    return out


async def run_forecast(request: Request) -> Response:
    """POST /networks/{network}/forecast: forecast every zone (202, a water job)."""
    broker = _broker(request)
    tenant, net = _tenant(request), _network(request)
    options = _options(await _object(request))
    await twin.load_network(broker.store, tenant, net)
    for service in request.app.state.services:
        if isinstance(service, demand.DemandForecasts):
            service.watch(tenant)

    async def work() -> dict[str, Any]:
        ids = await demand.run(broker.store, tenant, net, **options)
        broker.tenant_written(tenant)
        return {"forecasts": ids}

    job = _jobs(request).submit(tenant, "forecast", net, work())
    return _accepted(job)


async def get_forecasts(request: Request) -> Response:
    """GET /networks/{network}/forecast[?zone=Z]: the stored forecasts."""
    broker = _broker(request)
    tenant, net = _tenant(request), _network(request)
    zone = request.query_params.get("zone")
    if zone is not None and not zone.strip():
        raise BadRequestData("zone must name a zone (the tag of its junctions)")
    await twin.load_network(broker.store, tenant, net)
    bodies = await demand.read(broker.store, tenant, net, zone)
    if zone is not None and not bodies:
        raise ResourceNotFound(
            f"no demand forecast for zone {zone!r} of network {net!r}",
            instance=demand.entity_id(net, zone),
        )
    return _json(bodies)


routes = [
    Route(PREFIX + "/networks/{network}/forecast", run_forecast, methods=["POST"]),
    Route(PREFIX + "/networks/{network}/forecast", get_forecasts, methods=["GET"]),
]
