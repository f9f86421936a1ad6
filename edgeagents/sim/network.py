"""Radio and backhaul transfer times: shortest paths over the live backhaul graph."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from itertools import pairwise
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np

from edgeagents.core.scenario import PayloadConfig, Scenario

if TYPE_CHECKING:
    from edgeagents.sim.workload import Workload


PATHS_CACHED = 16
"""Path tables kept per process. The twin builds a city for every option it scores, on the
same backhaul with the same failures: computing all pairs' paths once instead of each time
is what makes a decision on a region of a thousand sites take seconds, not minutes."""
_PATHS: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()


class Network:
    """Path latency and bottleneck bandwidth between every pair of sites, kept current as
    sites and links fail and recover. Transfers do not contend (links are not shared)."""

    def __init__(self, scenario: Scenario) -> None:
        self._graph: nx.Graph = scenario.backhaul.copy()
        self.site_names = scenario.site_names
        self._backhaul_key = (
            tuple(self.site_names),
            tuple((lk.a, lk.b, lk.latency_ms, lk.bandwidth_gbps) for lk in scenario.links),
        )
        self._index = {s: i for i, s in enumerate(self.site_names)}
        self.cell_site = np.array([self._index[c.site] for c in scenario.cells], dtype=np.int64)
        self.uplink_bps = np.array([c.uplink_mbps * 1e6 for c in scenario.cells])
        self.downlink_bps = np.array([c.downlink_mbps * 1e6 for c in scenario.cells])
        self.radio_half_rtt_s = np.array([c.radio_rtt_ms / 2000 for c in scenario.cells])
        self._down_sites: set[str] = set()
        self._down_links: set[frozenset[str]] = set()
        self.latency_s = np.zeros((0, 0))
        self.bandwidth_bps = np.zeros((0, 0))
        self.version = 0
        """Bumped whenever paths change (a site or link failed or came back)."""
        self._recompute()

    @property
    def down_links(self) -> list[tuple[str, str]]:
        return sorted(tuple(sorted(lk)) for lk in self._down_links)  # type: ignore[misc]

    def site_up(self, site: str) -> bool:
        return site not in self._down_sites

    def set_site(self, site: str, up: bool) -> None:
        (self._down_sites.discard if up else self._down_sites.add)(site)
        self._recompute()

    def set_link(self, a: str, b: str, up: bool) -> None:
        key = frozenset((a, b))
        (self._down_links.discard if up else self._down_links.add)(key)
        self._recompute()

    def _live_graph(self) -> nx.Graph:
        g = self._graph.copy()
        g.remove_edges_from(tuple(lk) for lk in self._down_links)
        g.remove_nodes_from(self._down_sites)
        return g

    def _recompute(self) -> None:
        key = (*self._backhaul_key, frozenset(self._down_sites), frozenset(self._down_links))
        hit = _PATHS.get(key)
        if hit is None:
            hit = _PATHS[key] = self._all_pairs()
            while len(_PATHS) > PATHS_CACHED:
                _PATHS.popitem(last=False)
        else:
            _PATHS.move_to_end(key)
        self.latency_s, self.bandwidth_bps = hit
        self.version += 1

    def _all_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Latency and bottleneck bandwidth of the shortest path between every pair of live
        sites; read-only, as networks with the same backhaul and failures share them."""
        n = len(self.site_names)
        lat = np.full((n, n), np.inf)
        bw = np.zeros((n, n))
        g = self._live_graph()
        for src, paths in nx.all_pairs_dijkstra_path(g, weight="latency_ms"):
            i = self._index[src]
            for dst, path in paths.items():
                j = self._index[dst]
                lat[i, j], bw[i, j] = _path_cost(g, path)
        lat.setflags(write=False)
        bw.setflags(write=False)
        return lat, bw

    def transfer_s(self, src_site: int, dst_site: int, nbytes: float) -> float:
        """Backhaul time of a payload: propagation plus bytes over the bottleneck (read with
        `item`: a prompt's costs read it for every candidate, and numpy scalars cost more than
        the arithmetic)."""
        if src_site == dst_site:
            return 0.0
        bandwidth = self.bandwidth_bps.item(src_site, dst_site)
        if bandwidth > 0:
            return self.latency_s.item(src_site, dst_site) + nbytes * 8 / bandwidth
        return float(
            self.latency_s[src_site, dst_site] + nbytes * 8 / self.bandwidth_bps[src_site, dst_site]
        )

    def reachable(self, src_site: int, dst_site: int) -> bool:
        return self.latency_s.item(src_site, dst_site) < np.inf

    def uplink_s(self, cell: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
        return self.radio_half_rtt_s[cell] + nbytes * 8 / self.uplink_bps[cell]

    def downlink_s(self, cell: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
        return self.radio_half_rtt_s[cell] + nbytes * 8 / self.downlink_bps[cell]

    def transfer_matrix_s(self, src_sites: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
        """Backhaul time from each prompt's site to every site: shape (prompts, sites)."""
        lat = self.latency_s[src_sites]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = lat + (nbytes[:, None] * 8) / self.bandwidth_bps[src_sites]
        t[np.arange(len(src_sites)), src_sites] = 0.0
        return np.where(np.isfinite(lat), t, np.inf)


def _path_cost(g: nx.Graph, path: Iterable[str]) -> tuple[float, float]:
    nodes = list(path)
    if len(nodes) == 1:
        return 0.0, np.inf
    edges = [g.edges[u, v] for u, v in pairwise(nodes)]
    latency = sum(e["latency_ms"] for e in edges) / 1000
    bottleneck = min(e["bandwidth_gbps"] for e in edges) * 1e9
    return latency, bottleneck


def payload_bytes(payload: PayloadConfig, workload: Workload) -> tuple[np.ndarray, np.ndarray]:
    """Bytes each prompt sends up and each result brings back, by modality."""
    w = workload
    tokens_in = w.input_tokens * payload.bytes_per_token
    bytes_in = (
        tokens_in + w.images * payload.image_in_kb * 1e3 + w.audio_s * payload.audio_kb_per_s * 1e3
    )
    mpx = (w.resolution_px.astype(np.float64) ** 2) / 1e6
    bytes_out = w.output_tokens * payload.bytes_per_token + mpx * payload.image_out_kb_per_mpx * 1e3
    return bytes_in.astype(np.float64), bytes_out.astype(np.float64)
