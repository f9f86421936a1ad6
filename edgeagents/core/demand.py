"""The workload part of a scenario file: each model's arrivals and prompt sizes, demand shifts,
the diurnal swing and user mobility (validated with the scenario, `edgeagents.core.scenario`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeagents.core.text_shapes import TEXT_SHAPES


class ScenarioField(BaseModel):
    """A part of a scenario file: frozen once validated, and no field it does not know."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ArrivalConfig(ScenarioField):
    """Arrival process of one model's prompts (city-wide; cells are drawn by population)."""

    process: Literal["poisson", "mmpp"] = Field(
        default="poisson", description="Poisson, or a two-state Markov-modulated Poisson (bursts)."
    )
    rate_per_s: float = Field(ge=0, description="Mean arrival rate, prompts/s.")
    burst_factor: float = Field(
        default=4.0, ge=1, description="MMPP: burst rate over the normal-state rate."
    )
    burst_share: float = Field(
        default=0.1, ge=0, lt=1, description="MMPP: long-run share of time spent in bursts."
    )
    mean_burst_s: float = Field(default=20.0, gt=0, description="MMPP: mean burst length, s.")


class PromptSizes(ScenarioField):
    """Size distribution of one model's prompts; None takes the model kind's default."""

    input_tokens_mean: float | None = Field(default=None, gt=0, description="Lognormal mean.")
    output_tokens_mean: float | None = Field(default=None, gt=0, description="Lognormal mean.")
    sigma: float = Field(default=0.6, ge=0, description="Lognormal shape of token counts.")
    images: int = Field(default=1, ge=0, description="Images per VLM prompt.")
    audio_s_mean: float = Field(default=20.0, gt=0, description="Mean audio length, s.")
    resolution_px: int = Field(default=512, ge=64, le=2048, description="Generated image side.")
    steps: int = Field(default=30, ge=1, le=1000, description="Denoising steps.")
    shape: str | None = Field(
        default=None,
        description="Text LLM only: draw token counts in and out from a shape fitted to a "
        "published trace (edgeagents.core.text_shapes) instead of the lognormal means.",
    )

    @model_validator(mode="after")
    def _known_shape(self) -> PromptSizes:
        if self.shape is not None and self.shape not in TEXT_SHAPES:
            raise ValueError(
                f"shape: unknown text shape {self.shape!r} (known: {', '.join(TEXT_SHAPES)})"
            )
        return self


class ModelDemand(ScenarioField):
    model: str = Field(description="Model name from the catalogue.")
    arrivals: ArrivalConfig
    sizes: PromptSizes = Field(default_factory=PromptSizes)
    trace: str | None = Field(
        default=None,
        description="Replay a trace for arrival times and token counts: 'azure-conv' (built in, "
        "CC-BY 4.0) or a CSV path with TIMESTAMP,ContextTokens,GeneratedTokens.",
    )
    trace_offset_s: float = Field(default=0.0, ge=0, description="Where in the trace to start.")

    @model_validator(mode="after")
    def _one_source(self) -> ModelDemand:
        if self.trace is not None and self.sizes.shape is not None:
            raise ValueError("sizes.shape and trace both set token counts: give one of them")
        return self


class DemandShift(ScenarioField):
    """A step change in demand at a time: a model's rate, or a cell's share of users."""

    at_s: float = Field(ge=0)
    model: str | None = Field(default=None, description="Scale this model's rate (None: all).")
    cell: str | None = Field(
        default=None,
        description="Scale this cell's user weight instead (with `model` set too: only for "
        "that model's prompts).",
    )
    factor: float = Field(ge=0, description="Multiplier applied from at_s on.")


class DiurnalConfig(ScenarioField):
    amplitude: float = Field(default=0.3, ge=0, lt=1, description="Relative swing of all rates.")
    period_s: float = Field(default=3600.0, gt=0)


class MobilityConfig(ScenarioField):
    """Users hop to a neighbouring cell (by backhaul adjacency of their sites)."""

    moves_per_user_per_h: float = Field(default=2.0, ge=0)
    tracked_users: int = Field(default=2000, ge=1, le=200_000, description="Users simulated.")


class WorkloadConfig(ScenarioField):
    demands: list[ModelDemand] = Field(min_length=1)
    shifts: list[DemandShift] = Field(default_factory=list)
    diurnal: DiurnalConfig | None = None
    mobility: MobilityConfig | None = None
