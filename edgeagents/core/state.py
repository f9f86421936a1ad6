"""The typed state every part of edgeagents shares.

These pydantic models cross every boundary: scenario files, the simulator, the agents'
prompts and answers, and (later) the Ray Serve gateway. Internal hot loops of the simulator use
plain slotted classes instead; they convert to these models at the edges.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelKind = Literal["llm", "vlm", "text-to-image", "speech-to-text"]
"""What a model does; picks the latency form used for it."""

Modality = Literal["text", "image", "audio"]

EngineRegime = Literal["hf-eager", "optimized"]
"""`hf-eager`: plain transformers code (decode launch-bound, ~60 ms a step on an H200).
`optimized`: a vLLM-class engine (decode near weights/bandwidth, CUDA graphs)."""

BatchingMode = Literal["iteration", "static"]
"""How a replica batches: `iteration` (continuous) or `static` (a batch runs to completion)."""

DecisionPath = Literal["lm", "repaired", "fallback", "tools", "baseline"]
"""Who produced a decision: the LM as answered, the LM after repair, the deterministic
fallback (LM disabled, failed or timed out), the tools alone (one feasible option, nothing for
an LM to choose), or a baseline policy."""

ReplicaState = Literal["loading", "ready"]

RefusalReason = Literal[
    "model_not_deployed",
    "no_reachable_replica",
    "queue_full",
    "site_failed",
    "preempted_too_often",
    "result_unreachable",
    "episode_ended",
]
"""Why a prompt was refused. Every prompt ends served or refused with one of these."""
REFUSAL_REASONS: tuple[RefusalReason, ...] = get_args(RefusalReason)
"""The reasons in order: an outcome array stores a refusal as its index here."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuType(_Frozen):
    """Datasheet figures of a GPU type; latency scales from the measured H200 by their ratios."""

    name: str = Field(description="GPU type name, e.g. 'L4'.")
    memory_gb: float = Field(gt=0, description="Usable device memory in GB (1e9 bytes).")
    bf16_tflops: float = Field(gt=0, description="Dense bf16 tensor throughput, TFLOP/s.")
    memory_bandwidth_gbps: float = Field(gt=0, description="Device memory bandwidth, GB/s.")


class GpuSlot(_Frozen):
    """GPUs of one type installed at a site."""

    type: str = Field(description="Name of a GPU type in the scenario's catalogue.")
    count: int = Field(default=1, ge=1, le=64, description="How many GPUs of this type.")


class Site(_Frozen):
    """An edge site: a server room next to a radio cell, with GPUs and a backhaul port."""

    name: str = Field(description="Unique site name.")
    x_km: float = Field(default=0.0, description="East coordinate in km (for plots, mobility).")
    y_km: float = Field(default=0.0, description="North coordinate in km.")
    gpus: list[GpuSlot] = Field(min_length=1, description="GPUs installed at the site.")
    cpu_cores: int = Field(default=16, ge=1, description="Host CPU cores.")
    aliases: tuple[str, ...] = Field(
        default=(), description="Other names operators use for it in notices."
    )
    load_gbps: float = Field(
        default=1.4,
        gt=0,
        description="Weights load rate from local disk to GPU, GB/s (1.3-1.6 measured cold on an "
        "H200 host with safetensors).",
    )


class Cell(_Frozen):
    """A radio cell: where users are and how fast their radio link is."""

    name: str = Field(description="Unique cell name.")
    site: str = Field(description="The site whose base station serves this cell.")
    users: int = Field(ge=0, description="Resident user population (weights where prompts start).")
    uplink_mbps: float = Field(gt=0, description="Per-user uplink rate, Mbit/s.")
    downlink_mbps: float = Field(gt=0, description="Per-user downlink rate, Mbit/s.")
    radio_rtt_ms: float = Field(default=10.0, ge=0, description="Radio round trip, ms.")


class Link(_Frozen):
    """A backhaul link between two sites (undirected)."""

    a: str = Field(description="One end (site name).")
    b: str = Field(description="Other end (site name).")
    latency_ms: float = Field(ge=0, description="One-way propagation and switching delay, ms.")
    bandwidth_gbps: float = Field(gt=0, description="Capacity, Gbit/s.")


class ModelSpec(_Frozen):
    """A model in the catalogue: what it consumes and produces, how big, which profile."""

    name: str = Field(description="Unique model name, as clients ask for it.")
    kind: ModelKind = Field(description="Latency form: llm, vlm, text-to-image, speech-to-text.")
    input_modality: tuple[Modality, ...] = Field(min_length=1, description="What a prompt carries.")
    output_modality: Modality = Field(description="What the result is.")
    profile: str = Field(description="Measured profile of the main network (see profiles).")
    encoder_profile: str | None = Field(
        default=None, description="Measured profile of a vision encoder (VLMs)."
    )
    weights_gb: float = Field(gt=0, description="GPU memory of the weights, GB.")
    kv_bytes_per_token: int = Field(
        default=0, ge=0, description="KV-cache bytes per token (decoder LMs); 0 if none."
    )
    activation_gb_per_item: float = Field(
        default=0.0, ge=0, description="Working memory per batched item (non-LM models), GB."
    )
    workspace_gb: float = Field(default=1.0, ge=0, description="Fixed runtime workspace, GB.")
    typical_context_tokens: int = Field(
        default=1024, ge=1, description="Context length that sizes the KV reservation per item."
    )
    max_batch: int = Field(default=32, ge=1, description="Default batch limit of a replica.")
    batching: BatchingMode = Field(
        default="iteration",
        description="iteration: a prompt joins the running batch at once and leaves when done "
        "(vLLM-class engines); static: an idle replica takes a batch from its queue, runs it to "
        "completion and returns every result at its end (plain HF generate, llama.cpp's Python "
        "binding, the CPU servers of serving/).",
    )
    init_s: float = Field(
        default=3.0, ge=0, description="Process start-up and model construction before weights."
    )
    slo_s: float = Field(gt=0, description="End-to-end latency objective for SLO attainment, s.")
    aliases: tuple[str, ...] = Field(
        default=(), description="Other names operators use for it in notices."
    )

    def memory_gb(self, max_batch: int) -> float:
        """GPU memory one replica reserves at a batch limit: weights, workspace, per-item state."""
        per_item = (
            self.kv_bytes_per_token * self.typical_context_tokens / 1e9
            + self.activation_gb_per_item
        )
        return self.weights_gb + self.workspace_gb + per_item * max_batch


class Prompt(_Frozen):
    """One user prompt: metadata, and the text only as an excluded field, so no dump, log or
    agent context built from prompts can carry it."""

    id: int = Field(ge=0, description="Unique within a workload.")
    model: str = Field(description="Model asked for.")
    cell: str = Field(description="Cell the user sent it from.")
    arrival_s: float = Field(ge=0, description="When it was sent, simulated seconds.")
    input_tokens: int = Field(default=0, ge=0, description="Text tokens in.")
    output_tokens: int = Field(default=0, ge=0, description="Text tokens to generate.")
    images: int = Field(default=0, ge=0, description="Images attached (VLM).")
    audio_s: float = Field(default=0.0, ge=0, description="Seconds of audio (speech-to-text).")
    resolution_px: int = Field(default=0, ge=0, description="Side of a generated image, px.")
    steps: int = Field(default=0, ge=0, description="Denoising steps (text-to-image).")
    text: str | None = Field(
        default=None,
        exclude=True,
        repr=False,
        description="The user's text: served, never serialized, never in an agent's context.",
    )


class Deployment(_Frozen):
    """One replica of a model placed on a GPU of a site."""

    replica_id: int = Field(description="Unique within an environment run.")
    site: str
    model: str
    gpu_index: int = Field(ge=0, description="Index of the GPU within the site (0-based).")
    state: ReplicaState
    ready_at_s: float = Field(description="When it serves (past if ready).")
    compute_share: float = Field(gt=0, le=1, description="Share of the GPU's compute.")
    max_batch: int = Field(ge=1)
    memory_gb: float = Field(ge=0, description="GPU memory it reserves.")


class ReplicaTelemetry(_Frozen):
    """Live and windowed figures of one replica."""

    deployment: Deployment
    queue_len: int = Field(ge=0, description="Prompts waiting, not yet in the batch.")
    running: int = Field(ge=0, description="Prompts in the running batch.")
    busy_share: float = Field(ge=0, le=1, description="Share of the window with work.")
    served: int = Field(ge=0, description="Prompts completed in the window.")


class GpuTelemetry(_Frozen):
    index: int
    type: str
    memory_gb: float
    free_memory_gb: float
    compute_share_free: float = Field(description="1 minus the shares of replicas on it.")


class SiteTelemetry(_Frozen):
    site: str
    up: bool
    gpus: list[GpuTelemetry]
    loaded_models: list[str] = Field(description="Models with a ready or loading replica.")
    queue_len: int = Field(ge=0)
    running: int = Field(ge=0)
    busy_share: float = Field(ge=0, le=1, description="Mean busy share of its replicas.")


class ModelTelemetry(_Frozen):
    """Demand and service of one model over the window."""

    model: str
    arrivals_per_s: float = Field(ge=0)
    arrivals_per_s_by_cell: dict[str, float]
    served: int = Field(ge=0)
    refused: int = Field(ge=0)
    mean_latency_s: float | None = None
    p50_latency_s: float | None = None
    p95_latency_s: float | None = None
    p99_latency_s: float | None = None
    queue_len: int = Field(ge=0, description="Waiting prompts over all its replicas.")
    replicas: int = Field(ge=0)
    mean_input_tokens: float | None = Field(
        default=None,
        ge=0,
        description="Mean text tokens in per prompt arrived in the window (None: none "
        "arrived, or the city does not count them: the Ray Serve city does not).",
    )
    mean_output_tokens: float | None = Field(
        default=None,
        ge=0,
        description="Mean tokens generated per prompt served in the window (None: as above).",
    )


class Telemetry(_Frozen):
    """What an agent or a baseline sees at a control tick."""

    time_s: float
    window_s: float
    sites: list[SiteTelemetry]
    replicas: list[ReplicaTelemetry]
    models: list[ModelTelemetry]
    down_links: list[tuple[str, str]] = Field(default_factory=list)
    refusals_by_reason: dict[str, int] = Field(
        default_factory=dict, description="Refusals in the window, by reason."
    )
    replicas_per_model_site: int | None = Field(
        default=None,
        ge=1,
        description="At most this many replicas of one model at one site (the Ray Serve "
        "city: 1, a deployment per pair); None: no limit (the simulated city).",
    )

    def window_demand(self) -> tuple[dict[str, float], dict[str, float]]:
        """Prompts/s per model and share of prompts per cell over the telemetry window."""
        rates = {m.model: m.arrivals_per_s for m in self.models}
        by_cell: dict[str, float] = {}
        for m in self.models:
            for cell, rate in m.arrivals_per_s_by_cell.items():
                by_cell[cell] = by_cell.get(cell, 0.0) + rate
        total = sum(by_cell.values())
        return rates, ({c: r / total for c, r in by_cell.items()} if total > 0 else {})


class SiteWeight(_Frozen):
    """A site's share of a model's prompts: finite, since the router samples by it and every
    answer that shows the policy is JSON."""

    site: str
    weight: float = Field(ge=0, allow_inf_nan=False)


class RoutingPolicy(_Frozen):
    """For each model, candidate sites and their weights. The data-plane router samples by
    weight, corrected by live queue length; it never calls an LM."""

    routes: dict[str, list[SiteWeight]] = Field(default_factory=dict)


DeploymentOp = Literal["unload", "configure", "load"]
"""In the order a decision applies them: unloads free memory before loads need it."""
APPLY_ORDER: tuple[DeploymentOp, ...] = get_args(DeploymentOp)


class DeploymentAction(_Frozen):
    """Change one site's replicas. `load` adds a replica, `unload` removes one (its prompts are
    re-dispatched), `configure` sets share and batch of the model's replicas at the site."""

    site: str
    model: str
    op: DeploymentOp
    gpu_index: int | None = Field(default=None, ge=0, description="None: first GPU that fits.")
    compute_share: float = Field(default=1.0, gt=0, le=1)
    max_batch: int | None = Field(default=None, ge=1, description="None: the model's default.")


def in_apply_order(actions: list[DeploymentAction]) -> list[DeploymentAction]:
    """`actions` as every environment applies them (`APPLY_ORDER`; stable within an op)."""
    return sorted(actions, key=lambda a: APPLY_ORDER.index(a.op))


class Forecast(_Frozen):
    """Expected demand: prompts/s per model and the share of prompts from each cell."""

    rates_per_s: dict[str, float] = Field(description="Model -> prompts/s.")
    cell_weights: dict[str, float] = Field(description="Cell -> share of prompts (sums to 1).")
    peak_rates_per_s: dict[str, float] = Field(
        default_factory=dict,
        description="Model -> the highest windowed prompts/s seen lately (decaying): how high "
        "its ordinary bursts go.",
    )
    input_tokens: dict[str, float] = Field(
        default_factory=dict,
        description="Model -> mean text tokens in per prompt (smoothed): the twin sizes its "
        "prompts by it.",
    )
    output_tokens: dict[str, float] = Field(
        default_factory=dict, description="Model -> mean tokens generated per prompt (smoothed)."
    )


class Plan(_Frozen):
    """The planner's long-term intent: placement, per-model priorities, demand split."""

    placement: dict[str, list[str]] = Field(
        default_factory=dict, description="Site -> models that should live there."
    )
    priorities: dict[str, float] = Field(
        default_factory=dict, description="Model -> fairness priority (1 = neutral)."
    )
    site_share: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Model -> site -> share of demand."
    )
    actions: list[DeploymentAction] = Field(
        default_factory=list, description="The moves that reach the placement, for deployers."
    )
    epoch: int = Field(default=0, ge=0, description="Planning epoch that made it.")
    predicted_mean_latency_s: float | None = None
    predicted_jain: float | None = None
    notes: str = ""
    source: Literal["tools", "lm", "memory"] = Field(
        default="tools",
        description="Whose plan it is: the tools' menu, the LM's own, or a remembered one.",
    )


class AgentRecord(_Frozen):
    """What one agent (or baseline) did in a step and how."""

    agent: str
    path: DecisionPath
    rationale: str = ""
    wall_s: float = Field(default=0.0, ge=0)
    lm_calls: int = Field(default=0, ge=0)
    tokens: int = Field(default=0, ge=0)
    lm_choice: int | None = None
    """The menu index the LM answered, before any repair; None when no LM answered."""


class Decision(_Frozen):
    """What one control step produced."""

    time_s: float
    routing: RoutingPolicy | None = None
    actions: list[DeploymentAction] = Field(default_factory=list)
    plan: Plan | None = None
    records: list[AgentRecord] = Field(default_factory=list)


class RefusedAction(_Frozen):
    action: DeploymentAction
    reason: str


class ApplyReport(_Frozen):
    """What the environment did with a decision."""

    time_s: float
    applied: list[DeploymentAction] = Field(default_factory=list)
    refused: list[RefusedAction] = Field(default_factory=list)
    load_s: dict[int, float] = Field(
        default_factory=dict, description="Replica id -> seconds until it serves."
    )


class PromptOutcome(_Frozen):
    """How one prompt ended: served with a latency breakdown, or refused with a reason."""

    prompt_id: int
    model: str
    cell: str
    arrival_s: float
    site: str | None = None
    latency_s: float | None = None
    uplink_s: float = 0.0
    backhaul_s: float = 0.0
    queue_s: float = 0.0
    cold_s: float = 0.0
    infer_s: float = 0.0
    refused: RefusalReason | None = None

    @model_validator(mode="after")
    def _served_xor_refused(self) -> PromptOutcome:
        if (self.latency_s is None) == (self.refused is None):
            raise ValueError("an outcome is either served (latency_s) or refused (reason)")
        return self
