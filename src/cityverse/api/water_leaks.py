"""Leak routes of the water twin under /cityverse/v1/water/networks/{network}: detect,
list, localise, and where to put pressure sensors. Thin translations to
``twins/water/incidents.py`` and ``placement.py``; errors are NGSI-LD ProblemDetails."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cityverse.api.water import PREFIX, _broker, _json, _network, _object, _tenant
from cityverse.core.entity import normalise_datetime
from cityverse.core.errors import BadRequestData, NgsiError
from cityverse.twins.water import incidents
from cityverse.twins.water import leaks as lk
from cityverse.twins.water.placement import place_sensors
from cityverse.twins.water.simulate import Simulator
from cityverse.twins.water.twin import open_network

MAX_BUDGET = 500


def _time(body: dict[str, Any], key: str) -> int | None:
    raw = body.get(key)
    if raw is None:
        return None
    try:
        text = normalise_datetime(raw)
    except NgsiError:
        raise BadRequestData(f"{key} must be an ISO 8601 date-time, not {raw!r}") from None
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _number(body: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequestData(f"{key} must be a number from {low} to {high}")
    return float(value)


async def detect(request: Request) -> Response:
    """POST /networks/{network}/leaks/detect: {from, to, trainingDays, relearnDays, kappa,
    threshold}."""
    broker = _broker(request)
    tenant, net = _tenant(request), _network(request)
    body = await _object(request)
    now = datetime.now(UTC)
    end = _time(body, "to") or int(now.timestamp() * 1000)
    start = _time(body, "from") or int((now - timedelta(days=14)).timestamp() * 1000)
    if start >= end:
        raise BadRequestData("from must be before to")
    days = _number(body, "trainingDays", 7.0, 0.25, 365.0)
    relearn = _number(body, "relearnDays", 7.0, 0.25, 3650.0)
    defaults = lk.Settings()
    settings = lk.Settings(
        kappa=_number(body, "kappa", defaults.kappa, 0.0, 1e6),
        threshold=_number(body, "threshold", defaults.threshold, 0.0, 1e9),
    )
    network = await open_network(broker.store, tenant, net)
    report = await incidents.detect(
        broker.store,
        tenant,
        network,
        start,
        end,
        train_days=days,
        settings=settings,
        relearn_days=relearn,
    )
    return _json(
        {
            "alerts": [
                {
                    "id": a["id"],
                    "subCategory": a["subCategory"]["value"],
                    "severity": a["severity"]["value"],
                    "description": a["description"]["value"],
                }
                for a in report.alerts
            ],
            "dataQuality": report.flagged,
            "monitored": {"from": report.monitored[0], "to": report.monitored[1]},
            "modelResiduals": report.model,
            "relearned": report.relearned,
            "nightFlow": report.night_flow,
        }
    )


async def list_leaks(request: Request) -> Response:
    """GET /networks/{network}/leaks: the network's water Alerts, newest first."""
    broker = _broker(request)
    tenant, net = _tenant(request), _network(request)
    await open_network(broker.store, tenant, net)
    return _json(await incidents.list_alerts(broker.store, tenant, net))


async def localise(request: Request) -> Response:
    """POST /networks/{network}/leaks/{alertId}/localise: {to, trainingDays, top}."""
    broker = _broker(request)
    tenant, net = _tenant(request), _network(request)
    body = await _object(request)
    days = _number(body, "trainingDays", 7.0, 0.25, 365.0)
    top = int(_number(body, "top", 10, 1, 200))
    network = await open_network(broker.store, tenant, net)
    result = await incidents.localise_alert(
        broker.store,
        tenant,
        network,
        request.path_params["alert"],
        train_days=days,
        end_ms=_time(body, "to"),
        top=top,
    )
    return _json(result)


async def sensor_placement(request: Request) -> Response:
    """POST /networks/{network}/sensor-placement?budget=N: junctions for N pressure
    sensors, the existing ones kept."""
    broker = _broker(request)
    tenant, net = _tenant(request), _network(request)
    raw = request.query_params.get("budget", "")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_BUDGET:
        raise BadRequestData(f"budget must be a whole number from 1 to {MAX_BUDGET}")
    budget = int(raw)
    network = await open_network(broker.store, tenant, net)
    bodies = await incidents.load_network(broker.store, tenant, net)
    existing = sorted(
        {
            s.asset.rsplit(":", 1)[-1]
            for s in incidents._sensors(bodies)
            if s.prop == "pressure" and s.asset.startswith("urn:ngsi-ld:Junction:")
        }
    )
    if budget < len(existing):
        raise BadRequestData(f"budget {budget} is below the {len(existing)} existing sensors")

    def work() -> list[str]:
        sim = Simulator(network)
        try:
            return place_sensors(sim, budget, existing=existing)
        finally:
            sim.close()

    chosen = await asyncio.to_thread(work)
    return _json(
        {
            "budget": budget,
            "existing": existing,
            "sensors": [
                {
                    "junction": name,
                    "id": network.node_entities.get(name),
                    "new": name not in existing,
                }
                for name in chosen
            ],
        }
    )


routes = [
    Route(PREFIX + "/networks/{network}/leaks/detect", detect, methods=["POST"]),
    Route(PREFIX + "/networks/{network}/leaks", list_leaks, methods=["GET"]),
    Route(PREFIX + "/networks/{network}/leaks/{alert}/localise", localise, methods=["POST"]),
    Route(PREFIX + "/networks/{network}/sensor-placement", sensor_placement, methods=["POST"]),
]
