"""The Ray target's campaign: the cut city on a local Ray cluster (one node per site), one row
per case, each a wall-clock run of the agents steering the Ray Serve city under load while the
fault happens: a node removed (`SiteCluster.remove`), a site crashed and back (its node removed,
a fresh one added), a replica killed (`ray.kill`), demand x3 against bounded queues, the agents'
LM endpoint down, slow or answering garbage. Before each row the city is put back: every site's
node up, the initial placement, no routing policy."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Any

from edgeagents.core.state import Decision, DeploymentAction, RoutingPolicy
from edgeagents.experiments.faults.cases import LM_MODES, describe_endpoint, fake_lm
from edgeagents.experiments.faults.lm_server import free_port, lm_endpoint
from edgeagents.experiments.faults.metrics import PolicyFigures, decision_paths, outcome_figures
from edgeagents.experiments.faults.report import (
    FaultRow,
    FaultsReport,
    FaultsSettings,
    LMFaultFigures,
    RayRowFigures,
    run_row,
)
from serving.config import server_app_name
from serving.faults.cases import (
    RAY_CASES,
    RAY_NOT_IMPLEMENTED,
    ray_city,
    text_models,
    victim_site,
)
from serving.faults.cluster import SiteCluster
from serving.faults.load import LoadRun, outcomes, row_prompts

if TYPE_CHECKING:
    from edgeagents.agents.lmconfig import AgentsLMConfig
    from edgeagents.core.scenario import Scenario
    from serving.city import RayServeCity

OnProgress = Callable[[str, float], None]
READY_TIMEOUT_S = 120.0
"""How long a reset waits for every site's node and server to be back."""


class RayCampaign:
    """The cases of one campaign on the Ray Serve city.

    Args:
        scenario: The city as given (`ray_city` cuts it).
        settings: The campaign's; `settings.ray` holds the Ray target's own.
        on_progress: Called with a case and the share of its row done.
        cluster: A running `SiteCluster` whose head offers the cut city's first site (tests);
            None: start one, and shut it down at the end.
    """

    def __init__(
        self,
        scenario: Scenario,
        settings: FaultsSettings,
        on_progress: OnProgress | None = None,
        cluster: SiteCluster | None = None,
    ) -> None:
        if settings.ray is None:
            raise ValueError("the Ray target's settings are missing (FaultsSettings.ray)")
        self.settings, self.ray = settings, settings.ray
        self.city_scenario = ray_city(scenario, self.ray.sites)
        self.sites = self.city_scenario.site_names
        self.victim = victim_site(self.city_scenario)
        placed = self.city_scenario.placement.get(self.victim, [])
        self.model = placed[0] if placed else text_models(self.city_scenario)[0]
        self.on_progress = on_progress
        self.cluster = cluster
        self.city: RayServeCity | None = None
        self.url = ""

    def run(self, cases: Sequence[str]) -> FaultsReport:
        t0 = time.perf_counter()
        runs = any(c not in RAY_NOT_IMPLEMENTED for c in cases)  # else: no Ray at all
        with self.city_up() if runs else contextlib.nullcontext():
            rows = [self.row(c) for c in cases]
        plain = row_prompts(self.city_scenario, self.settings, overload=False)
        return FaultsReport(
            settings=self.settings, scenario=self.city_scenario.name, prompts=len(plain),
            rows=rows, wall_s=time.perf_counter() - t0,
        )  # fmt: skip

    # ---- the city --------------------------------------------------------------------------

    @contextlib.contextmanager
    def city_up(self) -> Iterator[None]:
        """Ray (a new cluster, or the one given), Serve on 127.0.0.1, the city deployed; all
        of it that this campaign started is shut down at the end."""
        import ray
        import yaml
        from ray import serve

        from serving.city import RayServeCity

        own = self.cluster is None
        connected = ray.is_initialized()
        cluster = self.cluster = self.cluster or SiteCluster.start(self.sites)
        with TemporaryDirectory(prefix="edgeagents-ray-faults-") as tmp:
            path = Path(tmp) / "city.yaml"
            path.write_text(yaml.safe_dump(self.city_scenario.model_dump(mode="json")))
            try:
                if cluster.head_site != self.sites[0]:
                    raise ValueError(
                        f"the cluster's head offers site {cluster.head_site}; the city's first "
                        f"site is {self.sites[0]}"
                    )
                if not connected:
                    ray.init(address=cluster.address, log_to_driver=False)
                port = free_port()
                serve.start(
                    http_options={"host": "127.0.0.1", "port": port}, proxy_location="HeadOnly"
                )
                self.url = f"http://127.0.0.1:{port}"
                gateway = {"scenario": str(path), "request_timeout_s": 60,
                           "max_queue_per_server": self.ray.max_queue_per_server}  # fmt: skip
                self.city = RayServeCity({"gateway": gateway, "max_batch": 4})
                yield
            finally:
                self.city = None
                try:
                    serve.shutdown()
                finally:
                    if not connected:
                        ray.shutdown()
                    if own:
                        cluster.shutdown()
                        self.cluster = None

    def reset(self) -> None:
        """Every site's node up, the initial placement, no routing policy."""
        city, cluster = self._city(), self._cluster()
        for site in self.sites:
            if site not in cluster.nodes:
                cluster.add(site, spawn=True)  # Ray's own threads run: never fork the driver
        deadline = time.monotonic() + READY_TIMEOUT_S
        city.observe()
        while city.down_sites:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sites still down after reset: {sorted(city.down_sites)}")
            time.sleep(0.5)
            city.observe()
        want = {(s, m) for s, ms in self.city_scenario.placement.items() for m in ms}
        have = {(s, m) for s, ms in city.placement.items() for m in ms}
        actions = [DeploymentAction(site=s, model=m, op="unload") for s, m in sorted(have - want)]
        actions += [DeploymentAction(site=s, model=m, op="load") for s, m in sorted(want - have)]
        report = city.apply(Decision(time_s=city.now, routing=RoutingPolicy(), actions=actions))
        if report.refused:
            raise RuntimeError(f"reset refused: {report.refused[0].reason}")
        self._wait_running()
        self._warm_up()

    def _warm_up(self) -> None:
        """One short request to each server, pinned by routing (a fresh llama.cpp server's
        first call pages its model in), then no routing policy again: the row's "before"
        measures the city, not the reset."""
        import httpx

        from serving.loadgen import prompt_text

        city = self._city()
        pairs = [(site, m) for site, models in city.placement.items() for m in models]
        with httpx.Client(base_url=self.url, timeout=120) as client:
            for site, m in pairs:
                routes = {m: [{"site": site, "weight": 1}]}
                pin = RoutingPolicy.model_validate({"routes": routes})
                city.apply(Decision(time_s=city.now, routing=pin))
                words = prompt_text(4, 0)
                body = {"model": m, "max_tokens": 1,
                        "messages": [{"role": "user", "content": words}]}  # fmt: skip
                client.post("/v1/chat/completions", json=body)
        city.apply(Decision(time_s=city.now, routing=RoutingPolicy()))

    def _wait_running(self) -> None:
        """Every server app RUNNING (a killed replica's replacement included)."""
        from ray import serve

        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            apps = serve.status().applications
            if all(a.status == "RUNNING" for a in apps.values()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("server apps not RUNNING after reset")
            time.sleep(0.5)

    def _city(self) -> RayServeCity:
        if self.city is None:
            raise RuntimeError("the Ray city is not up")
        return self.city

    def _cluster(self) -> SiteCluster:
        if self.cluster is None:
            raise RuntimeError("the Ray cluster is not up")
        return self.cluster

    # ---- rows ------------------------------------------------------------------------------

    def row(self, case: str) -> FaultRow:
        """One case's row; an exception in it is the row's failure, never the campaign's."""
        kind = RAY_CASES[case]
        if (skipped := FaultRow.not_run(case, kind, RAY_NOT_IMPLEMENTED)) is not None:
            return skipped
        s = self.settings
        window = (s.fault_start_s, s.fault_end_s)
        row = run_row(
            FaultRow(case=case, kind=kind, fault="", window_s=window, status="ok"), self.fill
        )
        self.progress(case, 1.0)
        return row

    def fill(self, row: FaultRow) -> None:
        """The city reset, then the row's case run on it."""
        self.reset()
        if row.kind == "lm":
            self.lm_row(row)
        else:
            row.fault = self.describe(row.case)
            row.agents, row.ray = self.episode(row.case, self.agents(None))

    def lm_row(self, row: FaultRow) -> None:
        """The agents on `openai:fake` at an endpoint that fails every call, the whole row."""
        mode, s = LM_MODES[row.case], self.settings
        whole = row.window_s = (0.0, s.duration_s)
        with lm_endpoint(mode, delay_s=s.slow_delay_s) as (url, server):
            row.fault = describe_endpoint(mode, url, s)
            row.agents, row.ray = self.episode(row.case, self.agents(fake_lm(url, s)), window=whole)
        row.lm = LMFaultFigures(
            endpoint=url, server_mode=mode, timeout_s=s.lm_timeout_s,
            requests=server.requests["/v1/chat/completions"] if server is not None else 0,
        )  # fmt: skip

    def describe(self, case: str) -> str:
        s, v = self.settings, self.victim
        window = f"{s.fault_start_s:g}-{s.fault_end_s:g} s"
        return {
            "no-fault": "none: the same city, load and seed, for comparison",
            "node-removal": f"the Ray node of site {v} removed at {s.fault_start_s:g} s, for "
            "the rest of the row",
            "site-crash": f"site {v} down from {s.fault_start_s:g} s: its Ray node removed, a "
            f"fresh one started at {s.fault_end_s:g} s (`ray start`)",
            "replica-crash": f"the replica of {self.model} at {v} killed (ray.kill) at "
            f"{s.fault_start_s:g} s, under load; Serve starts another",
            "overload": f"every demand x{s.overload_factor:g} {window}, the gateway's queues "
            f"bounded at {self.ray.max_queue_per_server} per server",
        }[case]

    def agents(self, lm: AgentsLMConfig | None) -> Any:
        """The agents' controller: the campaign's `--llm`, or the LM config given."""
        from edgeagents.agents.llm import create_chat_model
        from edgeagents.agents.lmconfig import AGENTS, resolve_lm_config
        from edgeagents.experiments.run import agents_policy

        lm = lm or resolve_lm_config(llm=self.settings.llm)
        models = {a: create_chat_model(getattr(lm, a)) for a in AGENTS}
        return agents_policy(lm, models)[1]

    def progress(self, case: str, share: float) -> None:
        if self.on_progress is not None:
            self.on_progress(case, share)

    def episode(
        self, case: str, controller: Any, window: tuple[float, float] | None = None
    ) -> tuple[PolicyFigures, RayRowFigures]:
        """One row: the load sent, the agents stepped every control tick, the fault injected
        at the window's edges; the figures by arrival time, and what the city did."""
        import httpx

        s, city = self.settings, self._city()
        tick, horizon = self.city_scenario.control.tick_s, s.duration_s
        prompts = row_prompts(self.city_scenario, s, overload=case == "overload")
        events = [(k * tick, "tick") for k in range(1, int(horizon // tick + 1e-9) + 1)]
        events += [(s.fault_start_s, "start"), (s.fault_end_s, "end")]
        events.sort(key=lambda e: (e[0], e[1] != "start" and e[1] != "end"))
        decisions: list[Decision] = []
        ray = RayRowFigures(retried=0)
        seen = len(city.site_events)
        last_tick, t0 = 0.0, time.perf_counter()
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        with httpx.Client(base_url=self.url, limits=limits) as client:
            start = city.now
            load = LoadRun(client, prompts, lambda: city.now)
            for at, what in events:
                city.advance(max(start + at, city.now))
                if what == "tick":
                    decision, report = controller.step(city, self.city_scenario,
                                                       charge_decision_time=False)  # fmt: skip
                    decisions.append(decision)
                    ray.applied += len(report.applied)
                    ray.load_s += [round(x, 2) for x in report.load_s.values()]
                    ray.refused_actions += [
                        f"{r.action.op} {r.action.model}@{r.action.site}: {r.reason}"
                        for r in report.refused
                    ]
                    last_tick = at
                    self.progress(case, min(at / horizon, 0.99))
                else:
                    began = round(city.now - start, 2)
                    if self.inject(case, what):
                        ray.fault_at_s.append(began)
            load.wait()
        arrival, lat, refused = outcomes(prompts)
        ray.retried = sum(1 for p in prompts if p.served and p.retries)
        ray.site_events = [
            f"{site} {'up' if up else 'down'} at {t - start:.1f} s"
            for t, site, up in city.site_events[seen:]
        ]
        figures = outcome_figures(
            "agents", arrival, lat, refused=sum(refused.values()), refused_by_reason=refused,
            window=window or (s.fault_start_s, s.fault_end_s), horizon_s=horizon,
            recovery_window_s=s.recovery_window_s, step_s=s.recovery_step_s,
            ticks=len(decisions), last_tick_s=last_tick, paths=decision_paths(decisions),
            wall_s=time.perf_counter() - t0,
        )  # fmt: skip
        return figures, ray

    def inject(self, case: str, edge: str) -> bool:
        """The fault at the window's start or end; False for a case with nothing to do."""
        cluster = self._cluster()
        if case in ("node-removal", "site-crash") and edge == "start":
            cluster.remove(self.victim)
        elif case == "site-crash" and edge == "end":
            cluster.add(self.victim, spawn=True, wait=False)  # the city sees it come up
        elif case == "replica-crash" and edge == "start":
            kill_replica(server_app_name(self.model, self.victim))
        else:
            return False
        return True


def kill_replica(app: str) -> None:
    """`ray.kill` the Serve replica actor of application `app` (Serve then starts another)."""
    import ray

    prefix = f"SERVE_REPLICA::{app}#"
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["name"].startswith(prefix)]  # fmt: skip
    if not names:
        raise RuntimeError(f"no replica actor of {app} to kill")
    for name in names:
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
