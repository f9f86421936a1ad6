"""`bench faults`' settings and report: one row per fault case, and the rule that fails it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeagents.experiments.faults.metrics import PolicyFigures

CaseKind = Literal["reference", "city", "lm", "memory", "process"]
"""reference: no fault; city: the simulated city fails (sites, links, load); lm: the agents'
LM endpoint fails; memory: the experience store fails; process: the run's own process."""
RowStatus = Literal["ok", "failed", "not implemented"]


TargetName = Literal["sim", "ray"]
"""Where the faults happen: the simulated city, or the Ray Serve city (`serving.faults`)."""


class RayFaultsSettings(BaseModel):
    """What the Ray target adds: each row is wall-clock time on a local Ray cluster, one node
    per site, the load sent through the gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sites: int = Field(default=3, ge=2, description="Sites (Ray nodes) of the city; the first "
                       "is the head node (gateway, Serve), never the one failed.")  # fmt: skip
    rate_per_s: float = Field(default=1.0, gt=0, description="Prompts per s sent, outside the "
                              "overload window.")  # fmt: skip
    max_queue_per_server: int = Field(
        default=4,
        ge=1,
        description="Gateway back-pressure bound (requests in flight per "
        "server) in every row: past it, 429 queue_full.",
    )
    input_words: int = Field(default=16, ge=1, description="Prompt words sent at most.")
    output_tokens: int = Field(default=4, ge=1, description="Tokens asked at most.")


class FaultsSettings(BaseModel):
    """What a campaign runs: one city, seed and horizon for every case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: TargetName = "sim"
    scenario: str = Field(description="Scenario name or path, as given.")
    seed: int = Field(default=0, ge=0)
    duration_s: float = Field(
        gt=0, description="Arrival horizon, s: simulated (sim), wall clock per row (ray)."
    )
    decision_s: float = Field(
        default=1.0, ge=0, description="Every decision applies this long after its tick."
    )
    llm: str = Field(default="none", description="The agents' LM outside the LM rows.")
    baseline: str = Field(default="greedy-autoscale", description="The reference baseline.")
    fault_start_s: float = Field(ge=0, description="The fault window opens (city and memory).")
    fault_end_s: float = Field(gt=0, description="The fault window closes.")
    overload_factor: float = Field(default=3.0, gt=1, description="Demand scale in the window.")
    bounded_queue: int = Field(
        default=32, ge=1, description="control.max_queue_per_replica of the overload case."
    )
    lm_timeout_s: float = Field(default=0.3, gt=0, description="Each agent's LM call limit.")
    slow_delay_s: float = Field(default=2.0, gt=0, description="The slow LM answers this late.")
    recovery_window_s: float = Field(gt=0, description="Sliding window of the recovery figure.")
    recovery_step_s: float = Field(gt=0, description="Its step.")
    ray: RayFaultsSettings | None = Field(
        default=None, description="The Ray target's settings (None on the simulated city)."
    )


class LMFaultFigures(BaseModel):
    """What the agents' LM endpoint did in an LM row."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(description="The base URL the agents were given.")
    server_mode: str = Field(description="down (nothing listens), slow, garbage-text, ...")
    timeout_s: float
    requests: int = Field(description="Chat-completion requests the server received.")


class MemoryFaultFigures(BaseModel):
    """What became of the experience store in the memory row."""

    model_config = ConfigDict(extra="forbid")

    path: str
    how: str = Field(description="What was done to the store on disk, and when.")
    stored_before: int = Field(description="Experiences stored when the fault began.")
    stored_after_fault: int = Field(
        description="Experiences stored after the window closed (the store came back)."
    )
    warnings: int = Field(description="'experience memory off' warnings during the run.")
    first_warning: str | None = None
    reopens: bool = Field(description="A new ExperienceStore opens the folder afterwards.")
    reopened_count: int | None = None
    reopen_error: str | None = None


class ProcessFaultFigures(BaseModel):
    """What the kill-and-resume row did to `edgeagents run`, and what came of it."""

    model_config = ConfigDict(extra="forbid")

    checkpoint: str = Field(description="The run's checkpoint (in a temporary folder).")
    target_cycles: int = Field(description="Agents cycles checkpointed before the kill.")
    killed_exit_code: int = Field(description="-9: the SIGKILL ended it.")
    killed_after_cycles: int = Field(description="Agents cycles in the file after the kill.")
    checkpoint_opens: bool = Field(description="The killed run's file passes SQLite's check.")
    open_error: str | None = None
    resume_exit_code: int
    resume_error: str | None = None
    resumed_at_s: float | None = Field(
        default=None, description="Simulated time of the last cycle the resume replayed."
    )
    replay_s: float | None = Field(
        default=None, description="Wall s the resume spent replaying the agents' cycles."
    )
    resume_wall_s: float = Field(description="Wall s of the whole resumed process.")
    uninterrupted_wall_s: float = Field(description="Wall s of the uninterrupted run.")
    prompts: dict[str, int] = Field(default_factory=dict, description="Resumed: per policy.")
    uninterrupted_prompts: dict[str, int] = Field(default_factory=dict)
    same_figures: bool = Field(
        default=False, description="Every field of the two reports but wall clock is equal."
    )
    differences: list[str] = Field(default_factory=list, description="Fields that differ.")


class RayRowFigures(BaseModel):
    """What happened on the Ray Serve city in one row, beyond the prompts' figures."""

    model_config = ConfigDict(extra="forbid")

    retried: int = Field(description="Prompts served after a retry (their replica or site died).")
    fault_at_s: list[float] = Field(
        default_factory=list, description="When the fault was injected (and undone), s."
    )
    site_events: list[str] = Field(
        default_factory=list, description="Sites the city saw go down or come back, and when."
    )
    applied: int = Field(default=0, description="Agent actions the city applied.")
    refused_actions: list[str] = Field(
        default_factory=list, description="Agent actions the city refused, with the reason."
    )
    load_s: list[float] = Field(default_factory=list, description="Seconds each load took.")


class FaultRow(BaseModel):
    """One fault case: the agents, and the baseline on the same workload and seed."""

    model_config = ConfigDict(extra="forbid")

    case: str
    kind: CaseKind
    fault: str = Field(description="What was done, in words.")
    window_s: tuple[float, float] | None = Field(
        description="The fault window (simulated s), by arrival; None if not run."
    )
    status: RowStatus
    problems: list[str] = Field(default_factory=list, description="Why the row failed.")
    reason: str | None = Field(default=None, description="Why a case is not implemented.")
    agents: PolicyFigures | None = None
    baseline: PolicyFigures | None = None
    lm: LMFaultFigures | None = None
    memory: MemoryFaultFigures | None = None
    process: ProcessFaultFigures | None = None
    ray: RayRowFigures | None = None
    wall_s: float = 0.0

    @classmethod
    def not_run(
        cls, case: str, kind: CaseKind, not_implemented: dict[str, tuple[str, str]]
    ) -> FaultRow | None:
        """The row of a case its target cannot run (what it would do, and why not); None for
        a case it runs."""
        if case not in not_implemented:
            return None
        fault, reason = not_implemented[case]
        return cls(case=case, kind=kind, fault=fault, window_s=None, status="not implemented",
                   reason=reason)  # fmt: skip


class FaultsReport(BaseModel):
    """What `edgeagents bench faults --json` writes."""

    model_config = ConfigDict(extra="forbid")

    settings: FaultsSettings
    scenario: str = Field(description="The scenario's name.")
    prompts: int = Field(description="Prompts offered without a fault (the overload row has more).")
    rows: list[FaultRow]
    wall_s: float

    @property
    def failed(self) -> list[FaultRow]:
        return [r for r in self.rows if r.status == "failed"]


def run_row(row: FaultRow, fill: Callable[[FaultRow], None]) -> FaultRow:
    """`fill` run on the row, then the row judged (`row_problems`) and timed: an exception in
    it is the row's failure, never the campaign's."""
    t0 = time.perf_counter()
    try:
        fill(row)
        row.problems = row_problems(row)
    except Exception as e:
        row.problems.append(f"{type(e).__name__}: {e}"[:300])
    row.status = "failed" if row.problems else "ok"
    row.wall_s = time.perf_counter() - t0
    return row


def row_problems(row: FaultRow) -> list[str]:
    """Why a row that ran fails: a lost prompt; a control loop that stopped before the horizon;
    an LM row in which an LM call answered, or none was made; a memory row with no warning
    (the fault did not bite) or a store that does not reopen; a kill-and-resume row whose run
    was not killed mid-episode, whose checkpoint does not open or resume, or whose resumed run
    differs from the uninterrupted one (with an LM: in its prompt counts)."""
    out = []
    for fig in (row.agents, row.baseline):
        if fig is None:
            continue
        if fig.lost:
            out.append(f"{fig.policy}: {fig.lost} prompts lost")
        if not fig.reached_end:
            out.append(f"{fig.policy}: control loop stopped at {fig.last_tick_s:g} s")
    paths = row.agents.paths if row.agents is not None else None
    if row.kind == "lm" and paths is not None:
        if paths.lm_answered:
            out.append(f"agents: {paths.lm_answered} LM calls answered through the fault")
        if not paths.lm_calls:
            out.append("agents: no LM call was made, so the fault was not exercised")
    if row.kind == "memory" and row.memory is not None:
        if not row.memory.warnings:
            out.append("memory: no warning, so the fault was not exercised")
        if not row.memory.reopens:
            out.append(f"memory: the store does not reopen ({row.memory.reopen_error})")
    if row.process is not None:
        out += process_problems(row.process, exact=row.agents is None or row.agents.paths is None
                                or row.agents.paths.lm_calls == 0)  # fmt: skip
    return out


def process_problems(p: ProcessFaultFigures, *, exact: bool) -> list[str]:
    """Why a kill-and-resume row fails; `exact`: no LM call, so every figure must repeat."""
    out = []
    if p.killed_exit_code != -9:
        out.append(f"the run ended (exit {p.killed_exit_code}) before it could be killed")
    if not p.checkpoint_opens:
        out.append(f"the killed run's checkpoint does not open ({p.open_error})")
    if p.resume_exit_code != 0:
        out.append(f"the resume failed: {p.resume_error}")
    elif p.prompts != p.uninterrupted_prompts:
        out.append(f"prompts {p.prompts} resumed, {p.uninterrupted_prompts} uninterrupted")
    elif exact and not p.same_figures:
        out.append(f"the resumed figures differ from the uninterrupted run's: {p.differences[:3]}")
    return out
