"""The scenario suite (`edgeagents bench suite`): cities that differ where real cities
differ (text shapes, model mix, bursts, GPU classes, size), each at one load rule's demand,
every baseline and the agents on the same seeds; the agents' ratios to round-robin, to the
best baseline and to the zero-queue bound, and their normalized Jain, against the targets."""

from __future__ import annotations

from edgeagents.experiments.suite.load import at_load, capacity_per_s, utilisation
from edgeagents.experiments.suite.plots import write_suite_plot
from edgeagents.experiments.suite.runner import (
    LOAD_RULE,
    TARGET_JAIN,
    TARGET_TO_LOWER_BOUND_GEOMEAN,
    TARGET_TO_ROUND_ROBIN,
    FailedScenario,
    ScenarioResult,
    SeedFigures,
    SuiteReport,
    SummaryRow,
    geomean,
    run_suite,
    summarize_suite,
)
from edgeagents.experiments.suite.spec import (
    SHIPPED_SUITE,
    SuiteEntry,
    SuiteError,
    SuiteFile,
    build_scenario,
    load_suite,
)

__all__ = [
    "LOAD_RULE",
    "SHIPPED_SUITE",
    "TARGET_JAIN",
    "TARGET_TO_LOWER_BOUND_GEOMEAN",
    "TARGET_TO_ROUND_ROBIN",
    "FailedScenario",
    "ScenarioResult",
    "SeedFigures",
    "SuiteEntry",
    "SuiteError",
    "SuiteFile",
    "SuiteReport",
    "SummaryRow",
    "at_load",
    "build_scenario",
    "capacity_per_s",
    "geomean",
    "load_suite",
    "run_suite",
    "summarize_suite",
    "utilisation",
    "write_suite_plot",
]
