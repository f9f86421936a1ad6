"""Where `bench faults` injects its faults: a registry of fault targets by name.

A target is an object with `cases` (the cases it knows, in report order, with their kind),
`not_implemented` (case -> (the fault, why it cannot run there): listed as rows, never given a
result), `check()` (the extras it needs are installed), `check_scenario(scenario, settings)`
and `run(scenario, settings, cases, on_progress=...)` -> `FaultsReport`. `sim` is the
simulated city (this package); `ray`, the Ray Serve city, lives in `serving.faults` and is
imported by name only when asked for, so the core never imports Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Protocol

from edgeagents.experiments.faults.report import CaseKind

if TYPE_CHECKING:
    from edgeagents.core.scenario import Scenario
    from edgeagents.experiments.faults.report import FaultsReport, FaultsSettings

OnProgress = Callable[[str, float], None]
"""Called with a case and the share of it done (0 to 1)."""


class FaultTarget(Protocol):
    """A city `bench faults` can break."""

    name: str
    cases: dict[str, CaseKind]
    not_implemented: dict[str, tuple[str, str]]

    def check(self) -> None:
        """Raise `TargetUnavailable` (one line, how to fix it) if the target cannot run here."""

    def check_scenario(self, scenario: Scenario, settings: FaultsSettings) -> None:
        """Raise ValueError (one line) if the campaign cannot run on this city."""

    def run(
        self,
        scenario: Scenario,
        settings: FaultsSettings,
        cases: Sequence[str],
        *,
        on_progress: OnProgress | None = None,
    ) -> FaultsReport:
        """Run the named cases; every row says what it found."""


class TargetUnavailable(RuntimeError):
    """A known target that cannot run here (an extra is missing); the message says the fix."""


FAULT_TARGETS: dict[str, str] = {
    "sim": "edgeagents.experiments.faults.campaign:SIM_TARGET",
    "ray": "serving.faults:RAY_TARGET",
}
"""Target name -> `module:attribute` of its `FaultTarget`, imported when asked for (the
names are `TargetName`'s)."""


def fault_target(name: str) -> FaultTarget:
    """The target called `name`. Raises ValueError for an unknown name (listing the known
    ones) and `TargetUnavailable` when its package cannot be imported here."""
    if name not in FAULT_TARGETS:
        raise ValueError(f"--target {name!r}: expected one of {', '.join(FAULT_TARGETS)}")
    module, _, attr = FAULT_TARGETS[name].partition(":")
    try:
        target: FaultTarget = getattr(import_module(module), attr)
    except ImportError as e:
        raise TargetUnavailable(
            f"--target {name} needs the serve extra: pip install 'edgeagents[serve]' "
            f"({e.name} missing)"
        ) from e
    target.check()
    return target
