"""Demand forecasts in the twin: DMA inflow history in, ``WaterDemandForecast`` entities out.

A zone's inflow is what its inlets meter (the links joining it to another zone, a tank or
a reservoir, signed so that water entering counts positive): the hourly means of the
measured ``flow`` (the default instance, not the simulated one) of each inlet, from the
store's history. ``run`` forecasts every zone of a network and writes one entity per
zone; ``DemandForecasts`` is the app service that does it again every day::

    written = await run(store, "", "ltown")                 # start: the next full hour
    entity_id("ltown", "DMA-1")  # urn:ngsi-ld:WaterDemandForecast:ltown:DMA-1
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
import pandas as pd

from cityverse.core.entity import format_utc, iso_now, parse_entity, render_entity
from cityverse.core.errors import OperationNotSupported
from cityverse.core.model import Entity
from cityverse.core.tasks import cancel_and_wait
from cityverse.store.base import Change, EntityFilter, EntityStore
from cityverse.store.temporal import Period, TemporalStore, TimeWindow
from cityverse.twins.water.analyse import Topology
from cityverse.twins.water.calendar import MOROCCO, Calendar
from cityverse.twins.water.engine import Engine
from cityverse.twins.water.forecast import HORIZON, Forecast, ZoneForecast, forecast
from cityverse.twins.water.kpis import Layout
from cityverse.twins.water.model import network_id
from cityverse.twins.water.twin import list_networks, open_network, water_context

log = logging.getLogger("cityverse.water")
TYPE = "WaterDemandForecast"
HISTORY_DAYS = 800
"""How much inflow history a forecast reads: what the model can use."""
HOUR_MS = 3_600_000
METHOD = (
    "LightGBM over the network's zones, direct multi-horizon, blended with the "
    "same-kind-of-day profile; split-conformal intervals"
)


def entity_id(network: str, zone: str) -> str:
    """The id of a zone's forecast entity."""
    return f"urn:ngsi-ld:{TYPE}:{network}:{zone}"


def _inlets(inp: str, zones: dict[str, str], links: dict[str, str]) -> dict[str, list[Any]]:
    """Zone -> [(link entity id, +1 or -1)]: the engine knows which way each link runs."""
    with Engine.from_text(inp) as engine:
        topo = Topology.of(engine)
    layout = Layout.of(topo, zones)
    return {
        zone: [
            (links[topo.link_ids[int(link)]], float(sign))
            for link, sign in zip(found, signs, strict=True)
        ]
        for zone, (found, signs) in layout.inlets.items()
    }


async def zone_inlets(store: EntityStore, tenant: str, network: str) -> dict[str, list[Any]]:
    """Each zone of ``network`` with its inlet links and their signs."""
    net = await open_network(store, tenant, network)
    return await asyncio.to_thread(_inlets, net.inp, net.zones, net.link_entities)


async def read_inflows(
    store: EntityStore,
    tenant: str,
    inlets: dict[str, list[Any]],
    start: datetime,
    days: int = HISTORY_DAYS,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Hourly inflow (L/s, UTC) of each zone before ``start``, and for the zones without
    one, why (an inlet that meters nothing)."""
    if not hasattr(store, "aggregate"):
        raise OperationNotSupported(
            f"the {type(store).__name__} store keeps no history: nothing to forecast from"
        )
    history = cast(TemporalStore, store)
    ctx = await water_context()
    flow = ctx.expand("flow")
    end = int(start.timestamp() * 1000)
    window = TimeWindow("observedAt", start=end - days * 24 * HOUR_MS, end=end)
    index = pd.date_range(
        pd.Timestamp(window.start, unit="ms", tz="UTC"), periods=days * 24, freq="h"
    )
    columns: dict[str, pd.Series] = {}
    missing: dict[str, str] = {}
    for zone, links in sorted(inlets.items()):
        if not links:
            missing[zone] = "the zone has no inlet to meter its inflow"
            continue
        total = pd.Series(0.0, index=index)
        for link, sign in links:
            buckets = await history.aggregate(
                tenant, link, frozenset({flow}), window, Period(millis=HOUR_MS), frozenset({"avg"})
            )
            measured = [b for b in buckets.get(flow, []) if b.dataset_id is None]
            if not measured:
                missing[zone] = f"inlet {link} has no measured flow history"
                break
            series = pd.Series(
                [float(b.values.get("avg", np.nan)) for b in measured],
                index=pd.to_datetime([b.start for b in measured], unit="ms", utc=True),
            )
            # Adding NaN keeps an hour missing when any inlet did not report in it.
            total = total + sign * series.reindex(index)
        else:
            columns[zone] = total
    return pd.DataFrame(columns, index=index), missing


def forecast_body(
    network: str, result: ZoneForecast, made: Forecast, created: str
) -> dict[str, Any]:
    """A zone's forecast as a normalized NGSI-LD entity (WATER_CONTEXT terms)."""
    start = result.start.to_pydatetime()
    end = start + timedelta(hours=made.horizon)
    body: dict[str, Any] = {
        "id": entity_id(network, result.zone),
        "type": TYPE,
        "refZone": {"type": "Property", "value": result.zone},
        "refWaterNetwork": {"type": "Relationship", "object": network_id(network)},
        "dateCreated": _datetime(created),
        "validFrom": _datetime(format_utc(start)),
        "validTo": _datetime(format_utc(end)),
        "status": {"type": "Property", "value": "available" if result.available else "unavailable"},
        "method": {"type": "Property", "value": METHOD},
    }
    if result.cleaning is not None:
        body["dataQuality"] = {"type": "JsonProperty", "json": result.cleaning.render()}
    if result.available:
        body["inflowForecast"] = {
            "type": "JsonProperty",
            "json": {
                "start": format_utc(start),
                "step": "PT1H",
                "unitCode": "G51",
                "values": result.values,
                "lower": result.lower,
                "upper": result.upper,
                "intervalLevel": made.level,
                "weather": made.weather,
            },
        }
    else:
        body["unavailableReason"] = {"type": "Property", "value": result.reason}
    return body


def _datetime(text: str) -> dict[str, Any]:
    return {"type": "Property", "value": {"@type": "DateTime", "@value": text}}


def next_hour(moment: datetime | None = None) -> datetime:
    """The first full hour after ``moment`` (default now), in UTC."""
    now = moment or datetime.now(UTC)
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


async def run(
    store: EntityStore,
    tenant: str,
    network: str,
    start: datetime | None = None,
    *,
    calendar: Calendar = MOROCCO,
    horizon: int = HORIZON,
    level: float = 0.9,
) -> list[str]:
    """Forecast every zone of ``network`` from ``start`` and write the entities; their ids."""
    start = start or next_hour()
    inlets = await zone_inlets(store, tenant, network)
    inflows, missing = await read_inflows(store, tenant, inlets, start)
    made = await asyncio.to_thread(
        forecast,
        inflows,
        pd.Timestamp(start),
        calendar=calendar,
        horizon=horizon,
        level=level,
    )
    for zone, reason in missing.items():
        made.zones[zone] = ZoneForecast(zone=zone, start=made.start, reason=reason)
    ctx = await water_context()
    created = iso_now()
    entities = [
        parse_entity(forecast_body(network, result, made, created), ctx, now=created)
        for result in made.zones.values()
    ]
    await store.mutate(tenant, [Change(e["id"], _replace(e)) for e in entities])
    return [e["id"] for e in entities]


def _replace(entity: Entity) -> Any:
    return lambda current: entity


async def read(
    store: EntityStore, tenant: str, network: str, zone: str | None = None
) -> list[dict[str, Any]]:
    """The stored forecasts of a network (one zone's with ``zone``), normalized."""
    ctx = await water_context()
    flt = EntityFilter(type_names=frozenset({ctx.expand(TYPE)}))
    page = await store.query(tenant, flt, limit=None)
    prefix = f"urn:ngsi-ld:{TYPE}:{network}:"
    bodies = [render_entity(e, ctx) for e in page.entities if e["id"].startswith(prefix)]
    if zone is not None:
        bodies = [b for b in bodies if b["id"] == entity_id(network, zone)]
    return sorted(bodies, key=lambda b: b["id"])


class DemandForecasts:
    """The app service that forecasts every network's zones again each ``every`` seconds.

    Nothing runs at start: the first round is one period later, in the background, so
    the app starts as fast without it. Tenants are those that asked for a forecast
    (``watch``) and the default one.
    """

    def __init__(self, store: EntityStore, every: float = 86_400.0) -> None:
        self.store = store
        self.every = every
        self.tenants: set[str] = {""}
        self.task: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()

    def watch(self, tenant: str) -> None:
        """Include ``tenant`` in the daily rounds."""
        self.tenants.add(tenant)

    async def start(self) -> None:
        """Schedule the rounds."""
        self.task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Cancel the rounds."""
        await cancel_and_wait([self.task], what="demand forecast")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.round()

    async def round(self) -> int:
        """Forecast every network of every watched tenant now; how many entities."""
        written = 0
        async with self.lock:
            for tenant in sorted(self.tenants):
                try:
                    networks = await list_networks(self.store, tenant)
                except Exception:
                    log.exception("demand forecasts: cannot list networks of %r", tenant)
                    continue
                for body in networks:
                    name = str(body["id"]).rsplit(":", 1)[-1]
                    try:
                        written += len(await run(self.store, tenant, name))
                    except Exception:
                        log.exception("demand forecast of %s failed", name)
        return written
