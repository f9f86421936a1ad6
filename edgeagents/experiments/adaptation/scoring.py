"""The adaptation experiment's figures from its episodes' curves: per variant the recovery,
steady state and post-shift latency and fairness; per (shift, LM) the issue's targets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeagents.core.scenario import Scenario
from edgeagents.experiments.adaptation.episode import EpisodeCurve, EpisodeKey
from edgeagents.experiments.adaptation.settings import (
    AdaptationSettings,
    MemoryMode,
    describe_shift,
)

RECOVERY_BAND = 0.10


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
    early_replans: int = Field(
        description="Plans made between epochs (an outage, a notice, a recalled shift)."
    )
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


def score_report(
    base: Scenario,
    curves: Mapping[EpisodeKey, EpisodeCurve],
    *,
    shifts: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    eval_seeds: Sequence[int],
    scenarios: Mapping[str, Scenario],
    settings: AdaptationSettings,
) -> AdaptationReport:
    """The report of a finished run: per (shift, LM) of `pairs`, its off, cold and warm
    variants scored over the evaluation seeds, their recoveries to the best, and the targets."""
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
