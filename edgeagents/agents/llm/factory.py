"""The one factory that gives every agent its chat model, and the early check that it serves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from edgeagents.agents.llm.config import (
    LMConfig,
    LMConfigError,
    LMSpec,
    gguf_path_for,
    one_line,
    resolve_config,
)
from edgeagents.agents.llm.local import load_llama, shared_chat_llamacpp_class

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


def create_chat_model(
    spec: str | LMConfig | LMSpec = "local", **overrides: Any
) -> BaseChatModel | None:
    """The chat model for a spec; None for `none`.

    `local`: a ChatLlamaCpp on the GGUF file (verbose off, greedy by default); the llama.cpp model
    loads once per (path, n_ctx, n_threads) and is shared by every agent of the process.
    `openai:MODEL`: a ChatOpenAI with base_url, api_key, timeout and max_retries=0.
    Keyword overrides are LMConfig fields (temperature, max_tokens, timeout_s, ...).
    """
    cfg = resolve_config(spec, overrides)
    lm = cfg.lm_spec
    if lm.backend == "none":
        return None
    if lm.backend == "local":
        path = gguf_path_for(lm)
        cls = shared_chat_llamacpp_class()
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
    cfg = resolve_config(spec, overrides)
    lm = cfg.lm_spec
    if lm.backend == "none":
        return
    if lm.backend == "local":
        llama, lock = load_llama(gguf_path_for(lm), cfg.n_ctx, cfg.n_threads)
        try:
            with lock:
                llama.create_completion("ok", max_tokens=1, temperature=0)
        except Exception as e:
            raise LMConfigError(one_line(f"local LM {lm} does not decode: {e}")) from None
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
        reason = one_line(e) or type(e).__name__
        raise LMConfigError(one_line(f"LM {lm} unreachable at {url}: {reason}")) from None
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
        raise LMConfigError(one_line(f"LM {lm} not served at {url}; it serves: {shown}"))
