"""Background runs of the water twin: simulations, scenario batches, criticality.

``WaterJobs`` is an app ``Service``: a request submits a job and gets its id at once;
the job runs the engine off the event loop (a thread, or worker processes for batches)
and records its outcome in the twin as ``SimulationScenario``/``SimulationResult``
entities. Job status lives in memory; the entities are the durable record::

    job = jobs.submit(tenant, "scenarios", network, run_scenarios(store, tenant, ...))
    jobs.get(job.id).status      # accepted, running, succeeded, failed
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cityverse.broker.request import Broker
from cityverse.core.entity import iso_now, parse_entity
from cityverse.core.errors import BadRequestData, NgsiError, ResourceNotFound
from cityverse.core.model import Entity
from cityverse.core.tasks import cancel_and_wait
from cityverse.store.base import Change, EntityStore
from cityverse.twins.water.model import network_id
from cityverse.twins.water.scenarios import (
    ScenarioError,
    attempt,
    check,
    criticality,
    parse_scenario,
    run_batch,
)
from cityverse.twins.water.simulate import Simulator
from cityverse.twins.water.twin import day_start, open_network, water_context, write_state

log = logging.getLogger("cityverse.water")
MAX_JOBS = 1000


@dataclass(slots=True)
class Job:
    """One background run and what became of it."""

    id: str
    kind: str
    tenant: str
    network: str
    status: str = "accepted"
    created: str = field(default_factory=iso_now)
    started: str | None = None
    finished: str | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    task: asyncio.Task[Any] | None = None

    def render(self) -> dict[str, Any]:
        """The job as the API shows it."""
        body: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "network": self.network,
            "status": self.status,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }
        if self.result is not None:
            body["result"] = self.result
        if self.error is not None:
            body["error"] = self.error
        return body


class WaterJobs:
    """Runs water jobs one after another (the engine work is CPU-bound)."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.jobs: dict[str, Job] = {}
        self._gate = asyncio.Semaphore(1)

    @property
    def scheduler(self) -> str:
        """The Dask scheduler address batches go to (empty: local processes)."""
        return str(getattr(self.broker.settings, "dask_scheduler", "") or "")

    async def start(self) -> None:
        """Nothing to start: jobs begin when submitted."""
        self._gate = asyncio.Semaphore(1)

    async def stop(self) -> None:
        """Cancel the jobs still running."""
        await cancel_and_wait((j.task for j in self.jobs.values()), what="water job")

    def get(self, job_id: str) -> Job:
        """A job by id; ResourceNotFound if unknown."""
        job = self.jobs.get(job_id)
        if job is None:
            raise ResourceNotFound(f"no water job {job_id!r}", instance=job_id)
        return job

    def submit(self, tenant: str, kind: str, network: str, work: Coroutine[Any, Any, Any]) -> Job:
        """Start ``work`` in the background as a new job."""
        job = Job(uuid.uuid4().hex, kind, tenant, network)
        if len(self.jobs) >= MAX_JOBS:
            for old in [j for j in self.jobs.values() if j.finished][: MAX_JOBS // 10]:
                del self.jobs[old.id]
        self.jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, work))
        return job

    async def _run(self, job: Job, work: Coroutine[Any, Any, Any]) -> None:
        async with self._gate:
            job.status = "running"
            job.started = iso_now()
            try:
                job.result = await work
                job.status = "succeeded"
            except NgsiError as exc:
                job.status = "failed"
                job.error = exc.to_problem()
            except ScenarioError as exc:
                job.status = "failed"
                job.error = BadRequestData(str(exc)).to_problem()
            except Exception:
                log.exception("water job %s failed", job.id)
                job.status = "failed"
                job.error = NgsiError(
                    "the job met an unexpected error; it has been logged"
                ).to_problem()
            finally:
                job.finished = iso_now()


# -- the work ----------------------------------------------------------------------------


async def simulate(
    store: EntityStore, tenant: str, network: str, options: dict[str, Any]
) -> dict[str, Any]:
    """A baseline run written back as the twin's simulated state; its network KPIs."""
    start = options.pop("start", None)
    spec = {"kind": "baseline", **options}
    try:
        scenario = parse_scenario(spec)
    except ScenarioError as exc:
        raise BadRequestData(str(exc)) from None
    net = await open_network(store, tenant, network)
    clock = _parse_start(start)

    def work() -> tuple[Any, Any, Simulator]:
        sim = Simulator(net)
        results = sim.run(duration=scenario.duration, demand_model=scenario.demand_model)
        return results, sim.kpis(results, scenario.kpi), sim

    try:
        results, kpis, sim = await asyncio.to_thread(work)
    except Exception as exc:
        raise _engine_problem(exc) from None
    try:
        state = await write_state(store, tenant, net, sim.engine, results, start=clock)
    finally:
        sim.close()
    return {"state": state, "kpis": kpis, "warnings": results.warnings}


def _parse_start(start: Any) -> datetime:
    if start is None:
        return day_start()
    try:
        moment = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
    except ValueError:
        raise BadRequestData(f"start {start!r} is not an ISO 8601 date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _engine_problem(exc: Exception) -> NgsiError:
    from cityverse.twins.water.engine import EngineError, NotConverged

    if isinstance(exc, NotConverged):
        return BadRequestData(str(exc), time=exc.time, element=exc.element)
    if isinstance(exc, EngineError):
        return BadRequestData(str(exc), code=exc.code)
    raise exc


async def create_scenarios(
    store: EntityStore, tenant: str, network: str, specs: list[dict[str, Any]]
) -> list[str]:
    """Check the scenarios and record them as pending SimulationScenario entities."""
    for i, spec in enumerate(specs):
        try:
            parse_scenario(spec)
        except ScenarioError as exc:
            where = f"scenario {i + 1}: " if len(specs) > 1 else ""
            raise BadRequestData(f"{where}{exc}") from None
    net = await open_network(store, tenant, network)
    for i, spec in enumerate(specs):
        try:
            check(net, parse_scenario(spec))
        except ScenarioError as exc:
            where = f"scenario {i + 1}: " if len(specs) > 1 else ""
            raise BadRequestData(f"{where}{exc}") from None
    ctx = await water_context()
    now = iso_now()
    entities = []
    for spec in specs:
        sid = f"urn:ngsi-ld:SimulationScenario:{network}:{uuid.uuid4().hex[:12]}"
        body: dict[str, Any] = {
            "id": sid,
            "type": "SimulationScenario",
            "name": {"type": "Property", "value": str(spec.get("name") or spec["kind"])},
            "hasInputNetwork": {"type": "Relationship", "object": network_id(network)},
            "inputParameters": {"type": "Property", "value": spec},
            "status": {"type": "Property", "value": "pending"},
        }
        if spec.get("description"):
            body["description"] = {"type": "Property", "value": str(spec["description"])}
        for term, key, unit in (
            ("demandModel", "demandModel", None),
            ("duration", "duration", "SEC"),
        ):
            if spec.get(key) is not None:
                body[term] = {
                    "type": "Property",
                    "value": spec[key],
                    **({"unitCode": unit} if unit else {}),
                }
        entities.append(parse_entity(body, ctx, now=now))
    await store.mutate(tenant, [Change(e["id"], _create(e)) for e in entities])
    return [e["id"] for e in entities]


def _create(entity: Entity) -> Any:
    return lambda current: entity


async def run_scenarios(
    store: EntityStore,
    tenant: str,
    network: str,
    ids: list[str],
    specs: list[dict[str, Any]],
    scheduler: str = "",
) -> dict[str, Any]:
    """Run recorded scenarios and record a SimulationResult for each."""
    await _set_status(store, tenant, ids, "running")
    try:
        net = await open_network(store, tenant, network)
        if len(specs) == 1 and not scheduler:

            def one() -> list[dict[str, Any]]:
                sim = Simulator(net)
                try:
                    return [attempt(sim, specs[0])]
                finally:
                    sim.close()

            outcomes = await asyncio.to_thread(one)
        else:
            outcomes = await asyncio.to_thread(run_batch, net, specs, scheduler=scheduler)
    except BaseException:
        await _set_status(store, tenant, ids, "failed")
        raise
    results = await _record_results(store, tenant, network, ids, outcomes)
    failed = sum(1 for o in outcomes if o["status"] != "succeeded")
    return {"scenarios": ids, "results": results, "failed": failed}


async def _set_status(store: EntityStore, tenant: str, ids: list[str], status: str) -> None:
    ctx = await water_context()
    name = ctx.expand("status")
    now = iso_now()

    def change(current: Entity | None) -> Entity | None:
        if current is None:
            return None
        attrs = dict(current["attrs"])
        attrs[name] = [{"type": "Property", "value": status, "createdAt": now, "modifiedAt": now}]
        return {**current, "attrs": attrs, "modifiedAt": now}

    await store.mutate(tenant, [Change(i, change) for i in ids])


async def _record_results(
    store: EntityStore,
    tenant: str,
    network: str,
    ids: list[str],
    outcomes: list[dict[str, Any]],
) -> list[str]:
    ctx = await water_context()
    now = iso_now()
    changes = []
    result_ids = []
    for sid, outcome in zip(ids, outcomes, strict=True):
        rid = sid.replace(":SimulationScenario:", ":SimulationResult:", 1)
        result_ids.append(rid)
        body = {
            "id": rid,
            "type": "SimulationResult",
            "refSimulationScenario": {"type": "Relationship", "object": sid},
            "hasInputNetwork": {"type": "Relationship", "object": network_id(network)},
            "status": {"type": "Property", "value": outcome["status"]},
            "outputParameters": {"type": "Property", "value": outcome},
        }
        result = parse_entity(body, ctx, now=now)
        changes.append(Change(rid, _create(result)))
        patch = {
            ctx.expand("status"): [{"type": "Property", "value": outcome["status"]}],
            ctx.expand("hasSimulationResult"): [{"type": "Relationship", "object": rid}],
        }
        changes.append(Change(sid, _patched(patch, now)))
    await store.mutate(tenant, changes)
    return result_ids


def _patched(patch: dict[str, Any], now: str) -> Any:
    def apply(current: Entity | None) -> Entity | None:
        if current is None:
            return None
        attrs = dict(current["attrs"])
        for name, instances in patch.items():
            attrs[name] = [{**i, "createdAt": now, "modifiedAt": now} for i in instances]
        return {**current, "attrs": attrs, "modifiedAt": now}

    return apply


async def rank_pipes(
    store: EntityStore, tenant: str, network: str, at: int, scheduler: str = ""
) -> dict[str, Any]:
    """Criticality ranking of every pipe of a network (a burst on each, one period)."""
    net = await open_network(store, tenant, network)
    ranking = await asyncio.to_thread(criticality, net, at=at, scheduler=scheduler)
    return {"at": at, "pipes": len(ranking), "ranking": ranking}
