"""The adaptation experiment: how fast the agents recover after the city changes, with the
experience memory off, cold (empty at the start) and warm (filled by a warm-up episode with
the same shift on another seed, then reopened by a new process).

Each shift is a variant of the base scenario with a shorter planning epoch (so recovery is
measured in several epochs) and one change at `shift_at_s`:

- `surge`: the busiest model's demand jumps (x`surge_factor`);
- `site-failure`: the site with the most GPU memory goes down;
- `demand-move`: users move to the outer cells (the two least populated gain x6, the most
  populated keeps 0.3).

Every episode runs in its own process, so a warm store is really reopened from disk. Each
variant runs on several evaluation seeds (one placement's bad luck at the moment of the shift
swings a single episode). Figures per (shift, memory, llm): the mean latency of prompts
arriving in each planning epoch, averaged over seeds; the steady state (the median of the last
third of the post-shift epochs); the recovery (on that curve: planning epochs from the
shift's until the latency is back within 10% of the steady state after its worst epoch among
the first six); the same recovery against the lowest steady state of the shift's variants
(`recovery_to_best_epochs`: settling high fast is not recovering); the mean latency and
normalized Jain over `window_epochs` epochs after the shift; and how often memory made the
planner re-plan early.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeagents.agents.agent import FIRST_OPTION
from edgeagents.core.scenario import CityEvent, DemandShift, Scenario
from edgeagents.core.state import Decision

MemoryMode = Literal["off", "cold", "warm"]
SHIFTS = ("surge", "site-failure", "demand-move")
RECOVERY_BAND = 0.10
WARMUP_SEED_OFFSET = 1000


class AdaptationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    duration_s: float = Field(default=720.0, gt=0, description="Arrival horizon of an episode.")
    shift_at_s: float = Field(
        default=255.0, gt=0, description="When the shift happens (mid-epoch: not at a boundary)."
    )
    planning_epoch_s: float = Field(default=30.0, gt=0)
    window_epochs: int = Field(
        default=6, ge=1, description="Epochs after the shift that the post-shift mean covers."
    )
    surge_factor: float = Field(default=1.8, gt=1)
    decision_s: float | None = Field(
        default=1.0,
        ge=0,
        description="Every control decision applies this many seconds after its tick, so that "
        "an episode does not depend on how loaded the machine is (a second's difference in "
        "when a load starts after a site failure can triple that epoch's mean latency). None: "
        "after the wall time its agents really took, as `edgeagents run` charges. With a "
        "fixed charge the planner's plan search also runs to its end (its step limit) instead "
        "of stopping at its wall-time budget, and each LM call may take the time it needs "
        "instead of falling back at its agent's limit.",
    )
    seed: int = 0


def shift_scenario(base: Scenario, shift: str, settings: AdaptationSettings) -> Scenario:
    """The base scenario with the adaptation's control period and one shift."""
    if shift not in SHIFTS:
        raise ValueError(f"shift {shift!r}: expected one of {', '.join(SHIFTS)}")
    at = settings.shift_at_s
    workload = base.workload
    events = list(base.events)
    if shift == "surge":
        top = max(workload.demands, key=lambda d: d.arrivals.rate_per_s)
        extra = DemandShift(at_s=at, model=top.model, factor=settings.surge_factor)
        workload = workload.model_copy(update={"shifts": [*workload.shifts, extra]})
    elif shift == "site-failure":
        site = max(base.sites, key=lambda s: sum(g.count * _memory(base, g.type) for g in s.gpus))
        events.append(CityEvent(at_s=at, kind="site_down", site=site.name))
    else:
        cells = sorted(base.cells, key=lambda c: c.users)
        moves = [DemandShift(at_s=at, cell=c.name, factor=6.0) for c in cells[:2]]
        moves.append(DemandShift(at_s=at, cell=cells[-1].name, factor=0.3))
        workload = workload.model_copy(update={"shifts": [*workload.shifts, *moves]})
    control = base.control.model_copy(update={"planning_epoch_s": settings.planning_epoch_s})
    return base.model_copy(
        update={
            "name": f"{base.name}-{shift}",
            "workload": workload,
            "events": events,
            "control": control,
            "duration_s": settings.duration_s,
        }
    )


def _memory(scenario: Scenario, gpu_type: str) -> float:
    return scenario.gpu_catalogue[gpu_type].memory_gb


def describe_shift(scenario: Scenario, shift: str, settings: AdaptationSettings) -> str:
    sc = shift_scenario(scenario, shift, settings)
    if shift == "site-failure":
        return f"site {sc.events[-1].site} down at {settings.shift_at_s:g} s"
    moved = sc.workload.shifts[-1] if shift == "surge" else sc.workload.shifts[-3:]
    if shift == "surge":
        return f"{moved.model} demand x{moved.factor:g} at {settings.shift_at_s:g} s"
    return "users move: " + ", ".join(f"{m.cell} x{m.factor:g}" for m in moved)


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


class FinishedEpisode(BaseModel):
    """A finished episode kept in a work folder, with the job it answers."""

    model_config = ConfigDict(extra="forbid")

    job: dict
    curve: EpisodeCurve


def _job_key(job: EpisodeJob) -> dict:
    """What makes two jobs the same episode (where its decisions are logged does not)."""
    return job.model_dump(mode="json", exclude={"decision_log"})


def _tag(shift: str, llm: str) -> str:
    """A (shift, LM) as a file-name part."""
    return f"{shift}-{llm.replace(':', '_').replace('/', '_')}"


def _done_path(done_dir: Path, job: EpisodeJob) -> Path:
    return done_dir / f"{_tag(job.shift, job.llm)}-{job.memory}-seed{job.seed}.json"


def _write_done(done_dir: Path, job: EpisodeJob, curve: EpisodeCurve) -> None:
    """Written whole or not at all: a run killed mid-write leaves no half episode behind."""
    done_dir.mkdir(parents=True, exist_ok=True)
    path = _done_path(done_dir, job)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(FinishedEpisode(job=_job_key(job), curve=curve).model_dump_json())
    tmp.replace(path)


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


class VariantResult(BaseModel):
    """One row of the report (the JSON's `variants`): one (shift, memory, llm) over the seeds."""

    model_config = ConfigDict(extra="forbid")

    memory: MemoryMode
    llm: str
    shift: str
    seeds: list[int]
    recovery_epochs: int | None = Field(
        description="On the seed-averaged curve: planning epochs from the shift's until the "
        "latency is back within 10% of the steady state after its worst epoch (None: never "
        "back within the episode)."
    )
    recovery_epochs_by_seed: list[int | None]
    post_shift_mean_latency_s: float | None = Field(
        description="Mean latency of the prompts arriving in the window after the shift, all "
        "seeds pooled."
    )
    post_shift_mean_latency_s_by_seed: list[float | None]
    jain: float | None = Field(description="Normalized Jain over the post-shift window.")
    steady_state_s: float | None
    recovery_to_best_epochs: int | None = Field(
        default=None,
        description="As `recovery_epochs`, but back within 10% of the lowest steady state "
        "among this (shift, llm)'s memory variants: a variant that settles high has not "
        "recovered, however fast it got there (None: never back to that level).",
    )
    recovery_to_best_epochs_by_seed: list[int | None] = Field(
        default_factory=list, description="Per seed, against that seed's lowest steady state."
    )
    refused_after_shift: int
    early_replans: int = Field(description="Plans made between epochs (memory recalled a shift).")
    stored_experiences: int = Field(description="Experiences in the store at the end (max).")
    planner_paths: dict[str, float]
    planner_lm_answers: int = Field(default=0, description="Planner decisions the LM answered.")
    planner_lm_not_first: int = Field(
        default=0,
        description="Of those, how many picked another option than the menu's first (the "
        "tools' best): the LM's own say in placement, beside its extra loads and priorities.",
    )
    epoch_mean_latency_s: list[float | None] = Field(
        description="Per planning epoch, the mean latency of its prompts, averaged over seeds."
    )
    epoch_mean_latency_s_by_seed: list[list[float | None]]
    epoch_mean_bound_s: list[float | None] = Field(
        description="Per planning epoch, the zero-queue bound of its served prompts, averaged "
        "over seeds: how much of a rise is the demand itself rather than waiting."
    )
    wall_s: float


class AdaptationReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str
    settings: AdaptationSettings
    shifts: dict[str, str] = Field(description="Shift -> what changes.")
    variants: list[VariantResult]
    targets: dict[str, dict[str, bool | None]] = Field(
        description="(shift, llm) -> whether off shows a transient at all (`has_transient`); "
        "warm recovers in at most half the epochs of off (None without a transient); warm's "
        "post-shift mean latency is lower than off's; the recovery target against the best "
        "steady state."
    )


def recovery_epochs(
    means: Sequence[float | None],
    shift_epoch: int,
    *,
    band: float = RECOVERY_BAND,
    peak_within: int = 6,
    steady: float | None = None,
) -> tuple[int | None, float | None]:
    """(recovery in planning epochs, steady state). The steady state is the median of the
    last third of the epochs from the shift's on, unless `steady` gives another level (the
    best any variant settled at). The recovery counts the epochs from the shift's until the
    curve is back within `band` above the steady state after its worst epoch among the first
    `peak_within` (0 if even that one is within). None: never back, or still climbing (the
    steady state is above that worst epoch: the tail is no steady state)."""
    post = list(means[shift_epoch:])
    tail = [x for x in post[len(post) - max(1, len(post) // 3) :] if x is not None]
    if steady is None:
        if not tail:
            return None, None
        steady = float(np.median(tail))
    limit = steady * (1 + band)
    early = [(x, k) for k, x in enumerate(post[:peak_within]) if x is not None]
    if not early:
        return None, steady
    worst, peak = max(early)
    if steady > worst * (1 + band):
        return None, steady
    if worst <= limit:
        return 0, steady
    for k in range(peak + 1, len(post)):
        x = post[k]
        if x is not None and x <= limit:
            return k, steady
    return None, steady


def _seed_average(curves: Sequence[Sequence[float | None]]) -> list[float | None]:
    """Per epoch, the mean over the seeds that have a value there."""
    cols = [[x for x in col if x is not None] for col in zip(*curves, strict=True)]
    return [float(np.mean(col)) if col else None for col in cols]


def score_variant(
    curves: Sequence[EpisodeCurve],
    *,
    seeds: Sequence[int],
    memory: MemoryMode,
    llm: str,
    shift: str,
    scenario: Scenario,
    settings: AdaptationSettings,
) -> VariantResult:
    """The figures of one variant over its seeds (see `VariantResult`)."""
    from edgeagents.sim.metrics import jain, jain_rescaled

    epoch_s = settings.planning_epoch_s
    shift_epoch = int(settings.shift_at_s // epoch_s)
    end = settings.shift_at_s + settings.window_epochs * epoch_s
    averaged = _seed_average([c.epoch_mean_latency_s for c in curves])
    rec, steady = recovery_epochs(averaged, shift_epoch)
    pooled: list[np.ndarray] = []
    by_seed: list[float | None] = []
    by_model: dict[int, list[np.ndarray]] = {}
    refused = 0
    for c in curves:
        lat = np.array([np.nan if x is None else x for x in c.latency_s])
        arr, mi = np.array(c.arrival_s), np.array(c.model_index)
        window = (arr >= settings.shift_at_s) & (arr < end)
        served = window & ~np.isnan(lat)
        refused += int((window & np.isnan(lat)).sum())
        pooled.append(lat[served])
        by_seed.append(float(lat[served].mean()) if served.any() else None)
        for k in range(len(scenario.models)):
            by_model.setdefault(k, []).append(lat[served & (mi == k)])
    all_served = np.concatenate(pooled) if pooled else np.array([])
    refs = curves[0].references_s
    speeds = []
    for k, m in enumerate(scenario.models):
        lat_k = np.concatenate(by_model.get(k, [np.array([])]))
        if lat_k.size and refs.get(m.name):
            speeds.append(refs[m.name] / float(lat_k.mean()))
    paths: dict[str, float] = {}
    for c in curves:
        for p, share in c.lm_paths.items():
            paths[p] = paths.get(p, 0.0) + share / len(curves)
    return VariantResult(
        memory=memory,
        llm=llm,
        shift=shift,
        seeds=list(seeds),
        recovery_epochs=rec,
        recovery_epochs_by_seed=[
            recovery_epochs(c.epoch_mean_latency_s, shift_epoch)[0] for c in curves
        ],
        post_shift_mean_latency_s=float(all_served.mean()) if all_served.size else None,
        post_shift_mean_latency_s_by_seed=by_seed,
        jain=jain_rescaled(jain(speeds), len(speeds)) if speeds else None,
        steady_state_s=steady,
        refused_after_shift=refused,
        early_replans=sum(c.early_plans for c in curves),
        stored_experiences=max(c.stored for c in curves),
        planner_paths=paths,
        planner_lm_answers=sum(c.lm_answers for c in curves),
        planner_lm_not_first=sum(c.lm_not_first for c in curves),
        epoch_mean_latency_s=averaged,
        epoch_mean_latency_s_by_seed=[c.epoch_mean_latency_s for c in curves],
        epoch_mean_bound_s=_seed_average([c.epoch_mean_bound_s for c in curves]),
        wall_s=sum(c.wall_s for c in curves),
    )


def run_adaptation(
    base: Scenario,
    *,
    shifts: Sequence[str] = SHIFTS,
    llms: Sequence[str] = ("local", "none"),
    settings: AdaptationSettings | None = None,
    seeds: int = 1,
    jobs: int = 1,
    workdir: Path | None = None,
    log_dir: Path | None = None,
    on_episode: Callable[[str], None] | None = None,
    runner: Callable[[EpisodeJob], EpisodeCurve] | None = None,
) -> AdaptationReport:
    """Per shift and LM: a warm-up episode (memory on, another seed) fills a store; then, on
    each of `seeds` evaluation seeds, off, cold (a fresh store) and warm (a copy of the
    warm-up's store) run, each episode in a new process, `jobs` at a time; only the warm ones
    wait for their warm-up. With `log_dir`, each episode's agent decisions go to
    `<shift>-<llm>-<memory>-seed<N>.decisions.jsonl`.

    With a `workdir` the stores stay there, and so does each finished episode's curve: a run
    interrupted after an hour resumes, taking the episodes already done from the folder when
    their job (scenario, settings, LM, seed, store) is the same. An episode whose warm-up ran
    again runs again too. Use a new folder after changing code.

    With `jobs` > 1 each episode's local LM gets its share of the cores (unless env
    `EDGEAGENTS_LM_THREADS` says otherwise), so parallel episodes do not oversubscribe them."""
    from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

    from edgeagents.agents.llm import LM_THREADS_ENV

    if runner is None:
        share = max(1, (os.cpu_count() or 1) // max(1, jobs))
        pin = jobs > 1 and not os.environ.get(LM_THREADS_ENV, "").strip()
        runner = partial(run_in_new_process, lm_threads=share if pin else None)

    settings = settings or AdaptationSettings()
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="edgeagents-adapt-")) if own_dir else Path(workdir)
    eval_seeds = [settings.seed + i for i in range(seeds)]
    pairs = [(shift, llm) for shift in shifts for llm in llms]
    scenarios = {shift: shift_scenario(base, shift, settings) for shift in shifts}

    def job(shift: str, llm: str, mode: str, seed: int, store: Path | None) -> EpisodeJob:
        log = None
        if log_dir is not None:
            log = str(log_dir / f"{_tag(shift, llm)}-{mode}-seed{seed}.decisions.jsonl")
        return EpisodeJob(
            scenario=scenarios[shift], shift=shift, memory=mode, llm=llm, seed=seed,
            store=str(store) if store else None, settings=settings, decision_log=log,
        )  # fmt: skip

    done_dir = None if own_dir else root / "episodes"
    rerun: set[tuple[str, str]] = set()

    def done(j: EpisodeJob) -> EpisodeCurve | None:
        if done_dir is None or (j.memory == "warm" and (j.shift, j.llm) in rerun):
            return None
        try:
            saved = FinishedEpisode.model_validate_json(_done_path(done_dir, j).read_text())
        except (OSError, ValueError):
            return None
        return saved.curve if saved.job == _job_key(j) else None

    def execute(j: EpisodeJob, earlier: EpisodeCurve | None) -> EpisodeCurve:
        if on_episode is not None:
            what = f"{j.shift} / llm {j.llm} / memory {j.memory} / seed {j.seed}"
            on_episode(what + (" (done earlier)" if earlier is not None else ""))
        if earlier is not None:
            return earlier
        curve = runner(j)
        if done_dir is not None:
            _write_done(done_dir, j, curve)
        return curve

    def execute_warm(
        j: EpisodeJob, store: Path, warm_up: Future[EpisodeCurve], source: Path
    ) -> EpisodeCurve:
        """A warm episode starts from a copy of its warm-up's store, so it waits for it."""
        warm_up.result()
        earlier = done(j)
        if earlier is None:
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(source, store)
        return execute(j, earlier)

    curves: dict[tuple[str, str, str, int], EpisodeCurve] = {}
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            # Submitted in this order, a warm episode is taken from the queue only after every
            # warm-up has started, so its wait cannot hold a worker a warm-up needs; off and
            # cold episodes, which need no warm-up, fill the other workers meanwhile.
            warmups: dict[tuple[str, str], Future[EpisodeCurve]] = {}
            for shift, llm in pairs:
                store = root / f"{_tag(shift, llm)}-warm-up"
                seed = settings.seed + WARMUP_SEED_OFFSET
                warm_up = job(shift, llm, "warm-up", seed, store)
                earlier = done(warm_up)
                if earlier is None:
                    shutil.rmtree(store, ignore_errors=True)
                    rerun.add((shift, llm))
                warmups[(shift, llm)] = pool.submit(execute, warm_up, earlier)
            todo: dict[tuple[str, str, str, int], Future[EpisodeCurve]] = {}
            for mode in ("off", "cold", "warm"):
                for shift, llm in pairs:
                    for seed in eval_seeds:
                        tag = _tag(shift, llm)
                        store = None if mode == "off" else root / f"{tag}-{mode}-{seed}"
                        j = job(shift, llm, mode, seed, store)
                        if store is not None and mode == "warm":
                            source = root / f"{tag}-warm-up"
                            todo[(shift, llm, mode, seed)] = pool.submit(
                                execute_warm, j, store, warmups[(shift, llm)], source
                            )
                            continue
                        earlier = done(j)
                        if store is not None and earlier is None:
                            shutil.rmtree(store, ignore_errors=True)
                        todo[(shift, llm, mode, seed)] = pool.submit(execute, j, earlier)
            everything = [*warmups.values(), *todo.values()]
            finished, _ = wait(everything, return_when=FIRST_EXCEPTION)
            failed = next((f.exception() for f in finished if f.exception()), None)
            if failed is not None:
                for f in everything:
                    f.cancel()
                raise failed
            curves = {key: f.result() for key, f in todo.items()}
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    variants: list[VariantResult] = []
    targets: dict[str, dict[str, bool | None]] = {}
    shift_epoch = int(settings.shift_at_s // settings.planning_epoch_s)
    for shift, llm in pairs:
        rows: dict[str, VariantResult] = {}
        for mode in ("off", "cold", "warm"):
            rows[mode] = score_variant(
                [curves[(shift, llm, mode, s)] for s in eval_seeds], seeds=eval_seeds,
                memory=mode, llm=llm, shift=shift, scenario=scenarios[shift], settings=settings,
            )  # fmt: skip  # type: ignore[arg-type]
        score_recovery_to_best(list(rows.values()), shift_epoch)
        variants += rows.values()
        targets[f"{shift}/{llm}"] = compare_targets(rows["off"], rows["warm"], shift_epoch)
    return AdaptationReport(
        scenario=base.name,
        settings=settings,
        shifts={s: describe_shift(base, s, settings) for s in shifts},
        variants=variants,
        targets=targets,
    )


def score_recovery_to_best(rows: Sequence[VariantResult], shift_epoch: int) -> None:
    """Fill each row's recovery to the lowest steady state among `rows` (one shift and LM),
    on the seed-averaged curve and per seed."""

    def to_best(curves: Sequence[Sequence[float | None]]) -> list[int | None]:
        levels = [recovery_epochs(c, shift_epoch)[1] for c in curves]
        known = [x for x in levels if x is not None]
        if not known:
            return [None] * len(curves)
        return [recovery_epochs(c, shift_epoch, steady=min(known))[0] for c in curves]

    for row, rec in zip(rows, to_best([r.epoch_mean_latency_s for r in rows]), strict=True):
        row.recovery_to_best_epochs = rec
    by_seed = [r.epoch_mean_latency_s_by_seed for r in rows]
    for k in range(min(len(b) for b in by_seed)):
        for row, rec in zip(rows, to_best([b[k] for b in by_seed]), strict=True):
            row.recovery_to_best_epochs_by_seed.append(rec)


def _at_most_half(r_off: int | None, r_warm: int | None) -> bool | None:
    if r_off is None and r_warm is None:
        return None
    return r_warm is not None and (r_off is None or 2 * r_warm <= r_off)


TRANSIENT_RISE = 0.25
"""A shift disrupts the city when, with memory off, the worst of the first six epochs after it
is this much above the level before it. Demand moving across bristol does not: its worst
epoch is 13% above (backhaul adds milliseconds, and every router reaches every site), within
the epoch-to-epoch noise, so its "recovery" would count noise epochs."""


def has_transient(
    means: Sequence[float | None],
    shift_epoch: int,
    *,
    rise: float = TRANSIENT_RISE,
    peak_within: int = 6,
) -> bool | None:
    """Whether the curve rises more than `rise` above its pre-shift level (the median of the
    epochs before the shift, the first one, a cold start, left out) within `peak_within`
    epochs of the shift; None without epochs on either side."""
    before = [x for x in means[1:shift_epoch] if x is not None]
    early = [x for x in means[shift_epoch : shift_epoch + peak_within] if x is not None]
    if not before or not early:
        return None
    return max(early) > float(np.median(before)) * (1 + rise)


def compare_targets(
    off: VariantResult, warm: VariantResult, shift_epoch: int
) -> dict[str, bool | None]:
    """The issue's targets for one (shift, llm), None where a figure is missing; and the
    recovery target again against the best steady state (`recovery_to_best_epochs`). Without
    a transient (`has_transient` on off's curve) there is nothing to recover from: the
    recovery targets are None and only the latency target is judged."""
    l_off, l_warm = off.post_shift_mean_latency_s, warm.post_shift_mean_latency_s
    lower = None if l_off is None or l_warm is None else l_warm < l_off
    transient = has_transient(off.epoch_mean_latency_s, shift_epoch)
    judged = transient is not False
    return {
        "off_has_transient": transient,
        "warm_recovery_at_most_half_of_off": (
            _at_most_half(off.recovery_epochs, warm.recovery_epochs) if judged else None
        ),
        "warm_post_shift_latency_lower": lower,
        "warm_recovery_to_best_at_most_half_of_off": (
            _at_most_half(off.recovery_to_best_epochs, warm.recovery_to_best_epochs)
            if judged
            else None
        ),
    }


def write_adaptation_plots(report: AdaptationReport, out_dir: Path) -> list[Path]:
    """One PNG per shift: mean latency per planning epoch, a line per (memory, llm)."""
    from edgeagents.experiments.plots import pyplot, save_figure

    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    epoch_s = report.settings.planning_epoch_s
    paths = []
    for shift, what in report.shifts.items():
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for v in report.variants:
            if v.shift != shift:
                continue
            xs = [(k + 0.5) * epoch_s for k in range(len(v.epoch_mean_latency_s))]
            ys = [np.nan if y is None else y for y in v.epoch_mean_latency_s]
            style = "-" if v.llm != "none" else "--"
            rec, best = (
                "never" if r is None else r for r in (v.recovery_epochs, v.recovery_to_best_epochs)
            )
            label = f"{v.memory}, llm {v.llm} (recovery {rec}, to best {best})"
            ax.plot(xs, ys, style, marker=".", label=label)
        first = next((v for v in report.variants if v.shift == shift), None)
        if first is not None and first.epoch_mean_bound_s:
            xs = [(k + 0.5) * epoch_s for k in range(len(first.epoch_mean_bound_s))]
            ys = [np.nan if y is None else y for y in first.epoch_mean_bound_s]
            ax.plot(xs, ys, ":", color="grey", label="zero-queue bound of the same prompts")
        ax.axvline(report.settings.shift_at_s, color="grey", lw=1)
        ax.set_xlabel(f"arrival time, s (planning epochs of {epoch_s:g} s)")
        ax.set_ylabel("mean latency of the epoch's prompts, s")
        ax.set_title(f"{report.scenario}: {what}")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        paths.append(save_figure(fig, out_dir / f"adaptation-{shift}.png", plt))
    return paths


if __name__ == "__main__":
    job_file, out_file = sys.argv[1:3]
    curve = run_job(EpisodeJob.model_validate_json(Path(job_file).read_text()))
    Path(out_file).write_text(curve.model_dump_json())
