"""A suite file: scenarios that differ where real cities differ, each a base scenario (a
built-in, a YAML file, or a generated region) plus declared changes. The shipped suite is
`edgeagents/scenarios/suite.yaml`; `edgeagents bench suite --suite PATH` runs another.

Changes apply in this order: the base; `gpus` (GPU types swapped, the initial placement then
re-planned by the region generator's rule, since the base's was made for its GPUs); `mix`
(shares of the total rate); `text_shape` (the text LLM's token counts drawn from a fitted
shape instead of its trace); `bursts` (every demand not replaying a trace becomes a two-state
MMPP); then the suite's load rule (`load.at_load`) scales every rate by one factor.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgeagents.core.region import generate_region, plan_placement, replica_shares
from edgeagents.core.region_spec import RegionSpec
from edgeagents.core.scenario import Scenario, ScenarioError, load_scenario, yaml_mapping
from edgeagents.core.text_shapes import TEXT_SHAPES

SHIPPED_SUITE = "suite"
REFERENCE_SCENARIO = "bristol"


class SuiteError(ValueError):
    """A suite file that cannot be used; the message is one line naming the entry and field."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegionChange(_Spec):
    """Generate the city with `edgeagents scenario generate`'s generator."""

    sites: int = Field(ge=1, le=10_000)
    seed: int = Field(default=0, ge=0)


class Bursts(_Spec):
    """Two-state MMPP parameters given to every demand that does not replay a trace."""

    burst_factor: float = Field(default=4.0, ge=1)
    burst_share: float = Field(default=0.1, gt=0, lt=1)
    mean_burst_s: float = Field(default=20.0, gt=0)


class SuiteEntry(_Spec):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str = ""
    base: str | None = Field(default=None, description="Built-in scenario or YAML path.")
    region: RegionChange | None = Field(default=None, description="Instead of base: generate.")
    gpus: dict[str, str] = Field(default_factory=dict, description="GPU type -> its stand-in.")
    mix: dict[str, float] = Field(
        default_factory=dict,
        description="Model kind or name -> share of the total arrival rate; the models not "
        "named share the rest in proportion to their base rates.",
    )
    text_shape: str | None = Field(default=None, description="See edgeagents.core.text_shapes.")
    bursts: Bursts | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SuiteEntry:
        if self.base is not None and self.region is not None:
            raise ValueError("base and region: give one of them")
        if self.text_shape is not None and self.text_shape not in TEXT_SHAPES:
            raise ValueError(
                f"text_shape: unknown {self.text_shape!r} (known: {', '.join(TEXT_SHAPES)})"
            )
        if any(v < 0 for v in self.mix.values()) or sum(self.mix.values()) > 1 + 1e-9:
            raise ValueError("mix: shares are >= 0 and sum to at most 1")
        return self


class SuiteFile(_Spec):
    description: str = ""
    reference: str = Field(
        default=REFERENCE_SCENARIO,
        description="The city whose estimated utilisation every scenario is scaled to.",
    )
    scenarios: list[SuiteEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> SuiteFile:
        seen: set[str] = set()
        for i, e in enumerate(self.scenarios):
            if e.name in seen:
                raise ValueError(f"scenarios[{i}].name: duplicate name {e.name!r}")
            seen.add(e.name)
        return self

    def names(self) -> list[str]:
        return [e.name for e in self.scenarios]


def load_suite(path: str | Path | None = None) -> SuiteFile:
    """The shipped suite (None) or a suite YAML file; raises `SuiteError` with one line."""
    if path is None:
        from importlib import resources

        text = resources.files("edgeagents.scenarios").joinpath(f"{SHIPPED_SUITE}.yaml")
        source, body = SHIPPED_SUITE, text.read_text()
    else:
        source = str(path)
        try:
            body = Path(path).read_text()
        except OSError as e:
            raise SuiteError(f"{path}: cannot read suite file ({e.strerror or e})") from e
    data = yaml_mapping(body, source, SuiteError, "a suite is a YAML mapping with `scenarios`")
    try:
        return SuiteFile.model_validate(data)
    except ValidationError as e:
        raise SuiteError(f"{source}: {_where(e, data)}") from e


def _where(e: ValidationError, data: dict) -> str:
    err = e.errors(include_url=False)[0]
    loc = list(err["loc"])
    if len(loc) >= 2 and loc[0] == "scenarios" and isinstance(loc[1], int):
        entries = data.get("scenarios") or []
        name = entries[loc[1]].get("name") if isinstance(entries[loc[1]], dict) else None
        loc[1] = f"[{loc[1]}]" + (f" ({name})" if name else "")
    text = ".".join(str(p) for p in loc).replace(".[", "[")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "required field is missing"
    elif err["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{text}: {msg}" if text else msg


def base_scenario(entry: SuiteEntry) -> Scenario:
    if entry.region is not None:
        return generate_region(RegionSpec(sites=entry.region.sites, seed=entry.region.seed))
    return load_scenario(entry.base or REFERENCE_SCENARIO)


def build_scenario(entry: SuiteEntry) -> Scenario:
    """The entry's city before the load rule; raises ScenarioError (one line) if it is not
    a valid scenario."""
    sc = base_scenario(entry)
    data = sc.model_dump(mode="json", exclude_unset=True)
    data["name"] = entry.name
    if entry.description:
        data["description"] = entry.description
    if entry.gpus:
        _swap_gpus(sc, entry.gpus, data)
    demands = data["workload"]["demands"]
    if entry.mix:
        _apply_mix(sc, entry.mix, demands)
    kinds = {m.name: m.kind for m in sc.models}
    if entry.text_shape is not None:
        for d in demands:
            if kinds[d["model"]] == "llm":
                d.pop("trace", None)
                d.pop("trace_offset_s", None)
                d["sizes"] = {**d.get("sizes", {}), "shape": entry.text_shape}
    if entry.bursts is not None:
        for d in demands:
            if d.get("trace") is None:
                d["arrivals"] = {**d["arrivals"], "process": "mmpp",
                                 **entry.bursts.model_dump()}  # fmt: skip
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ScenarioError(f"{loc}: {err['msg'].removeprefix('Value error, ')}") from None


def _swap_gpus(sc: Scenario, swap: dict[str, str], data: dict) -> None:
    catalogue = sc.gpu_catalogue
    for old, new in swap.items():
        for t in (old, new):
            if t not in catalogue:
                raise ScenarioError(f"gpus: unknown GPU type {t!r} (known: "
                                    f"{', '.join(sorted(catalogue))})")  # fmt: skip
    for site in data["sites"]:
        site["gpus"] = [{**g, "type": swap.get(g["type"], g["type"])} for g in site["gpus"]]
    gpus = [
        (s["name"], [catalogue[g["type"]] for g in s["gpus"] for _ in range(g.get("count", 1))])
        for s in data["sites"]
    ]
    try:
        data["placement"] = plan_placement(gpus, list(sc.models), replica_shares(sc), 2)
    except ValueError as e:
        raise ScenarioError(f"gpus: {e}") from None


def _apply_mix(sc: Scenario, mix: dict[str, float], demands: list[dict]) -> None:
    kinds = {m.name: m.kind for m in sc.models}
    named = set(mix)
    unknown = named - set(kinds) - set(kinds.values())
    if unknown:
        raise ScenarioError(f"mix: {', '.join(sorted(unknown))} is no model or kind of the city")
    total = sum(d["arrivals"]["rate_per_s"] for d in demands)

    def key(d: dict) -> str | None:
        m = d["model"]
        return m if m in named else (kinds[m] if kinds[m] in named else None)

    rest = [d for d in demands if key(d) is None]
    rest_rate = sum(d["arrivals"]["rate_per_s"] for d in rest)
    left = 1.0 - sum(mix.values())
    for k in named:
        group = [d for d in demands if key(d) == k]
        if not group:
            raise ScenarioError(f"mix: {k} has no demand in the city")
        for d in group:
            d["arrivals"] = {**d["arrivals"], "rate_per_s": float(total * mix[k] / len(group))}
    for d in rest:
        share = d["arrivals"]["rate_per_s"] / rest_rate if rest_rate else 0.0
        d["arrivals"] = {**d["arrivals"], "rate_per_s": float(total * left * share)}
