"""The network's shape: zones, connectivity and the segments isolation valves cut out.

All functions work on an open ``Engine``'s arrays (zero-based node and link indices), so
that a scenario worker can use them without the entities::

    topo = Topology.of(engine)
    zones = derive_zones(topo)                 # node name -> "DMA-1", ...
    topo.unreachable(closed=[engine.link_index("p12")])   # nodes cut off from every source
    segment = topo.segment(engine.link_index("p12"), valves)

Zones (DMAs) are given by the ``tag`` of each node. A network without tags gets zones
derived from its hydraulics: the parts the pipes connect once every pump and control
valve (PRV, PSV, FCV...) is taken out, since those are where a zone is fed and metered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from cityverse.twins.water.engine import (
    LINK_CVPIPE,
    LINK_PIPE,
    NODE_JUNCTION,
    Engine,
)


@dataclass(frozen=True, slots=True)
class Segment:
    """What closing the valves around a pipe takes out of service."""

    pipe: str
    pipes: list[str]
    """Pipes inside the segment (the burst pipe and any pipe no valve separates from it)."""
    nodes: list[str]
    """Nodes inside the segment."""
    valves: list[tuple[str, str]]
    """Isolation valves to close, as (pipe, node at which the valve sits)."""
    links_closed: list[str]
    """Every link closed to isolate the segment (its pipes, adjacent pumps and valves)."""


@dataclass(frozen=True, slots=True)
class Topology:
    """Node and link arrays of a network, for graph questions."""

    node_ids: list[str]
    link_ids: list[str]
    node_types: NDArray[np.int64]
    link_types: NDArray[np.int64]
    ends: NDArray[np.int64]

    @classmethod
    def of(cls, engine: Engine) -> Topology:
        """The topology of an open engine."""
        return cls(
            engine.node_ids,
            engine.link_ids,
            engine.node_types,
            engine.link_types,
            engine.link_nodes,
        )

    @property
    def sources(self) -> NDArray[np.int64]:
        """Indices of reservoirs and tanks."""
        return np.flatnonzero(self.node_types != NODE_JUNCTION)

    def is_pipe(self, link: int) -> bool:
        """Whether a link is a pipe (with or without a check valve)."""
        return int(self.link_types[link]) in (LINK_PIPE, LINK_CVPIPE)

    def labels(self, links: Iterable[int]) -> NDArray[np.int64]:
        """Connected-component label of every node over the given links."""
        chosen = np.fromiter(links, dtype=np.int64)
        n = len(self.node_ids)
        a, b = self.ends[chosen, 0], self.ends[chosen, 1]
        graph = coo_matrix((np.ones(len(chosen)), (a, b)), shape=(n, n))
        _, labels = connected_components(graph, directed=False)
        return labels

    def unreachable(self, closed: Iterable[int] = ()) -> NDArray[np.int64]:
        """Indices of junctions no source reaches once the ``closed`` links are shut."""
        shut = set(closed)
        labels = self.labels(i for i in range(len(self.link_ids)) if i not in shut)
        fed = set(labels[self.sources].tolist())
        junctions = np.flatnonzero(self.node_types == NODE_JUNCTION)
        return junctions[[int(labels[j]) not in fed for j in junctions]]

    def segment(self, pipe: int, valves: Sequence[tuple[int, int]] | None) -> Segment:
        """The segment a burst on ``pipe`` isolates.

        ``valves`` lists isolation valves as (pipe index, node index); None means a valve
        at each end of every pipe, so that the segment is the pipe alone.
        """
        if not self.is_pipe(pipe):
            raise ValueError(f"{self.link_ids[pipe]!r} is not a pipe")
        n = len(self.node_ids)
        if valves is None:
            a, b = (int(x) for x in self.ends[pipe])
            in_pipes, in_nodes = {pipe}, set()
            boundary = [(pipe, a), (pipe, b)]
        else:
            valve_set = set(valves)
            parent = list(range(n + len(self.link_ids)))

            def find(x: int) -> int:
                while parent[x] != x:
                    parent[x] = parent[parent[x]]
                    x = parent[x]
                return x

            for link in range(len(self.link_ids)):
                if not self.is_pipe(link):
                    continue
                for node in self.ends[link]:
                    if (link, int(node)) not in valve_set:
                        parent[find(n + link)] = find(int(node))
            root = find(n + pipe)
            in_pipes = {
                link
                for link in range(len(self.link_ids))
                if self.is_pipe(link) and find(n + link) == root
            }
            in_nodes = {node for node in range(n) if find(node) == root}
            boundary = [
                (link, node) for link, node in valve_set if (link in in_pipes) != (node in in_nodes)
            ]
        closed = set(in_pipes)
        for link in range(len(self.link_ids)):
            if not self.is_pipe(link) and any(int(x) in in_nodes for x in self.ends[link]):
                closed.add(link)
        return Segment(
            pipe=self.link_ids[pipe],
            pipes=sorted(self.link_ids[i] for i in in_pipes),
            nodes=sorted(self.node_ids[i] for i in in_nodes),
            valves=sorted((self.link_ids[p], self.node_ids[q]) for p, q in boundary),
            links_closed=sorted(self.link_ids[i] for i in closed),
        )


def derive_zones(topo: Topology) -> dict[str, str]:
    """Zones for a network without tags: node name -> ``DMA-<n>``, largest zone first.

    Nodes of a part with no junction (a lone reservoir behind its pump) get no zone.
    """
    pipes = [i for i in range(len(topo.link_ids)) if topo.is_pipe(i)]
    labels = topo.labels(pipes)
    junction = topo.node_types == NODE_JUNCTION
    sizes: dict[int, int] = {}
    for label in labels[junction]:
        sizes[int(label)] = sizes.get(int(label), 0) + 1
    order = sorted(sizes, key=lambda label: (-sizes[label], label))
    names = {label: f"DMA-{i + 1}" for i, label in enumerate(order)}
    return {
        topo.node_ids[i]: names[int(label)] for i, label in enumerate(labels) if int(label) in names
    }


def disconnected_parts(topo: Topology) -> list[list[str]]:
    """Groups of junctions that no pipe, pump or valve path links to any source."""
    labels = topo.labels(range(len(topo.link_ids)))
    fed = set(labels[topo.sources].tolist())
    parts: dict[int, list[str]] = {}
    for i, label in enumerate(labels):
        if int(label) not in fed:
            parts.setdefault(int(label), []).append(topo.node_ids[i])
    return sorted(parts.values(), key=lambda p: (-len(p), p[0]))


def zone_members(zones: dict[str, str], topo: Topology) -> dict[str, NDArray[np.int64]]:
    """Zone -> indices of its junctions."""
    members: dict[str, list[int]] = {}
    for i, name in enumerate(topo.node_ids):
        zone = zones.get(name)
        if zone is not None and topo.node_types[i] == NODE_JUNCTION:
            members.setdefault(zone, []).append(i)
    return {zone: np.array(sorted(idx), dtype=np.int64) for zone, idx in sorted(members.items())}


def boundary_links(zones: dict[str, str], topo: Topology, zone: str) -> list[int]:
    """Links through which water enters ``zone``: those joining it to another zone or a
    source (closing them all cuts the zone's supply)."""
    out = []
    for link, (a, b) in enumerate(topo.ends):
        za, zb = zones.get(topo.node_ids[a]), zones.get(topo.node_ids[b])
        src_a = topo.node_types[a] != NODE_JUNCTION
        src_b = topo.node_types[b] != NODE_JUNCTION
        inside_a, inside_b = za == zone and not src_a, zb == zone and not src_b
        if inside_a != inside_b:
            out.append(link)
    return out
