"""Where a detected leak is: candidate pipes ranked by how well a leak there explains
the measured pressure residuals, and a search area on the map.

The hydraulic model gives each candidate node's *signature*: how every pressure sensor
(and flow sensor) changes per L/s of leakage at that node, one steady-state solve per
node on the open engine::

    sens = sensitivity(sim, sensors=["n1", "n4"], flows=["p227"], at=3 * 3600)
    ranked = rank_nodes(mean_residual, cov, sens.signatures(coef))   # posterior per node
    pipes = rank_pipes(sim, ranked)                                   # pipes, best first

A measured residual vector ``r`` (pressure minus its learned normal, averaged over night
hours to beat the noise) is compared with every signature ``a`` through the generalised
least-squares misfit ``J = min_{q>=0} (r - q a)' W (r - q a)`` with ``W`` the inverse
residual covariance; ``exp(-(J - Jmin)/2)`` normalised over the candidates is each one's
score, the uncertainty made explicit. ``snapshot_scores`` is the textbook one-snapshot
correlation method, kept as the baseline the bench compares against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from cityverse.twins.water import engine as en
from cityverse.twins.water.simulate import Simulator

DEFAULT_LEAK = 3.0
"""L/s of the trial leak used to compute signatures (about 11 m³/h)."""
NIGHT_HOUR = 3
"""Hour of day (model clock) at which night signatures are computed."""


@dataclass(slots=True)
class Sensitivity:
    """Sensor responses to a leak at each candidate node, per L/s of leakage."""

    sensors: list[str]
    flows: list[str]
    candidates: list[str]
    dp: NDArray[np.float64]
    """(sensors, candidates): pressure change, m per L/s (negative: a drop)."""
    dq: NDArray[np.float64]
    """(flows, candidates): flow change, L/s per L/s."""
    at: int

    def signatures(self, coef: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
        """Signatures in the residual space of a normal model that regresses pressures
        on flows with ``coef`` (sensors x flows): what a leak leaves once the flow
        regression has absorbed the extra inflow it causes. Columns of ``coef`` past the
        flows (tank levels) are regressors a new leak does not move at once."""
        if coef is None or not len(self.flows):
            return self.dp
        return self.dp - coef[:, : len(self.flows)] @ self.dq


def sensitivity(
    sim: Simulator,
    sensors: Sequence[str],
    flows: Sequence[str] = (),
    *,
    at: int = NIGHT_HOUR * 3600,
    leak: float = DEFAULT_LEAK,
    candidates: Sequence[str] | None = None,
) -> Sensitivity:
    """One steady-state solve per candidate junction with an emitter leaking about
    ``leak`` L/s there; KeyError names an unknown sensor."""
    engine = sim.engine
    s_idx = np.array([sim.node(s) for s in sensors], dtype=np.int64)
    f_idx = np.array([sim.link(f) for f in flows], dtype=np.int64)
    if candidates is None:
        cand = np.flatnonzero(engine.node_types == en.NODE_JUNCTION)
    else:
        cand = np.array([sim.node(c) for c in candidates], dtype=np.int64)
    base = engine.solve(at)
    p0 = base.pressure[0]
    f0 = base.flow[0][f_idx]
    emitters = engine.node_values(en.EMITTER)
    dp = np.zeros((len(s_idx), len(cand)))
    dq = np.zeros((len(f_idx), len(cand)))
    for col, node in enumerate(cand):
        original = float(emitters[node])
        # An emitter leaks c * p^0.5: pick c so that it leaks about ``leak`` L/s.
        coeff = leak / math.sqrt(max(float(p0[node]), 1.0))
        try:
            engine.set_node(int(node), en.EMITTER, original + coeff)
            run = engine.solve(at)
        except (en.EngineError, en.NotConverged):
            continue  # a node the solver cannot leak at keeps a zero signature
        finally:
            engine.set_node(int(node), en.EMITTER, original)
        q = float(run.leakage[0, node]) - float(base.leakage[0, node])
        if q <= 1e-6:
            continue
        dp[:, col] = (run.pressure[0][s_idx] - p0[s_idx]) / q
        dq[:, col] = (run.flow[0][f_idx] - f0) / q
    engine.solve(at)  # leave the solver's state on the unleaked network
    names = [engine.node_ids[i] for i in cand]
    return Sensitivity(list(sensors), list(flows), names, dp, dq, at)


# -- scoring -------------------------------------------------------------------------------


def _weights(cov: NDArray[np.float64]) -> NDArray[np.float64]:
    scale = float(np.trace(cov)) / max(len(cov), 1) or 1.0
    # A ridge keeps W finite when sensors are nearly collinear.
    return np.asarray(np.linalg.inv(cov + 1e-6 * scale * np.eye(len(cov))))


def misfit(
    residual: NDArray[np.float64],
    cov: NDArray[np.float64],
    sig: NDArray[np.float64],
    *,
    common: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per candidate (columns of ``sig``): the generalised least-squares misfit ``J``
    and the leak size ``q >= 0`` (L/s) that minimises it.

    ``common`` also lets an unknown offset shared by every sensor explain the residual
    (a tank drawn lower or a source head changed by the leak itself, which moves every
    pressure alike), so that only the leak's shape is matched.
    """
    w = _weights(cov)
    if common:
        ones = np.ones((len(residual), 1))
        # The W-orthogonal projection that removes the shared offset.
        proj = np.eye(len(residual)) - ones @ np.linalg.solve(ones.T @ w @ ones, ones.T @ w)
        residual = proj @ residual
        sig = proj @ sig
    wr = w @ residual
    num = sig.T @ wr
    den = np.einsum("ik,ij,jk->k", sig, w, sig)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(den > 0, np.maximum(num, 0.0) / den, 0.0)
    j = float(residual @ wr) - 2 * q * num + q * q * den
    return j, q


def posterior(j: NDArray[np.float64]) -> NDArray[np.float64]:
    """Scores summing to one from misfits: exp(-(J - Jmin)/2), normalised."""
    finite = np.where(np.isfinite(j), j, np.inf)
    w = np.exp(-(finite - finite.min()) / 2)
    return np.asarray(w / w.sum())


def snapshot_scores(residual: NDArray[np.float64], sig: NDArray[np.float64]) -> NDArray[np.float64]:
    """The one-snapshot correlation method: cosine of each signature with the residual
    (model minus measured pressure at one time step); higher is better."""
    r = residual - residual.mean()
    s = sig - sig.mean(axis=0)
    den = np.linalg.norm(s, axis=0) * np.linalg.norm(r)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, (s.T @ r) / den, -1.0)
    # A leak lowers pressure: the signature (a drop) correlates with the measured drop.
    return np.asarray(out)


# -- pipes and distances ------------------------------------------------------------------


@dataclass(slots=True)
class Graph:
    """Pipe network distances (metres along the pipes) between nodes."""

    node_ids: list[str]
    link_ids: list[str]
    ends: NDArray[np.int64]
    length: NDArray[np.float64]
    pipes: NDArray[np.int64]

    @classmethod
    def of(cls, sim: Simulator) -> Graph:
        """The graph of an open simulator's network (pumps and valves count 1 m)."""
        engine = sim.engine
        length = np.maximum(engine.link_values(en.LENGTH), 1.0)
        is_pipe = np.array([sim.topo.is_pipe(i) for i in range(len(engine.link_ids))])
        length = np.where(is_pipe, length, 1.0)
        return cls(
            list(engine.node_ids),
            list(engine.link_ids),
            engine.link_nodes,
            length,
            np.flatnonzero(is_pipe),
        )

    def node_distances(self, sources: Sequence[int]) -> NDArray[np.float64]:
        """(len(sources), nodes) shortest distances from each source node."""
        n = len(self.node_ids)
        a, b = self.ends[:, 0], self.ends[:, 1]
        graph = coo_matrix((self.length, (a, b)), shape=(n, n)).tocsr()
        return np.asarray(dijkstra(graph, directed=False, indices=list(sources)))

    def pipe_to_nodes(self, link: int) -> NDArray[np.float64]:
        """Distance from the midpoint of ``link`` to every node."""
        a, b = (int(x) for x in self.ends[link])
        d = self.node_distances([a, b])
        half = self.length[link] / 2
        return np.asarray(np.minimum(d[0], d[1]) + half)

    def pipe_to_pipe(self, link: int, others: Sequence[int]) -> NDArray[np.float64]:
        """Distance from the midpoint of ``link`` to the midpoints of ``others``."""
        to_nodes = self.pipe_to_nodes(link)
        out = np.empty(len(others))
        for i, other in enumerate(others):
            if other == link:
                out[i] = 0.0
                continue
            a, b = (int(x) for x in self.ends[other])
            out[i] = min(to_nodes[a], to_nodes[b]) + self.length[other] / 2
        return out


@dataclass(slots=True)
class RankedPipe:
    """A candidate pipe: its score (share of the posterior) and the estimated leak."""

    pipe: str
    score: float
    leak: float
    """Leak size (L/s) that best explains the residuals from this pipe's ends."""


def rank_pipes(
    graph: Graph,
    candidates: Sequence[str],
    node_score: NDArray[np.float64],
    node_leak: NDArray[np.float64],
    *,
    top: int = 20,
) -> list[RankedPipe]:
    """Pipes ranked by the mean score of their end nodes, best first, the first being
    the pipe that minimises the expected network distance to the leak."""
    index = {name: i for i, name in enumerate(graph.node_ids)}
    score = np.zeros(len(graph.node_ids))
    leak = np.zeros(len(graph.node_ids))
    for name, s, q in zip(candidates, node_score, node_leak, strict=True):
        score[index[name]] = s
        leak[index[name]] = q
    ends = graph.ends[graph.pipes]
    pipe_score = (score[ends[:, 0]] + score[ends[:, 1]]) / 2
    total = pipe_score.sum()
    if total <= 0:
        return []
    pipe_score = pipe_score / total
    order = np.argsort(-pipe_score, kind="stable")[: max(top, 1) * 3]
    # The pipe minimising the expected distance (under the node scores) is the best single
    # guess; the others follow by score.
    mass = np.flatnonzero(score > score.max() * 1e-3)
    if len(mass):
        expected = [
            float(graph.pipe_to_nodes(int(graph.pipes[p]))[mass] @ score[mass]) for p in order[:30]
        ]
        best = int(order[int(np.argmin(expected))])
        order = np.concatenate([[best], order[order != best]])
    out = []
    for p in order[:top]:
        link = int(graph.pipes[p])
        a, b = (int(x) for x in graph.ends[link])
        q = max(leak[a], leak[b])
        out.append(RankedPipe(graph.link_ids[link], float(pipe_score[p]), float(q)))
    return out


def search_area(
    coordinates: Sequence[Sequence[tuple[float, float]]], buffer_m: float = 50.0
) -> dict[str, Any]:
    """A GeoJSON Polygon around WGS84 lines: convex hull plus ``buffer_m`` metres."""
    from shapely.geometry import MultiPoint

    points = [p for line in coordinates for p in line]
    if not points:
        raise ValueError("no geometry to draw a search area around")
    lon0 = sum(p[0] for p in points) / len(points)
    lat0 = sum(p[1] for p in points) / len(points)
    # Local equirectangular metres: exact enough over a few kilometres.
    kx = 111_320.0 * math.cos(math.radians(lat0))
    ky = 110_540.0
    local = MultiPoint([((lo - lon0) * kx, (la - lat0) * ky) for lo, la in points])
    hull = local.convex_hull.buffer(buffer_m, quad_segs=4)
    ring = [(round(lon0 + x / kx, 7), round(lat0 + y / ky, 7)) for x, y in hull.exterior.coords]
    return {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}
