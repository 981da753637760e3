"""The water twin's HTTP routes under /cityverse/v1/water: thin translations.

Runs are asynchronous: a POST answers 202 with the job's URL in ``Location``; the job
says when it is done and where its results are (``SimulationScenario`` and
``SimulationResult`` entities, readable through the NGSI-LD API too). Errors are
NGSI-LD ProblemDetails like everywhere else.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cityverse.api.http import JSON, read_json
from cityverse.broker.request import Broker, parse_tenant
from cityverse.core.entity import render_entity
from cityverse.core.errors import BadRequestData, NgsiError, PayloadTooLarge, ResourceNotFound
from cityverse.twins.water import jobs as water_jobs
from cityverse.twins.water import twin
from cityverse.twins.water.model import (
    InpError,
    Placement,
    check_network_name,
    inp_text,
    model_from_entities,
    network_id,
)
from cityverse.twins.water.scenarios import ScenarioError, parse_scenario

PREFIX = "/cityverse/v1/water"
MAX_SCENARIOS = 10_000


def _broker(request: Request) -> Broker:
    broker: Broker = request.app.state.broker
    return broker


def _jobs(request: Request) -> water_jobs.WaterJobs:
    for service in request.app.state.services:
        if isinstance(service, water_jobs.WaterJobs):
            return service
    raise NgsiError("the water job runner is not configured in this app")


def _tenant(request: Request) -> str:
    return parse_tenant(request.headers.get("ngsild-tenant"))


def _network(request: Request) -> str:
    name = request.path_params["network"]
    try:
        return check_network_name(name)
    except ValueError as exc:
        raise BadRequestData(str(exc)) from None


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def _accepted(job: water_jobs.Job, extra: dict[str, Any] | None = None) -> Response:
    url = f"{PREFIX}/jobs/{job.id}"
    return _json({**job.render(), **(extra or {})}, 202, {"Location": url})


async def _object(request: Request) -> dict[str, Any]:
    if (
        not int(request.headers.get("content-length") or 0)
        and "content-type" not in request.headers
    ):
        return {}
    body = await read_json(request, _broker(request))
    if not isinstance(body, dict):
        raise BadRequestData("the body must be a JSON object")
    return body


# -- networks ----------------------------------------------------------------------------


async def list_networks(request: Request) -> Response:
    """GET /networks: the tenant's water networks."""
    return _json(await twin.list_networks(_broker(request).store, _tenant(request)))


async def import_network(request: Request) -> Response:
    """POST /networks?name=N&crs=EPSG:x | anchor=lon,lat[&offset=x,y]: body is the .inp."""
    broker = _broker(request)
    params = request.query_params
    name = params.get("name") or ""
    try:
        check_network_name(name)
        placement = _placement(params.get("crs"), params.get("anchor"), params.get("offset"))
    except ValueError as exc:
        raise BadRequestData(str(exc)) from None
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > broker.settings.max_body_bytes:
            raise PayloadTooLarge(
                f"the body is over the limit of {broker.settings.max_body_bytes} bytes"
            )
    if not raw.strip():
        raise BadRequestData("the body must be the network's .inp file")
    with tempfile.TemporaryDirectory(prefix="cityverse-upload-") as tmp:
        path = Path(tmp) / f"{name}.inp"
        path.write_bytes(raw)
        try:
            report = await twin.import_network(
                broker.store,
                _tenant(request),
                path,
                name,
                placement,
                replace=params.get("replace") == "true",
            )
        except InpError as exc:
            raise BadRequestData(str(exc), code=exc.code, line=exc.line) from None
    broker.tenant_written(_tenant(request))
    body = {
        "network": report.network,
        "counts": report.counts,
        "zones": report.zones,
        "disconnected": report.disconnected,
    }
    return _json(body, 201, {"Location": f"{PREFIX}/networks/{name}"})


def _placement(crs: str | None, anchor: str | None, offset: str | None) -> Placement:
    if bool(crs) == bool(anchor):
        raise ValueError("give either crs (EPSG:xxxx) or anchor (lon,lat)")
    if crs:
        return Placement.from_crs(crs)
    lon, lat = _pair(anchor or "", "anchor")
    return Placement.anchored(lon, lat, _pair(offset, "offset") if offset else (0.0, 0.0))


def _pair(text: str, what: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{what} must be two numbers separated by a comma, not {text!r}") from None
    return a, b


async def get_network(request: Request) -> Response:
    """GET /networks/{network}: counts, zones and the network entity."""
    bodies = await twin.load_network(_broker(request).store, _tenant(request), _network(request))
    counts: dict[str, int] = {}
    zones: dict[str, int] = {}
    for body in bodies:
        counts[body["type"]] = counts.get(body["type"], 0) + 1
        if body["type"] == "Junction" and "tag" in body:
            zone = body["tag"]["value"]
            zones[zone] = zones.get(zone, 0) + 1
    network = next(b for b in bodies if b["type"] == "WaterNetwork")
    summary = {
        k: v
        for k, v in network.items()
        if k not in ("epanetOptions", "epanetControls", "epanetSources")
    }
    return _json({"network": summary, "counts": counts, "zones": zones})


async def export_network(request: Request) -> Response:
    """GET /networks/{network}/export[?units=LPS]: the network as an .inp file."""
    net = _network(request)
    bodies = await twin.load_network(_broker(request).store, _tenant(request), net)
    units = request.query_params.get("units")
    try:
        wn = model_from_entities([b for b in bodies if b["type"] != "Device"])
        text = inp_text(wn, units)
    except (ValueError, KeyError) as exc:
        raise BadRequestData(f"network {net!r} cannot be exported: {exc}") from None
    return Response(
        text,
        media_type="text/plain",
        headers={"Content-Disposition": f'attachment; filename="{net}.inp"'},
    )


async def add_sensor(request: Request) -> Response:
    """POST /networks/{network}/sensors: {element, property, category}."""
    body = await _object(request)
    for key in ("element", "property"):
        if not isinstance(body.get(key), str):
            raise BadRequestData(f"a sensor needs '{key}' (a string)")
    device = await twin.attach_sensor(
        _broker(request).store,
        _tenant(request),
        _network(request),
        body["element"],
        body["property"],
        str(body.get("category", "sensor")),
    )
    return _json({"id": device}, 201, {"Location": f"/ngsi-ld/v1/entities/{device}"})


async def network_state(request: Request) -> Response:
    """GET /networks/{network}/state: measured beside simulated values."""
    bodies = await twin.load_network(_broker(request).store, _tenant(request), _network(request))
    return _json(twin.compare_state(bodies))


# -- runs --------------------------------------------------------------------------------


async def simulate(request: Request) -> Response:
    """POST /networks/{network}/simulations: a run written back as simulated state."""
    broker = _broker(request)
    tenant, net = _tenant(request), _network(request)
    options = await _object(request)
    try:
        parse_scenario({"kind": "baseline", **{k: v for k, v in options.items() if k != "start"}})
    except ScenarioError as exc:
        raise BadRequestData(str(exc)) from None
    await twin.load_network(broker.store, tenant, net)
    job = _jobs(request).submit(
        tenant, "simulation", net, water_jobs.simulate(broker.store, tenant, net, options)
    )
    return _accepted(job)


async def post_scenarios(request: Request) -> Response:
    """POST /networks/{network}/scenarios: one scenario object or an array of them."""
    broker = _broker(request)
    tenant, net = _tenant(request), _network(request)
    body = await read_json(request, broker)
    specs = body if isinstance(body, list) else [body]
    if not specs or len(specs) > MAX_SCENARIOS:
        raise BadRequestData(f"send 1 to {MAX_SCENARIOS} scenarios")
    ids = await water_jobs.create_scenarios(broker.store, tenant, net, specs)
    runner = _jobs(request)
    job = runner.submit(
        tenant,
        "scenarios",
        net,
        water_jobs.run_scenarios(broker.store, tenant, net, ids, specs, runner.scheduler),
    )
    return _accepted(job, {"scenarios": ids})


async def list_scenarios(request: Request) -> Response:
    """GET /networks/{network}/scenarios: every scenario with its status and KPIs."""
    broker = _broker(request)
    tenant, net = _tenant(request), _network(request)
    rows = await _scenario_rows(broker, tenant, net, None)
    return _json(rows)


async def _scenario_rows(
    broker: Broker, tenant: str, network: str, ids: list[str] | None
) -> list[dict[str, Any]]:
    from cityverse.store.base import EntityFilter

    ctx = await twin.water_context()
    flt = EntityFilter(
        type_names=frozenset({ctx.expand("SimulationScenario")}),
        ids=frozenset(ids) if ids is not None else None,
    )
    page = await broker.store.query(tenant, flt, limit=None)
    rows = []
    for entity in page.entities:
        scenario = render_entity(entity, ctx, fmt="keyValues")
        if ids is None and scenario.get("hasInputNetwork") != network_id(network):
            continue
        row: dict[str, Any] = {
            "id": scenario["id"],
            "name": scenario.get("name"),
            "status": scenario.get("status"),
            "inputParameters": scenario.get("inputParameters"),
        }
        result_id = scenario.get("hasSimulationResult")
        if isinstance(result_id, str):
            stored = await broker.store.get(tenant, result_id)
            if stored is not None:
                result = render_entity(stored, ctx, fmt="keyValues")
                row["result"] = result_id
                row["outcome"] = result.get("outputParameters")
        rows.append(row)
    return rows


async def compare(request: Request) -> Response:
    """GET /compare?scenarios=id1,id2,...: the same KPIs side by side."""
    broker = _broker(request)
    raw = request.query_params.get("scenarios") or ""
    ids = [i for i in raw.split(",") if i]
    if len(ids) < 1:
        raise BadRequestData("name the scenarios to compare: ?scenarios=id1,id2")
    rows = await _scenario_rows(broker, _tenant(request), "", ids)
    found = {r["id"]: r for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ResourceNotFound(f"no scenario {missing[0]!r}", instance=missing[0])
    columns = []
    for scenario_id in ids:
        row = found[scenario_id]
        outcome = row.get("outcome") or {}
        columns.append(
            {
                "id": scenario_id,
                "name": row["name"],
                "status": row["status"],
                "kpis": outcome.get("kpis"),
                "error": outcome.get("error"),
            }
        )
    metrics: dict[str, dict[str, Any]] = {}
    for column in columns:
        kpis = column["kpis"] or {}
        for key, value in (kpis.get("network") or {}).items():
            metrics.setdefault(key, {})[column["id"]] = value
    return _json({"scenarios": columns, "network": metrics})


async def post_criticality(request: Request) -> Response:
    """POST /networks/{network}/criticality: rank every pipe by what its burst cuts off."""
    broker = _broker(request)
    tenant, net = _tenant(request), _network(request)
    options = await _object(request)
    at = options.get("at", 0)
    if not isinstance(at, int) or isinstance(at, bool) or at < 0:
        raise BadRequestData("at is a time in seconds (a non-negative integer)")
    await twin.load_network(broker.store, tenant, net)
    runner = _jobs(request)
    job = runner.submit(
        tenant,
        "criticality",
        net,
        water_jobs.rank_pipes(broker.store, tenant, net, at, runner.scheduler),
    )
    return _accepted(job)


async def get_job(request: Request) -> Response:
    """GET /jobs/{job}: the job's status, result or error."""
    job = _jobs(request).get(request.path_params["job"])
    if job.tenant != _tenant(request):
        raise ResourceNotFound(f"no water job {job.id!r}", instance=job.id)
    return _json(job.render())


routes = [
    Route(PREFIX + "/networks", list_networks, methods=["GET"]),
    Route(PREFIX + "/networks", import_network, methods=["POST"]),
    Route(PREFIX + "/networks/{network}", get_network, methods=["GET"]),
    Route(PREFIX + "/networks/{network}/export", export_network, methods=["GET"]),
    Route(PREFIX + "/networks/{network}/sensors", add_sensor, methods=["POST"]),
    Route(PREFIX + "/networks/{network}/state", network_state, methods=["GET"]),
    Route(PREFIX + "/networks/{network}/simulations", simulate, methods=["POST"]),
    Route(PREFIX + "/networks/{network}/scenarios", post_scenarios, methods=["POST"]),
    Route(PREFIX + "/networks/{network}/scenarios", list_scenarios, methods=["GET"]),
    Route(PREFIX + "/networks/{network}/criticality", post_criticality, methods=["POST"]),
    Route(PREFIX + "/compare", compare, methods=["GET"]),
    Route(PREFIX + "/jobs/{job}", get_job, methods=["GET"]),
]
