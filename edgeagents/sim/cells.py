"""Where prompts start: a cell for each prompt, drawn from the cells' populations re-weighted
by the scenario's cell shifts, or from tracked users who move between neighbouring cells.

Apart from `workload` (arrival times and sizes), which asks `CellSampler` for the cells of a
demand's prompts once their times are drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from edgeagents.core.scenario import MobilityConfig, Scenario

_MAX_REJECTION_ROUNDS = 500


class CellSampler:
    """Where prompts start: population (or tracked users) re-weighted by cell shifts."""

    def __init__(self, scenario: Scenario, T: float, rng: np.random.Generator) -> None:
        self.users = np.array([c.users for c in scenario.cells], dtype=float)
        self.index = {c.name: i for i, c in enumerate(scenario.cells)}
        self.shifts = [s for s in scenario.workload.shifts if s.cell is not None]
        mob = scenario.workload.mobility
        self.moves = None if mob is None else _Mobility(scenario, mob, T, rng)

    def _factors(self, model: str) -> tuple[np.ndarray, np.ndarray]:
        """Breakpoints, and per segment between them each cell's weight factor."""
        mine = sorted((s for s in self.shifts if s.model in (None, model)), key=lambda s: s.at_s)
        breaks = np.array([s.at_s for s in mine])
        table = np.ones((len(mine) + 1, len(self.users)))
        for i, s in enumerate(mine):
            table[i + 1 :, self.index[s.cell]] *= s.factor  # type: ignore[index]
        return breaks, table

    def assign(
        self, rng: np.random.Generator, model: str, t: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """A cell per prompt, and a mask of prompts kept (False where no user has weight)."""
        breaks, table = self._factors(model)
        seg = np.searchsorted(breaks, t, side="right")
        cell = np.zeros(len(t), dtype=np.int64)
        keep = np.ones(len(t), dtype=bool)
        if self.moves is None:
            for s in np.unique(seg):
                idx = np.flatnonzero(seg == s)
                w = np.cumsum(self.users * table[s])
                if w[-1] <= 0:
                    keep[idx] = False
                    continue
                pick = np.searchsorted(w / w[-1], rng.random(len(idx)), side="right")
                cell[idx] = np.minimum(pick, len(w) - 1)
            return cell, keep
        top = table.max(axis=1)
        pending = np.flatnonzero(top[seg] > 0)
        keep[:] = False
        for _ in range(_MAX_REJECTION_ROUNDS):
            if not len(pending):
                break
            c = self.moves.cell_at(rng.integers(self.moves.n_users, size=len(pending)), t[pending])
            s = seg[pending]
            ok = rng.random(len(pending)) * top[s] < table[s, c]
            cell[pending[ok]], keep[pending[ok]] = c[ok], True
            pending = pending[~ok]
        return cell, keep


class _Mobility:
    """Tracked users' cells over time: Poisson moves to a uniform neighbouring cell."""

    def __init__(
        self, scenario: Scenario, cfg: MobilityConfig, T: float, rng: np.random.Generator
    ) -> None:
        users = np.array([c.users for c in scenario.cells], dtype=float)
        self.n_users = cfg.tracked_users
        self.start = rng.choice(len(users), size=self.n_users, p=users / users.sum())
        n_moves = rng.poisson(cfg.moves_per_user_per_h / 3600.0 * T, self.n_users)
        owner = np.repeat(np.arange(self.n_users), n_moves)
        times = rng.uniform(0.0, T, len(owner))
        times = times[np.lexsort((times, owner))]
        self.span = T + 1.0
        self.key = owner * self.span + times
        self.offset = np.cumsum(n_moves) - n_moves
        neighbours, degree = _neighbours(scenario)
        self.after = np.empty(len(owner), dtype=np.int64)
        cur = self.start.copy()
        for k in range(int(n_moves.max(initial=0))):
            movers = np.flatnonzero(n_moves > k)
            c, d = cur[movers], degree[cur[movers]]
            pick = (rng.random(len(movers)) * np.maximum(d, 1)).astype(np.int64)
            cur[movers] = np.where(d > 0, neighbours[c, pick], c)
            self.after[self.offset[movers] + k] = cur[movers]

    def cell_at(self, user: np.ndarray, t: np.ndarray) -> np.ndarray:
        if not len(self.after):
            return self.start[user]
        k = np.searchsorted(self.key, user * self.span + t, side="right") - self.offset[user]
        moved = self.after[np.maximum(self.offset[user] + k - 1, 0)]
        return np.where(k > 0, moved, self.start[user])


def _neighbours(scenario: Scenario) -> tuple[np.ndarray, np.ndarray]:
    """Padded table of each cell's neighbours (same or backhaul-adjacent site), and degrees."""
    g = scenario.backhaul
    sites = [c.site for c in scenario.cells]
    lists = [
        [j for j, b in enumerate(sites) if j != i and (a == b or g.has_edge(a, b))]
        for i, a in enumerate(sites)
    ]
    degree = np.array([len(n) for n in lists])
    table = np.zeros((len(lists), max(1, int(degree.max()))), dtype=np.int64)
    for i, n in enumerate(lists):
        table[i, : len(n)] = n
    return table, degree
