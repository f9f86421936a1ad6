"""Which LM each agent uses: from the CLI, a YAML file, or the environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeagents.agents.llm import LMConfig, LMConfigError, parse_llm_spec

AgentName = Literal["planner", "scheduler", "deployer"]
AGENTS: tuple[AgentName, ...] = ("planner", "scheduler", "deployer")

DEFAULT_TIMEOUT_S: dict[str, float] = {"planner": 6.0, "scheduler": 1.6, "deployer": 8.0}
"""LM call limits: with the tools' own time, a planner decides within 10 s and a scheduler
within 2 s; past the limit the fallback decides. Deployers share one local model in parallel,
so theirs includes waiting for the others."""


def _default(agent: str, max_tokens: int) -> LMConfig:
    """Each agent its own llama.cpp context, so its constant system prompt stays cached."""
    return LMConfig(timeout_s=DEFAULT_TIMEOUT_S[agent], max_tokens=max_tokens, instance=agent)


class AgentsLMConfig(BaseModel):
    """One `LMConfig` per agent. YAML: `{planner: {spec: local, timeout_s: 6}, scheduler: ...}`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    planner: LMConfig = Field(
        default_factory=lambda: LMConfig(timeout_s=DEFAULT_TIMEOUT_S["planner"], max_tokens=384)
    )
    scheduler: LMConfig = Field(
        default_factory=lambda: LMConfig(timeout_s=DEFAULT_TIMEOUT_S["scheduler"], max_tokens=96)
    )
    deployer: LMConfig = Field(
        default_factory=lambda: LMConfig(timeout_s=DEFAULT_TIMEOUT_S["deployer"], max_tokens=96)
    )

    @classmethod
    def from_file(cls, path: str | Path) -> AgentsLMConfig:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except OSError as e:
            raise LMConfigError(f"{p}: cannot read LM config ({e.strerror or e})") from e
        except yaml.YAMLError as e:
            raise LMConfigError(f"{p}: not valid YAML") from e
        try:
            return cls.model_validate(_with_default_timeouts(data))
        except ValidationError as e:
            err = e.errors(include_url=False)[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise LMConfigError(f"{p}: {loc}: {err['msg']}") from e

    def specs(self) -> dict[str, str]:
        return {a: getattr(self, a).spec for a in AGENTS}


def _with_default_timeouts(data: dict) -> dict:
    out = dict(data)
    for agent in AGENTS:
        if isinstance(out.get(agent), dict):
            out[agent] = {"timeout_s": DEFAULT_TIMEOUT_S[agent], "instance": agent, **out[agent]}
    return out


def resolve_lm_config(
    *,
    llm: str | None = None,
    per_agent: dict[str, str | None] | None = None,
    config_path: str | Path | None = None,
) -> AgentsLMConfig:
    """Precedence, highest first: `--planner-llm` etc., `--llm`, env `EDGEAGENTS_PLANNER_LLM`
    etc., env `EDGEAGENTS_LLM`, the YAML file, then `local`."""
    base = AgentsLMConfig.from_file(config_path) if config_path else AgentsLMConfig()
    per_agent = per_agent or {}
    updates = {}
    for agent in AGENTS:
        spec = (
            per_agent.get(agent)
            or llm
            or os.environ.get(f"EDGEAGENTS_{agent.upper()}_LLM")
            or os.environ.get("EDGEAGENTS_LLM")
        )
        if spec:
            parse_llm_spec(spec)
            current: LMConfig = getattr(base, agent)
            updates[agent] = LMConfig.model_validate({**current.model_dump(), "spec": spec})
    return base.model_copy(update=updates)
