"""The adaptation run's episodes: which ones, in what order `jobs` at a time, which wait for
their warm-up, and which a work folder already holds; `run_adaptation` then scores them."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from edgeagents.core.scenario import Scenario
from edgeagents.experiments.adaptation.episode import (
    EpisodeCurve,
    EpisodeJob,
    EpisodeKey,
    run_in_new_process,
)
from edgeagents.experiments.adaptation.scoring import AdaptationReport, score_report
from edgeagents.experiments.adaptation.settings import (
    SHIFTS,
    AdaptationSettings,
    shift_scenario,
)

WARMUP_SEED_OFFSET = 1000


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


@dataclass
class EpisodeSchedule:
    """The episodes of one run, for a thread pool: per (shift, LM) of `pairs` a warm-up, then
    off, cold and warm on each of `seeds`. With `done_dir`, an episode finished there with the
    same job is taken from it, unless it is warm and its warm-up runs again (`rerun`)."""

    root: Path
    settings: AdaptationSettings
    scenarios: dict[str, Scenario]
    pairs: Sequence[tuple[str, str]]
    seeds: Sequence[int]
    runner: Callable[[EpisodeJob], EpisodeCurve]
    done_dir: Path | None = None
    log_dir: Path | None = None
    on_episode: Callable[[str], None] | None = None
    rerun: set[tuple[str, str]] = field(default_factory=set)

    def job(self, shift: str, llm: str, mode: str, seed: int, store: Path | None) -> EpisodeJob:
        log = None
        if self.log_dir is not None:
            log = str(self.log_dir / f"{_tag(shift, llm)}-{mode}-seed{seed}.decisions.jsonl")
        return EpisodeJob(
            scenario=self.scenarios[shift], shift=shift, memory=mode, llm=llm, seed=seed,
            store=str(store) if store else None, settings=self.settings, decision_log=log,
        )  # fmt: skip

    def done(self, j: EpisodeJob) -> EpisodeCurve | None:
        if self.done_dir is None or (j.memory == "warm" and (j.shift, j.llm) in self.rerun):
            return None
        try:
            saved = FinishedEpisode.model_validate_json(_done_path(self.done_dir, j).read_text())
        except (OSError, ValueError):
            return None
        return saved.curve if saved.job == _job_key(j) else None

    def execute(self, j: EpisodeJob, earlier: EpisodeCurve | None) -> EpisodeCurve:
        if self.on_episode is not None:
            what = f"{j.shift} / llm {j.llm} / memory {j.memory} / seed {j.seed}"
            self.on_episode(what + (" (done earlier)" if earlier is not None else ""))
        if earlier is not None:
            return earlier
        curve = self.runner(j)
        if self.done_dir is not None:
            _write_done(self.done_dir, j, curve)
        return curve

    def execute_warm(
        self, j: EpisodeJob, store: Path, warm_up: Future[EpisodeCurve], source: Path
    ) -> EpisodeCurve:
        """A warm episode starts from a copy of its warm-up's store, so it waits for it."""
        warm_up.result()
        earlier = self.done(j)
        if earlier is None:
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(source, store)
        return self.execute(j, earlier)

    def submit_warm_ups(self, pool: Executor) -> dict[tuple[str, str], Future[EpisodeCurve]]:
        warmups: dict[tuple[str, str], Future[EpisodeCurve]] = {}
        for shift, llm in self.pairs:
            store = self.root / f"{_tag(shift, llm)}-warm-up"
            seed = self.settings.seed + WARMUP_SEED_OFFSET
            warm_up = self.job(shift, llm, "warm-up", seed, store)
            earlier = self.done(warm_up)
            if earlier is None:
                shutil.rmtree(store, ignore_errors=True)
                self.rerun.add((shift, llm))
            warmups[(shift, llm)] = pool.submit(self.execute, warm_up, earlier)
        return warmups

    def submit_evaluations(
        self, pool: Executor, warmups: dict[tuple[str, str], Future[EpisodeCurve]]
    ) -> dict[EpisodeKey, Future[EpisodeCurve]]:
        todo: dict[EpisodeKey, Future[EpisodeCurve]] = {}
        for mode in ("off", "cold", "warm"):
            for shift, llm in self.pairs:
                for seed in self.seeds:
                    tag = _tag(shift, llm)
                    store = None if mode == "off" else self.root / f"{tag}-{mode}-{seed}"
                    j = self.job(shift, llm, mode, seed, store)
                    if store is not None and mode == "warm":
                        source = self.root / f"{tag}-warm-up"
                        todo[(shift, llm, mode, seed)] = pool.submit(
                            self.execute_warm, j, store, warmups[(shift, llm)], source
                        )
                        continue
                    earlier = self.done(j)
                    if store is not None and earlier is None:
                        shutil.rmtree(store, ignore_errors=True)
                    todo[(shift, llm, mode, seed)] = pool.submit(self.execute, j, earlier)
        return todo

    def run(self, jobs: int) -> dict[EpisodeKey, EpisodeCurve]:
        """Every evaluation episode's curve; the first failure cancels the episodes not
        started yet and is raised."""
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            # Submitted in this order, a warm episode is taken from the queue only after every
            # warm-up has started, so its wait cannot hold a worker a warm-up needs; off and
            # cold episodes, which need no warm-up, fill the other workers meanwhile.
            warmups = self.submit_warm_ups(pool)
            todo = self.submit_evaluations(pool, warmups)
            everything = [*warmups.values(), *todo.values()]
            finished, _ = wait(everything, return_when=FIRST_EXCEPTION)
            failed = next((f.exception() for f in finished if f.exception()), None)
            if failed is not None:
                for f in everything:
                    f.cancel()
                raise failed
            return {key: f.result() for key, f in todo.items()}


def default_runner(jobs: int) -> Callable[[EpisodeJob], EpisodeCurve]:
    """Each episode in a new process; with `jobs` > 1 its local LM gets its share of the cores
    (unless env `EDGEAGENTS_LM_THREADS` says otherwise)."""
    from edgeagents.agents.llm import LM_THREADS_ENV

    share = max(1, (os.cpu_count() or 1) // max(1, jobs))
    pin = jobs > 1 and not os.environ.get(LM_THREADS_ENV, "").strip()
    return partial(run_in_new_process, lm_threads=share if pin else None)


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
    if runner is None:
        runner = default_runner(jobs)

    settings = settings or AdaptationSettings()
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="edgeagents-adapt-")) if own_dir else Path(workdir)
    eval_seeds = [settings.seed + i for i in range(seeds)]
    pairs = [(shift, llm) for shift in shifts for llm in llms]
    scenarios = {shift: shift_scenario(base, shift, settings) for shift in shifts}
    schedule = EpisodeSchedule(
        root=root, settings=settings, scenarios=scenarios, pairs=pairs, seeds=eval_seeds,
        runner=runner, done_dir=None if own_dir else root / "episodes", log_dir=log_dir,
        on_episode=on_episode,
    )  # fmt: skip
    try:
        curves = schedule.run(jobs)
    finally:
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    return score_report(
        base, curves, shifts=shifts, pairs=pairs, eval_seeds=eval_seeds, scenarios=scenarios,
        settings=settings,
    )  # fmt: skip
