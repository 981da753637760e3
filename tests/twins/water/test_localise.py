"""Leak localisation from model sensitivities, the search area, and sensor placement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cityverse.twins.water import engine as en
from cityverse.twins.water import localise as loc
from cityverse.twins.water.placement import greedy, place_sensors
from tests.twins.water.conftest import LTOWN, NET1
from tests.twins.water.helpers import simulator_of

LTOWN_SENSORS = (
    [f"n{i}" for i in (1, 4, 31, 54, 105, 114, 163, 188, 215, 229, 288, 296, 332)]
    + [f"n{i}" for i in (342, 410, 415, 429, 458, 469, 495, 506, 516, 519, 549, 613, 636, 644, 679)]
    + ["n722"]
)
"""29 of BattLeDIM's 33 L-Town pressure sensors."""


def _leak_residual(sim: loc.Simulator, sensors: list[str], node: str, flow: float) -> np.ndarray:
    """Measured drop of a real leak (an emitter leaking ``flow`` L/s) at ``node``, solved
    by the engine: pressure with the leak minus without."""
    engine = sim.engine
    at = loc.NIGHT_HOUR * 3600
    base = engine.solve(at).pressure[0]
    k = sim.node(node)
    engine.set_node(k, en.EMITTER, flow / math.sqrt(base[k]))
    try:
        leaked = engine.solve(at).pressure[0]
    finally:
        engine.set_node(k, en.EMITTER, 0.0)
    idx = [sim.node(s) for s in sensors]
    return np.asarray(leaked[idx] - base[idx])


@pytest.mark.parametrize(
    "network,sensors,node,near",
    [
        (NET1, ["10", "12", "21", "23", "32"], "22", 1610.0),  # Net1's pipes are a mile long
        (LTOWN, LTOWN_SENSORS, "n370", 300.0),
        (LTOWN, LTOWN_SENSORS, "n650", 300.0),
    ],
)
def test_noise_free_leak_ranks_the_true_pipe_in_the_top_candidates(
    network: object, sensors: list[str], node: str, near: float
) -> None:
    sim = simulator_of(network)
    try:
        sens = loc.sensitivity(sim, sensors)
        residual = _leak_residual(sim, sensors, node, loc.DEFAULT_LEAK)
        cov = np.eye(len(sensors)) * 1e-6
        j, q = loc.misfit(residual, cov, sens.dp)
        post = loc.posterior(j)
        assert sens.candidates[int(np.argmax(post))] == node
        assert q[sens.candidates.index(node)] == pytest.approx(loc.DEFAULT_LEAK, rel=0.1)
        graph = loc.Graph.of(sim)
        ranked = loc.rank_pipes(graph, sens.candidates, post, q, top=5)
        k = sim.node(node)
        touching = {graph.link_ids[i] for i, (a, b) in enumerate(graph.ends) if k in (a, b)}
        assert touching & {p.pipe for p in ranked[:3]}
        assert sum(p.score for p in ranked) <= 1.0 + 1e-9
        # A leak twice the trial size: the response is not linear, the truth stays near.
        bigger = _leak_residual(sim, sensors, node, 2 * loc.DEFAULT_LEAK)
        j, q = loc.misfit(bigger, cov, sens.dp)
        best = loc.rank_pipes(graph, sens.candidates, loc.posterior(j), q)[0]
        assert graph.pipe_to_nodes(graph.link_ids.index(best.pipe))[k] < near
    finally:
        sim.close()


def test_noise_spreads_the_scores_and_keeps_the_truth_near() -> None:
    sim = simulator_of(LTOWN)
    try:
        sens = loc.sensitivity(sim, LTOWN_SENSORS)
        residual = _leak_residual(sim, LTOWN_SENSORS, "n370", 3.3)
        rng = np.random.default_rng(0)
        sigma = 0.05 / math.sqrt(48)  # 5 cm sensors averaged over four night hours
        noisy = residual + rng.normal(0, sigma, len(residual))
        j, q = loc.misfit(noisy, np.eye(len(residual)) * sigma**2, sens.dp)
        post = loc.posterior(j)
        assert post.max() < 0.99  # the uncertainty shows
        graph = loc.Graph.of(sim)
        ranked = loc.rank_pipes(graph, sens.candidates, post, q)
        truth = graph.pipe_to_nodes(graph.link_ids.index(ranked[0].pipe))[sim.node("n370")]
        assert truth < 300
    finally:
        sim.close()


def test_snapshot_baseline_finds_a_noise_free_leak() -> None:
    sim = simulator_of(NET1)
    try:
        sensors = ["10", "12", "21", "23", "32"]
        sens = loc.sensitivity(sim, sensors)
        drop = -_leak_residual(sim, sensors, "22", 3.0)
        scores = loc.snapshot_scores(drop, -sens.dp)
        assert sens.candidates[int(np.argmax(scores))] == "22"
    finally:
        sim.close()


def test_graph_distances_follow_the_pipes() -> None:
    sim = simulator_of(NET1)
    try:
        graph = loc.Graph.of(sim)
        p10 = graph.link_ids.index("10")
        assert graph.pipe_to_pipe(p10, [p10])[0] == 0.0
        # Net1 pipes 11 (11-12) and 10 (10-11): the midpoints are half of each apart.
        p11 = graph.link_ids.index("11")
        half = (graph.length[p10] + graph.length[p11]) / 2
        assert graph.pipe_to_pipe(p10, [p11])[0] == pytest.approx(half)
    finally:
        sim.close()


def test_search_area_is_a_closed_polygon_around_the_pipes() -> None:
    from shapely.geometry import LineString, shape

    lines = [[(-2.93, 35.17), (-2.929, 35.171)], [(-2.929, 35.171), (-2.928, 35.171)]]
    area = loc.search_area(lines, buffer_m=50)
    assert area["type"] == "Polygon"
    ring = area["coordinates"][0]
    assert ring[0] == ring[-1]
    polygon = shape(area)
    for line in lines:
        assert polygon.contains(LineString(line))
    with pytest.raises(ValueError):
        loc.search_area([])


def test_greedy_placement_separates_pairs() -> None:
    # Three sensors, leaks 0 and 1 told apart only by sensor 2.
    sens = np.array([[1.0, 1.0, 0.0], [0.5, 0.5, 0.5], [1.0, 0.0, 0.0]])
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    assert greedy(sens, pairs, 1, 0.1)[0] == 0 or greedy(sens, pairs, 2, 0.1)[1] == 2
    chosen = greedy(sens, pairs, 2, 0.1)
    assert 2 in chosen
    assert greedy(sens, pairs, 3, 0.1, fixed=[1])[0] == 1


def test_place_sensors_on_ltown_keeps_existing_and_spreads() -> None:
    sim = simulator_of(LTOWN)
    try:
        chosen = place_sensors(sim, 10, existing=["n1"], sample=120)
        assert len(chosen) == len(set(chosen)) == 10
        assert chosen[0] == "n1"
        graph = loc.Graph.of(sim)
        idx = [sim.node(c) for c in chosen]
        d = graph.node_distances(idx)[:, idx]
        assert np.median(d[np.triu_indices(10, 1)]) > 500  # not clustered
        with pytest.raises(ValueError, match="below"):
            place_sensors(sim, 1, existing=["n1", "n4"])
    finally:
        sim.close()
