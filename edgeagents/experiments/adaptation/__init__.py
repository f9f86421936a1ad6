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

from edgeagents.experiments.adaptation.episode import (
    EpisodeCurve,
    EpisodeJob,
    EpisodeKey,
    planner_lm_picks,
    run_in_new_process,
    run_job,
)
from edgeagents.experiments.adaptation.plots import write_adaptation_plots
from edgeagents.experiments.adaptation.schedule import (
    WARMUP_SEED_OFFSET,
    EpisodeSchedule,
    FinishedEpisode,
    default_runner,
    run_adaptation,
)
from edgeagents.experiments.adaptation.scoring import (
    RECOVERY_BAND,
    TRANSIENT_RISE,
    AdaptationReport,
    VariantResult,
    compare_targets,
    has_transient,
    recovery_epochs,
    score_recovery_to_best,
    score_report,
    score_variant,
)
from edgeagents.experiments.adaptation.settings import (
    SHIFTS,
    AdaptationSettings,
    MemoryMode,
    describe_shift,
    shift_scenario,
)

__all__ = [
    "RECOVERY_BAND",
    "SHIFTS",
    "TRANSIENT_RISE",
    "WARMUP_SEED_OFFSET",
    "AdaptationReport",
    "AdaptationSettings",
    "EpisodeCurve",
    "EpisodeJob",
    "EpisodeKey",
    "EpisodeSchedule",
    "FinishedEpisode",
    "MemoryMode",
    "VariantResult",
    "compare_targets",
    "default_runner",
    "describe_shift",
    "has_transient",
    "planner_lm_picks",
    "recovery_epochs",
    "run_adaptation",
    "run_in_new_process",
    "run_job",
    "score_recovery_to_best",
    "score_report",
    "score_variant",
    "shift_scenario",
    "write_adaptation_plots",
]
