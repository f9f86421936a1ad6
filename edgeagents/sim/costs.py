"""What a prompt costs where: its payloads, radio times and work (computed once for the whole
workload), its backhaul to and from a replica, and its predicted latency there now (what the
greedy and weighted routers compare).

Apart from `dispatch` (which moves prompts through the city) because a router prices every
prompt on each of its candidates: this is the simulator's innermost loop, so one prompt's
figures are read out of the arrays once, as Python floats, and kept while it is priced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeagents.core.profiles import iterations, setup_h200_s
from edgeagents.sim.network import payload_bytes

if TYPE_CHECKING:
    from edgeagents.core.scenario import Scenario
    from edgeagents.core.state import ModelSpec
    from edgeagents.sim.network import Network
    from edgeagents.sim.replica import Replica
    from edgeagents.sim.workload import Workload


class PromptCosts:
    """One prompt's figures that its candidates are priced with: the site of its cell, its
    payloads (bytes), radio times (s) and work (setup on an H200, s; iterations)."""

    __slots__ = (
        "bytes_in", "bytes_out", "downlink_s", "i", "iterations", "setup_h200_s", "site",
        "uplink_s",
    )  # fmt: skip

    def __init__(
        self, i: int, site: int, bytes_in: float, bytes_out: float, uplink_s: float,
        downlink_s: float, setup_h200_s: float, iterations: float,
    ) -> None:  # fmt: skip
        self.i = i
        self.site = site
        self.bytes_in = bytes_in
        self.bytes_out = bytes_out
        self.uplink_s = uplink_s
        self.downlink_s = downlink_s
        self.setup_h200_s = setup_h200_s
        self.iterations = iterations


class Pricing:
    """Every prompt's costs, as arrays indexed by prompt, and the prices built from them.

    Args:
        scenario: The validated scenario (its payload sizes).
        workload: The prompts of this episode.
        net: The city's network (radio links, and the backhaul paths as they are now).
        models: The scenario's models, in index order.
    """

    def __init__(
        self, scenario: Scenario, workload: Workload, net: Network, models: list[ModelSpec]
    ) -> None:
        w = workload
        cells = w.cell.astype(np.int64)
        self.net = net
        self.bytes_in, self.bytes_out = payload_bytes(scenario.payload, w)
        self.uplink_s = net.uplink_s(cells, self.bytes_in)
        self.downlink_s = net.downlink_s(cells, self.bytes_out)
        self.cell_site = net.cell_site[cells]
        """The site whose base station serves each prompt's cell."""
        self.setup_h200_s = np.zeros(len(w))
        self.iterations = np.zeros(len(w))
        for mi, m in enumerate(models):
            sel = w.model == mi
            self.setup_h200_s[sel] = setup_h200_s(
                m, w.input_tokens[sel], w.images[sel], w.audio_s[sel], w.resolution_px[sel]
            )
            self.iterations[sel] = iterations(
                m, w.output_tokens[sel], w.steps[sel], w.resolution_px[sel]
            )
        self._last: PromptCosts | None = None

    def prompt(self, i: int) -> PromptCosts:
        """Prompt i's figures as Python floats (the last prompt's kept: a router prices one
        prompt on each of its candidates in turn)."""
        last = self._last
        if last is not None and last.i == i:
            return last
        last = self._last = PromptCosts(
            i, int(self.cell_site[i]), float(self.bytes_in[i]), float(self.bytes_out[i]),
            float(self.uplink_s[i]), float(self.downlink_s[i]), float(self.setup_h200_s[i]),
            float(self.iterations[i]),
        )  # fmt: skip
        return last

    def net_in_s(self, i: int, r: Replica) -> float:
        """Backhaul time of prompt i's input to replica r."""
        p = self.prompt(i)
        return self.net.transfer_s(p.site, r.site, p.bytes_in)

    def net_out_s(self, i: int, r: Replica) -> float:
        """Backhaul time of prompt i's result from replica r."""
        p = self.prompt(i)
        return self.net.transfer_s(r.site, p.site, p.bytes_out)

    def predict_s(self, i: int, r: Replica, now: float) -> float:
        """Predicted end-to-end latency of prompt i if sent to replica r at `now`."""
        p = self.prompt(i)
        batch = len(r.running) + 1
        if batch > r.max_batch:
            batch = r.max_batch
        own = p.setup_h200_s * r.svc.compute_ratio / r.share_eff + p.iterations * r.iter_eff_s(
            batch
        )
        wait = r.ready_at - now if r.ready_at > now else 0.0
        ahead = r.outstanding() - r.max_batch + 1
        if ahead > 0:
            wait += ahead / r.max_batch * own
        net = self.net
        return (
            p.uplink_s + net.transfer_s(p.site, r.site, p.bytes_in) + wait + own
            + net.transfer_s(r.site, p.site, p.bytes_out) + p.downlink_s
        )  # fmt: skip
