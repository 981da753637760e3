"""Where to put N pressure sensors so that leaks can be told apart.

Greedy on the sensitivity matrix: every junction is a possible sensor and a possible
leak; a pair of leaks more than ``separation`` metres apart is *distinguished* once the
chosen sensors see their signatures differ by more than the noise ``sigma``. Each step
adds the sensor that distinguishes the most pairs (counted softly, min(1, d²/sigma²))::

    chosen = place_sensors(sim, budget=29)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from cityverse.twins.water import engine as en
from cityverse.twins.water.localise import Graph, sensitivity
from cityverse.twins.water.simulate import Simulator


def greedy(
    sens: NDArray[np.float64],
    pairs: NDArray[np.int64],
    budget: int,
    sigma: float,
    fixed: Sequence[int] = (),
) -> list[int]:
    """Rows of ``sens`` (candidate sensors x leaks) chosen greedily to separate ``pairs``
    (leak column pairs); ``fixed`` rows are kept and counted first."""
    d2 = np.zeros(len(pairs))
    diff = sens[:, pairs[:, 0]] - sens[:, pairs[:, 1]]
    diff2 = diff * diff / (sigma * sigma)
    chosen = list(fixed)
    for row in chosen:
        d2 += diff2[row]
    available = np.ones(len(sens), dtype=bool)
    available[chosen] = False
    while len(chosen) < budget and available.any():
        current = np.minimum(d2, 1.0).sum()
        gain = np.minimum(d2[None, :] + diff2, 1.0).sum(axis=1) - current
        gain[~available] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(best)
        available[best] = False
        d2 += diff2[best]
    return chosen


def place_sensors(
    sim: Simulator,
    budget: int,
    *,
    existing: Sequence[str] = (),
    sigma: float = 0.02,
    separation: float = 300.0,
    sample: int = 250,
    seed: int = 0,
    at: int = 3 * 3600,
) -> list[str]:
    """The junctions where ``budget`` pressure sensors (``existing`` ones included)
    best tell leaks apart; ValueError on a budget below the existing count."""
    if budget < len(existing):
        raise ValueError(f"budget {budget} is below the {len(existing)} existing sensors")
    junctions = [
        sim.engine.node_ids[i] for i in np.flatnonzero(sim.engine.node_types == en.NODE_JUNCTION)
    ]
    budget = min(budget, len(junctions))
    rng = np.random.default_rng(seed)
    leaks = sorted(rng.choice(len(junctions), size=min(sample, len(junctions)), replace=False))
    leak_names = [junctions[i] for i in leaks]
    # The pressure response of every junction to a leak at each sampled junction.
    sens = sensitivity(sim, junctions, at=at, candidates=leak_names)
    graph = Graph.of(sim)
    index = [sim.node(n) for n in leak_names]
    dist = graph.node_distances(index)[:, index]
    a, b = np.nonzero(np.triu(dist > separation, k=1))
    pairs = np.stack([a, b], axis=1).astype(np.int64)
    fixed = [junctions.index(s) for s in existing]
    rows = greedy(sens.dp, pairs, budget, sigma, fixed)
    return [junctions[r] for r in rows]
