"""One episode of the adaptation experiment: the job handed to its process, what it measured,
and running it here or in a new process (so that a store is really reopened from disk)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeagents.agents.agent import FIRST_OPTION
from edgeagents.core.scenario import Scenario
from edgeagents.core.state import Decision
from edgeagents.experiments.adaptation.settings import AdaptationSettings, MemoryMode

EpisodeKey = tuple[str, str, str, int]
"""(shift, LM, memory, evaluation seed): an evaluation episode among a run's."""


class EpisodeJob(BaseModel):
    """One episode, as handed to its process."""

    model_config = ConfigDict(extra="forbid")

    scenario: Scenario
    shift: str
    memory: MemoryMode | Literal["warm-up"]
    llm: str
    seed: int
    store: str | None = None
    settings: AdaptationSettings
    decision_log: str | None = Field(
        default=None, description="Write the episode's agent decisions here (JSON lines)."
    )


class EpisodeCurve(BaseModel):
    """What one episode measured."""

    model_config = ConfigDict(extra="forbid")

    epoch_mean_latency_s: list[float | None]
    epoch_mean_bound_s: list[float | None] = Field(
        default_factory=list,
        description="Per planning epoch, the mean zero-queue bound of its served prompts (each "
        "alone at its best site): what the epoch's prompts would take with no queue at all.",
    )
    latency_s: list[float | None] = Field(description="Per prompt, None if refused.")
    model_index: list[int]
    arrival_s: list[float]
    references_s: dict[str, float]
    plans: int
    early_plans: int
    stored: int = 0
    wall_s: float
    lm_paths: dict[str, float] = Field(default_factory=dict)
    lm_answers: int = 0
    lm_not_first: int = 0


def run_job(job: EpisodeJob) -> EpisodeCurve:
    """Run one episode (in the calling process)."""
    from collections import Counter

    from edgeagents.agents.llm import create_chat_model
    from edgeagents.agents.lmconfig import AGENTS, resolve_lm_config
    from edgeagents.experiments.driver import run_episode
    from edgeagents.experiments.run import agents_policy, wall_limits, write_decision_log
    from edgeagents.sim.bounds import lower_bound_s, reference_s, standalone_matrix_s
    from edgeagents.sim.workload import generate_workload

    sc = job.scenario
    started = time.perf_counter()
    charge = True if job.settings.decision_s is None else job.settings.decision_s
    lm, search_budget_s = wall_limits(resolve_lm_config(llm=job.llm), charge)
    models = {a: create_chat_model(getattr(lm, a)) for a in AGENTS}
    store = None
    if job.memory != "off":
        from memory.store import ExperienceStore

        store = ExperienceStore(job.store)
    policy = agents_policy(
        lm, models, memory=store, thread_id=f"{job.shift}-{job.memory}-{job.seed}",
        search_budget_s=search_budget_s,
    )  # fmt: skip
    workload = generate_workload(sc, duration_s=sc.duration_s, seed=job.seed)
    run = run_episode(sc, workload, policy, seed=job.seed, charge_decision_time=charge)
    if job.decision_log is not None:
        write_decision_log({f"agents-memory-{job.memory}": run}, Path(job.decision_log))
    lat = run.outcomes.latency_s
    epoch_s = sc.control.planning_epoch_s
    epochs = int(np.ceil(sc.duration_s / epoch_s))
    which = np.minimum((workload.arrival_s // epoch_s).astype(int), epochs - 1)
    matrix = standalone_matrix_s(sc, workload)
    bound = lower_bound_s(matrix)
    means: list[float | None] = []
    bounds: list[float | None] = []
    for e in range(epochs):
        sel = (which == e) & ~np.isnan(lat) & np.isfinite(bound)
        means.append(float(lat[sel].mean()) if sel.any() else None)
        bounds.append(float(bound[sel].mean()) if sel.any() else None)
    plans = [d.plan for d in run.decisions if d.plan is not None]
    paths = Counter(r.path for d in run.decisions for r in d.records if r.agent == "planner")
    n_paths = sum(paths.values()) or 1
    answers, not_first = planner_lm_picks(run.decisions)
    refs = reference_s(sc, workload, matrix)
    return EpisodeCurve(
        epoch_mean_latency_s=means,
        epoch_mean_bound_s=bounds,
        latency_s=[None if np.isnan(x) else float(x) for x in lat],
        model_index=[int(m) for m in workload.model],
        arrival_s=[float(a) for a in workload.arrival_s],
        references_s=refs,
        plans=len(plans),
        early_plans=len(plans) - len({p.epoch for p in plans}),
        stored=store.count() if store is not None else 0,
        wall_s=time.perf_counter() - started,
        lm_paths={p: n / n_paths for p, n in sorted(paths.items())},
        lm_answers=answers,
        lm_not_first=not_first,
    )


def planner_lm_picks(decisions: Sequence[Decision]) -> tuple[int, int]:
    """How many planner decisions the LM answered, and how many of those picked another plan
    than the menu's first: with a small LM, whether its own choice ever mattered."""
    picks = [
        r.lm_choice
        for d in decisions
        for r in d.records
        if r.agent == "planner" and r.lm_choice is not None
    ]
    return len(picks), sum(k != FIRST_OPTION for k in picks)


def run_in_new_process(job: EpisodeJob, lm_threads: int | None = None) -> EpisodeCurve:
    """Run one episode in a new Python process
    (`python -m edgeagents.experiments.adaptation JOB OUT`), so a store is really reopened
    from disk. `lm_threads` caps a local LM's threads there."""
    from edgeagents.agents.llm import LM_THREADS_ENV

    env = None if lm_threads is None else {**os.environ, LM_THREADS_ENV: str(lm_threads)}
    with tempfile.TemporaryDirectory(prefix="edgeagents-job-") as tmp:
        job_path, out_path = Path(tmp) / "job.json", Path(tmp) / "curve.json"
        job_path.write_text(job.model_dump_json())
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "edgeagents.experiments.adaptation",
                str(job_path),
                str(out_path),
            ],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0 or not out_path.is_file():
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            why = lines[-1] if lines else f"exit code {proc.returncode}"
            raise RuntimeError(f"episode {job.shift}/{job.memory}/{job.llm}: {why}")
        try:
            return EpisodeCurve.model_validate_json(out_path.read_text())
        except ValueError as e:
            raise RuntimeError(
                f"episode {job.shift}/{job.memory}/{job.llm}: its result does not fit this "
                f"version of edgeagents (was the code changed during the run?): {e}"[:300]
            ) from None
