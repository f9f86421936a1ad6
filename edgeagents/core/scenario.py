"""Scenarios: a city (sites, cells, backhaul, GPUs), a model catalogue, a workload, events.

A scenario is a YAML file validated into `Scenario` (pydantic, `extra="forbid"`, never mutated
after validation). The built-in default is `bristol` (`edgeagents/scenarios/bristol.yaml`).
"""

from __future__ import annotations

from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import yaml
from pydantic import Field, ValidationError, model_validator

from edgeagents.core.demand import (
    ArrivalConfig,
    DemandShift,
    DiurnalConfig,
    MobilityConfig,
    ModelDemand,
    PromptSizes,
    WorkloadConfig,
)
from edgeagents.core.demand import ScenarioField as _Config
from edgeagents.core.notice import Notice, NoticeError
from edgeagents.core.notice_form import looks_strict, parse_strict
from edgeagents.core.profiles import (
    BUILTIN_GPU_TYPES,
    check_profile,
    known_profiles,
    register_profiles,
)
from edgeagents.core.state import Cell, EngineRegime, GpuType, Link, ModelSpec, Site

__all__ = [
    "ArrivalConfig",
    "CityEvent",
    "ControlConfig",
    "DemandShift",
    "DiurnalConfig",
    "MobilityConfig",
    "ModelDemand",
    "PayloadConfig",
    "PromptSizes",
    "Region",
    "Scenario",
    "ScenarioError",
    "WorkloadConfig",
    "load_scenario",
]


class ScenarioError(ValueError):
    """A scenario or trace that cannot be used; the message is one line naming the field."""


class CityEvent(_Config):
    """A failure or repair at a time."""

    at_s: float = Field(ge=0)
    kind: Literal["site_down", "site_up", "link_down", "link_up"]
    site: str | None = None
    link: tuple[str, str] | None = None


class ControlConfig(_Config):
    tick_s: float = Field(default=5.0, gt=0, description="Short-term control period, s.")
    planning_epoch_s: float = Field(default=120.0, gt=0, description="Planner period, s.")
    window_s: float = Field(default=30.0, gt=0, description="Telemetry window, s.")
    max_queue_per_replica: int = Field(default=256, ge=1, description="Back-pressure bound.")
    max_redispatches: int = Field(default=3, ge=0, description="Re-routes before refusal.")
    drain_limit_s: float = Field(
        default=600.0, ge=0, description="After the last arrival, how long work may finish."
    )


class PayloadConfig(_Config):
    """Bytes on the wire per unit of each modality."""

    bytes_per_token: float = Field(default=4.0, gt=0)
    image_in_kb: float = Field(default=300.0, gt=0, description="A JPEG photo attached to a VLM.")
    image_out_kb_per_mpx: float = Field(default=1500.0, gt=0, description="PNG output per MPx.")
    audio_kb_per_s: float = Field(default=32.0, gt=0, description="16 kHz 16-bit mono PCM.")


class Region(_Config):
    """A planning region: sites its own planner, twin and scheduler decide for."""

    name: str
    sites: list[str] = Field(min_length=1)


class Scenario(_Config):
    """A whole city and what it is asked to do. Validate with `Scenario.from_file()`."""

    name: str
    description: str = ""
    engine: EngineRegime = Field(
        default="optimized", description="Inference regime of LM decode: hf-eager or optimized."
    )
    gpu_types: list[GpuType] = Field(
        default_factory=list, description="Extra GPU types beside the built-in datasheet ones."
    )
    sites: list[Site] = Field(min_length=1)
    cells: list[Cell] = Field(min_length=1)
    links: list[Link] = Field(default_factory=list)
    models: list[ModelSpec] = Field(min_length=1)
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Profiles measured on other hardware, added to the built-in ones under new "
        "names (the shape of a model in edgeagents/data/h200-hf-eager.json; `edgeagents serve` "
        "writes them from its calibration). Use them with a GPU type whose bf16_tflops and "
        "memory_bandwidth_gbps equal the H200's, so they apply unscaled.",
    )
    placement: dict[str, list[str]] = Field(
        default_factory=dict, description="Initial replicas: site -> models (one replica each)."
    )
    workload: WorkloadConfig
    events: list[CityEvent] = Field(default_factory=list)
    notices: list[Notice] = Field(
        default_factory=list,
        description="Operator notices, each delivered to the agents at its publish time.",
    )
    regions: list[Region] = Field(
        default_factory=list,
        description="Planning regions, each site in exactly one, each joined by its own links; "
        "none: the whole city is one region.",
    )
    control: ControlConfig = Field(default_factory=ControlConfig)
    payload: PayloadConfig = Field(default_factory=PayloadConfig)
    duration_s: float = Field(default=600.0, gt=0, description="Default episode length, s.")

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        """Every name a scenario uses is declared, in the order a reader would check them;
        the first problem is the one error."""
        self._check_city()
        self._check_models()
        self._check_demand()
        self._check_notices()
        self._check_regions()
        return self

    def _check_city(self) -> None:
        _check_unique("sites", [s.name for s in self.sites])
        _check_unique("cells", [c.name for c in self.cells])
        _check_unique("models", [m.name for m in self.models])
        sites = {s.name for s in self.sites}
        gpu_types = self.gpu_catalogue
        for i, site in enumerate(self.sites):
            for j, slot in enumerate(site.gpus):
                if slot.type not in gpu_types:
                    raise ValueError(
                        f"sites[{i}].gpus[{j}].type: unknown GPU type {slot.type!r} "
                        f"(known: {', '.join(sorted(gpu_types))}; declare others in gpu_types)"
                    )
        for i, cell in enumerate(self.cells):
            if cell.site not in sites:
                raise ValueError(f"cells[{i}].site: unknown site {cell.site!r}")
        for i, link in enumerate(self.links):
            for end in ("a", "b"):
                if getattr(link, end) not in sites:
                    raise ValueError(f"links[{i}].{end}: unknown site {getattr(link, end)!r}")
            if link.a == link.b:
                raise ValueError(f"links[{i}]: a link joins two different sites, got {link.a!r}")
        if len(self.sites) > 1 and not nx.is_connected(self._graph()):
            raise ValueError("links: the backhaul does not connect every site")

    def _check_models(self) -> None:
        gpu_types = self.gpu_catalogue
        kinds = {m.profile: m.kind for m in self.models}
        for name, data in self.profiles.items():
            if name in kinds:
                try:
                    check_profile(kinds[name], data)
                except ValueError as e:
                    raise ValueError(f"profiles.{name}.{e}") from e
        try:
            register_profiles(self.profiles)
        except ValueError as e:
            raise ValueError(f"profiles: {e}") from e
        profiles = set(known_profiles())
        largest = max(gpu_types[slot.type].memory_gb for s in self.sites for slot in s.gpus)
        for i, m in enumerate(self.models):
            for field in ("profile", "encoder_profile"):
                name = getattr(m, field)
                if name is not None and name not in profiles:
                    raise ValueError(
                        f"models[{i}].{field}: unknown profile {name!r} "
                        f"(known: {', '.join(sorted(profiles))})"
                    )
            if m.memory_gb(1) > largest:
                raise ValueError(
                    f"models[{i}] ({m.name}): needs {m.memory_gb(1):.1f} GB at batch 1, larger "
                    f"than every GPU (largest {largest:.0f} GB)"
                )

    def _check_demand(self) -> None:
        sites = {s.name for s in self.sites}
        models = {m.name for m in self.models}
        cells = {c.name for c in self.cells}
        for site, placed in self.placement.items():
            if site not in sites:
                raise ValueError(f"placement: unknown site {site!r}")
            for name in placed:
                if name not in models:
                    raise ValueError(f"placement.{site}: unknown model {name!r}")
        for i, d in enumerate(self.workload.demands):
            if d.model not in models:
                raise ValueError(f"workload.demands[{i}].model: unknown model {d.model!r}")
            if d.sizes.shape is not None and (kind := self.model(d.model).kind) != "llm":
                raise ValueError(f"workload.demands[{i}].sizes.shape: for llm models, not {kind}")
        for i, sh in enumerate(self.workload.shifts):
            if sh.model is not None and sh.model not in models:
                raise ValueError(f"workload.shifts[{i}].model: unknown model {sh.model!r}")
            if sh.cell is not None and sh.cell not in cells:
                raise ValueError(f"workload.shifts[{i}].cell: unknown cell {sh.cell!r}")
        links = {frozenset((lk.a, lk.b)) for lk in self.links}
        for i, ev in enumerate(self.events):
            if ev.kind.startswith("site") and ev.site not in sites:
                raise ValueError(f"events[{i}].site: unknown site {ev.site!r}")
            if ev.kind.startswith("link") and (ev.link is None or frozenset(ev.link) not in links):
                raise ValueError(f"events[{i}].link: no such link {ev.link!r}")
        if sum(c.users for c in self.cells) == 0:
            raise ValueError("cells: no cell has users, so no prompt can start anywhere")

    def _check_notices(self) -> None:
        for i, n in enumerate(self.notices):
            if n.expect is None:
                continue
            if not looks_strict(n.expect):
                raise ValueError(f"notices[{i}].expect: not in the strict form: {n.expect!r}")
            probe = Notice(text=n.expect, publish_s=n.publish_s)
            try:
                intent = parse_strict(probe, self)
            except NoticeError as e:
                raise ValueError(f"notices[{i}].expect: {e}") from None
            if intent is None or intent.notes:
                why = "; ".join(intent.notes) if intent is not None else "unreadable"
                raise ValueError(f"notices[{i}].expect: {why}")

    def _check_regions(self) -> None:
        _check_unique("regions", [r.name for r in self.regions])
        home: dict[str, str] = {}
        graph = self._graph() if self.regions else None
        names = set(self.site_names)
        homed = {c.site for c in self.cells}
        for i, region in enumerate(self.regions):
            for site in region.sites:
                if site not in names:
                    raise ValueError(f"regions[{i}].sites: unknown site {site!r}")
                if site in home:
                    raise ValueError(
                        f"regions[{i}].sites: site {site!r} is already in region {home[site]!r}"
                    )
                home[site] = region.name
            if not nx.is_connected(graph.subgraph(region.sites)):  # type: ignore[union-attr]
                raise ValueError(f"regions[{i}]: its sites are not joined by links among them")
            if homed.isdisjoint(region.sites):
                raise ValueError(f"regions[{i}]: no cell is homed at its sites")
        if self.regions and len(home) < len(self.sites):
            lost = next(s for s in self.site_names if s not in home)
            raise ValueError(f"regions: site {lost!r} is in no region")

    @property
    def region_sites(self) -> dict[str, list[str]]:
        """Region name -> its sites; a city without regions is one region, `city`."""
        if not self.regions:
            return {"city": self.site_names}
        return {r.name: list(r.sites) for r in self.regions}

    @property
    def gpu_catalogue(self) -> dict[str, GpuType]:
        return {**BUILTIN_GPU_TYPES, **{g.name: g for g in self.gpu_types}}

    def _graph(self) -> nx.Graph:
        g = nx.Graph()
        g.add_nodes_from(s.name for s in self.sites)
        for lk in self.links:
            g.add_edge(lk.a, lk.b, latency_ms=lk.latency_ms, bandwidth_gbps=lk.bandwidth_gbps)
        return g

    @cached_property
    def backhaul(self) -> nx.Graph:
        """The backhaul as a networkx graph (edge attributes latency_ms, bandwidth_gbps)."""
        return self._graph()

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"unknown model {name!r} (known: {', '.join(self.model_names)})")

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    @property
    def site_names(self) -> list[str]:
        return [s.name for s in self.sites]

    @property
    def cell_names(self) -> list[str]:
        return [c.name for c in self.cells]

    @classmethod
    def from_file(cls, path: str | Path) -> Scenario:
        """Load and validate a YAML scenario; raises `ScenarioError` with one line."""
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as e:
            raise ScenarioError(f"{p}: cannot read scenario file ({e.strerror or e})") from e
        return cls.from_yaml(text, source=str(p))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "<scenario>") -> Scenario:
        data = yaml_mapping(text, source, ScenarioError, "a scenario is a YAML mapping, got {got}")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ScenarioError(f"{source}: {_first_error(e)}") from e


def _check_unique(field: str, names: list[str]) -> None:
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            raise ValueError(f"{field}[{i}].name: duplicate name {n!r}")
        seen.add(n)


def yaml_mapping(text: str, source: str, error: type[ValueError], not_mapping: str) -> dict:
    """The YAML mapping in `text`; `error` with one line (`source: ...`, the line of a syntax
    error, or `not_mapping` with `{got}` the type found) when it is not one."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{source}: not valid YAML{where}") from e
    if not isinstance(data, dict):
        raise error(f"{source}: {not_mapping.format(got=type(data).__name__)}")
    return data


def _first_error(e: ValidationError) -> str:
    err = e.errors(include_url=False)[0]
    loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(
        ".[", "["
    )
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        msg = "required field is missing"
    elif err["type"] == "extra_forbidden":
        msg = "unknown field"
    return f"{loc}: {msg}" if loc else msg


BUILTIN_SCENARIOS = ("bristol", "bristol-events")


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A built-in scenario by name, or a YAML file by path."""
    if str(name_or_path) in BUILTIN_SCENARIOS:
        text = resources.files("edgeagents.scenarios").joinpath(f"{name_or_path}.yaml").read_text()
        return Scenario.from_yaml(text, source=str(name_or_path))
    p = Path(name_or_path)
    if not p.exists():
        raise ScenarioError(
            f"{name_or_path}: no such scenario file (built-in: {', '.join(BUILTIN_SCENARIOS)})"
        )
    return Scenario.from_file(p)
