"""Running the campaign: each case's episodes (the agents, and the baseline on the same
workload and seed), its fault injected, and its row."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from edgeagents.agents.lmconfig import AGENTS, AgentsLMConfig, resolve_lm_config
from edgeagents.core.scenario import Scenario
from edgeagents.experiments.driver import EpisodeRun, run_episode
from edgeagents.experiments.faults.cases import (
    CASES,
    LM_MODES,
    NOT_IMPLEMENTED,
    city_variant,
    describe_endpoint,
    fake_lm,
    memory_window,
)
from edgeagents.experiments.faults.lm_server import lm_endpoint
from edgeagents.experiments.faults.metrics import PolicyFigures, policy_figures
from edgeagents.experiments.faults.report import (
    FaultRow,
    FaultsReport,
    FaultsSettings,
    LMFaultFigures,
    MemoryFaultFigures,
    run_row,
)
from edgeagents.experiments.run import UNBOUNDED_WALL_S, agents_policy, wall_limits
from edgeagents.sim.workload import Workload, generate_workload

OnProgress = Callable[[str, float], None]
"""Called with a case and the share of its agents' episode done (0 to 1)."""
OnTick = Callable[[float], None]
MEMORY_WARNING = "experience memory off"


class Campaign:
    """The cases of one campaign on one city, seed and horizon."""

    def __init__(
        self, scenario: Scenario, settings: FaultsSettings, on_progress: OnProgress | None = None
    ) -> None:
        self.scenario = scenario
        self.settings = settings
        self.on_progress = on_progress
        self.horizon = settings.duration_s
        self.window = (settings.fault_start_s, settings.fault_end_s)
        self.workload = self.workload_of(scenario)
        self.plain_baseline: EpisodeRun | None = None

    def workload_of(self, scenario: Scenario) -> Workload:
        return generate_workload(scenario, duration_s=self.horizon, seed=self.settings.seed)

    def run(self, cases: Sequence[str]) -> FaultsReport:
        t0 = time.perf_counter()
        rows = [self.row(case) for case in cases]
        return FaultsReport(
            settings=self.settings, scenario=self.scenario.name, prompts=len(self.workload),
            rows=rows, wall_s=time.perf_counter() - t0,
        )  # fmt: skip

    def row(self, case: str) -> FaultRow:
        """One case's row; an exception in it is the row's failure, never the campaign's."""
        kind = CASES[case]
        if (skipped := FaultRow.not_run(case, kind, NOT_IMPLEMENTED)) is not None:
            return skipped
        row = run_row(
            FaultRow(case=case, kind=kind, fault="", window_s=self.window, status="ok"),
            self.fill,
        )
        self.progress(case, 1.0)
        return row

    def fill(self, row: FaultRow) -> None:
        """Runs the row's case by its kind."""
        if row.kind == "reference":
            self.reference_row(row)
        elif row.kind == "city":
            self.city_row(row)
        elif row.kind == "lm":
            self.lm_row(row)
        elif row.kind == "memory":
            self.memory_row(row)
        else:
            self.process_row(row)

    # ---- episodes ----------------------------------------------------------------------------

    def progress(self, case: str, share: float) -> None:
        if self.on_progress is not None:
            self.on_progress(case, share)

    def episode(
        self,
        scenario: Scenario,
        workload: Workload,
        policy: Any,
        *,
        agents: bool,
        on_tick: OnTick | None = None,
        window: tuple[float, float] | None = None,
    ) -> PolicyFigures:
        """One episode, decisions charged the fixed `decision_s`, and its figures around
        `window` (default: the campaign's fault window)."""
        run = self.simulate(scenario, workload, policy, on_tick=on_tick)
        run.policy = "agents" if agents else self.settings.baseline
        return self.figures(run, workload, agents=agents, window=window)

    def simulate(
        self, scenario: Scenario, workload: Workload, policy: Any, on_tick: OnTick | None = None
    ) -> EpisodeRun:
        def tick(t: float) -> None:
            if on_tick is not None:
                on_tick(t)

        return run_episode(
            scenario, workload, policy, seed=self.settings.seed, duration_s=self.horizon,
            charge_decision_time=self.settings.decision_s, on_progress=tick,
        )  # fmt: skip

    def figures(
        self,
        run: EpisodeRun,
        workload: Workload,
        *,
        agents: bool,
        window: tuple[float, float] | None = None,
    ) -> PolicyFigures:
        return policy_figures(
            run, workload, window=window or self.window, horizon_s=self.horizon,
            recovery_window_s=self.settings.recovery_window_s,
            step_s=self.settings.recovery_step_s, agents=agents,
        )  # fmt: skip

    def baseline(
        self,
        scenario: Scenario | None = None,
        workload: Workload | None = None,
        window: tuple[float, float] | None = None,
    ) -> PolicyFigures:
        """The baseline's figures on a city variant, or on the plain city: that episode runs
        once, shared by the rows whose fault does not touch the city (LM, memory)."""
        if scenario is not None and workload is not None:
            return self.episode(scenario, workload, self.settings.baseline, agents=False)
        if self.plain_baseline is None:
            self.plain_baseline = self.simulate(
                self.scenario, self.workload, self.settings.baseline
            )
            self.plain_baseline.policy = self.settings.baseline
        return self.figures(self.plain_baseline, self.workload, agents=False, window=window)

    def agents(self, lm: AgentsLMConfig | None = None, memory: Any = None) -> Any:
        """The agents as a driver policy: the campaign's `--llm` (its wall limits lifted, as a
        fixed decision charge does in `edgeagents run`), or the LM config given as it is."""
        from edgeagents.agents.llm import create_chat_model

        search_budget_s: float | None = UNBOUNDED_WALL_S
        if lm is None:
            lm, search_budget_s = wall_limits(
                resolve_lm_config(llm=self.settings.llm), self.settings.decision_s
            )
        models = {a: create_chat_model(getattr(lm, a)) for a in AGENTS}
        return agents_policy(lm, models, memory=memory, search_budget_s=search_budget_s)

    def ticker(self, case: str) -> OnTick:
        return lambda t: self.progress(case, min(t / self.horizon, 1.0))

    # ---- rows --------------------------------------------------------------------------------

    def reference_row(self, row: FaultRow) -> None:
        row.fault = "none: the same city, workload and seed, for comparison"
        row.baseline = self.baseline()
        row.agents = self.episode(
            self.scenario, self.workload, self.agents(), agents=True, on_tick=self.ticker(row.case)
        )

    def city_row(self, row: FaultRow) -> None:
        s = self.settings
        scenario, row.fault = city_variant(
            self.scenario, row.case, self.window,
            overload_factor=s.overload_factor, bounded_queue=s.bounded_queue,
        )  # fmt: skip
        workload = self.workload_of(scenario) if row.case == "overload" else self.workload
        row.baseline = self.baseline(scenario, workload)
        row.agents = self.episode(
            scenario, workload, self.agents(), agents=True, on_tick=self.ticker(row.case)
        )

    def lm_row(self, row: FaultRow) -> None:
        """The agents on `openai:fake` at an endpoint that fails every call, for the whole run."""
        mode = LM_MODES[row.case]
        s = self.settings
        whole = row.window_s = (0.0, self.horizon)
        row.baseline = self.baseline(window=whole)
        with lm_endpoint(mode, delay_s=s.slow_delay_s) as (url, server):
            row.fault = describe_endpoint(mode, url, s)
            row.agents = self.episode(
                self.scenario, self.workload, self.agents(fake_lm(url, s)), agents=True,
                on_tick=self.ticker(row.case), window=whole,
            )  # fmt: skip
        row.lm = LMFaultFigures(
            endpoint=url, server_mode=mode, timeout_s=s.lm_timeout_s,
            requests=server.requests["/v1/chat/completions"] if server is not None else 0,
        )  # fmt: skip

    def memory_row(self, row: FaultRow) -> None:
        """The agents with a real store in a temporary folder whose disk goes bad in the
        window and comes back; the run must warn and go on."""
        from edgeagents.experiments.faults.store_fault import HOW, StoreDiskFault, reopens
        from memory.store import ExperienceStore

        start, end = row.window_s = memory_window(self.scenario, self.window, self.horizon)
        row.baseline = self.baseline(window=(start, end))
        with TemporaryDirectory(prefix="edgeagents-faults-") as tmp:
            store = ExperienceStore(Path(tmp) / "memory")
            fault = StoreDiskFault(store)
            progress = self.ticker(row.case)

            def on_tick(t: float) -> None:
                if t >= start and fault.stored_before is None:
                    fault.break_disk()
                if t >= end and fault.broken:
                    fault.repair_disk()
                progress(t)

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                row.agents = self.episode(
                    self.scenario, self.workload, self.agents(memory=store), agents=True,
                    on_tick=on_tick, window=(start, end),
                )  # fmt: skip
            fault.repair_disk()
            said = [str(w.message) for w in caught if MEMORY_WARNING in str(w.message)]
            row.fault = f"experience store unreadable {start:g}-{end:g} s"
            row.memory = MemoryFaultFigures(
                path=str(store.path), how=HOW, stored_before=fault.stored_before or 0,
                stored_after_fault=fault.stored_since_repair(), warnings=len(said),
                first_warning=said[0] if said else None, **reopens(store.path),
            )  # fmt: skip

    def process_row(self, row: FaultRow) -> None:
        """`edgeagents run` killed mid-episode and resumed from its checkpoint (subprocesses);
        the agents' figures are the resumed run's, replayed here from its checkpoint, around
        the cycle the kill cost (the one after the last checkpointed)."""
        from edgeagents.experiments.faults.kill_resume import kill_and_resume

        tick = self.scenario.control.tick_s
        row.fault = "SIGKILL `edgeagents run` mid-episode, resume it with --resume"
        with TemporaryDirectory(prefix="edgeagents-faults-") as tmp:
            p = row.process = kill_and_resume(self.settings, Path(tmp), round(self.horizon / tick))
            row.window_s = None
            if p.resumed_at_s is None:
                return
            at = p.resumed_at_s
            window = row.window_s = (at, min(at + tick, self.horizon))
            row.fault += f" (killed after {p.killed_after_cycles} agents cycles, {at:g} s)"
            row.agents = self.replayed(Path(p.checkpoint), window)
        row.baseline = self.baseline(window=window)

    def replayed(self, path: Path, window: tuple[float, float]) -> PolicyFigures:
        """The agents' episode of a finished checkpoint, replayed (no agent or LM called)."""
        from edgeagents.experiments.checkpoint import RunCheckpoint, fingerprint, run_options

        s = self.settings
        lm = resolve_lm_config(llm=s.llm)
        options = run_options(seed=s.seed, duration_s=self.horizon, baselines=[s.baseline],
                              with_none=False, charge=s.decision_s, lm_config=lm)  # fmt: skip
        cp = RunCheckpoint(path, fingerprint(self.scenario, self.workload, options=options),
                           resume=True)  # fmt: skip
        try:
            router, controller = self.agents()
            log = cp.episode("agents")
            if not log.finished:
                raise RuntimeError("the resumed run's checkpoint holds no finished agents episode")
            run = run_episode(
                self.scenario, self.workload, (router, controller), seed=s.seed,
                duration_s=self.horizon, charge_decision_time=s.decision_s, log=log,
            )  # fmt: skip
        finally:
            cp.close()
        run.policy = "agents"
        return self.figures(run, self.workload, agents=True, window=window)


class SimTarget:
    """The simulated city as a fault target (`targets.FAULT_TARGETS["sim"]`)."""

    name = "sim"
    cases = CASES
    not_implemented = NOT_IMPLEMENTED

    def check(self) -> None:
        """Nothing beyond the core: the CLI checks the agents' and memory extras per case."""

    def check_scenario(self, scenario: Scenario, settings: FaultsSettings) -> None:
        """Any scenario will do (a link cut in a city without links fails its row)."""

    def run(
        self,
        scenario: Scenario,
        settings: FaultsSettings,
        cases: Sequence[str],
        *,
        on_progress: OnProgress | None = None,
    ) -> FaultsReport:
        return run_faults(scenario, settings, cases, on_progress=on_progress)


SIM_TARGET = SimTarget()


def run_faults(
    scenario: Scenario,
    settings: FaultsSettings,
    cases: Sequence[str],
    *,
    on_progress: OnProgress | None = None,
) -> FaultsReport:
    """Run the named cases (see `CASES`) on one city; every row says what it found."""
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise ValueError(f"unknown fault cases: {', '.join(unknown)}")
    return Campaign(scenario, settings, on_progress).run(cases)
