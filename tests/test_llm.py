"""The LM factory: spec parsing, `none`, reachability, timeouts, and one real local call."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from edgeagents.agents.llm import (
    LMCallStats,
    LMConfig,
    LMConfigError,
    LMSpec,
    check_reachable,
    create_chat_model,
    parse_llm_spec,
    schema_hint,
    structured_call,
)
from edgeagents.agents.llm.local import lock_of  # the shared model's lock, to see it freed

pytest.importorskip("langchain_core", reason="needs the `agents` extra")

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult


class SitePick(BaseModel):
    site: Literal["north", "east", "south", "west"] = Field(description="Chosen site.")
    weight: float = Field(description="Share of traffic to send there, 0..1.")
    reason: str = Field(description="Why, in a few words.")


PROMPT = [
    ("system", "You route inference requests to edge sites."),
    (
        "user",
        "Predicted latency per site: north 180 ms, east 95 ms, south 240 ms, west 130 ms. "
        "Pick the site with the lowest latency.",
    ),
]


# --------------------------------------------------------------------------- spec parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("local", LMSpec(backend="local")),
        ("", LMSpec(backend="local")),
        ("  LOCAL ", LMSpec(backend="local")),
        (
            "local:/models/qwen2.5-0.5b.Q4.gguf",
            LMSpec(backend="local", gguf_path="/models/qwen2.5-0.5b.Q4.gguf"),
        ),
        ("openai:gpt-4o-mini", LMSpec(backend="openai", model_name="gpt-4o-mini")),
        ("openai:qwen2.5:0.5b", LMSpec(backend="openai", model_name="qwen2.5:0.5b")),
        (
            "openai:Qwen/Qwen2.5-7B-Instruct",
            LMSpec(backend="openai", model_name="Qwen/Qwen2.5-7B-Instruct"),
        ),
        ("none", LMSpec(backend="none")),
    ],
)
def test_parse_good_specs(text: str, expected: LMSpec) -> None:
    spec = parse_llm_spec(text)
    assert spec == expected
    assert parse_llm_spec(str(spec)) == spec  # round trip


@pytest.mark.parametrize(
    "text", ["gpt4", "openai", "openai:", "local:", "local:model.bin", "none:x", "vllm:x", "a\nb"]
)
def test_parse_bad_specs_one_line(text: str) -> None:
    with pytest.raises(LMConfigError) as e:
        parse_llm_spec(text)
    msg = str(e.value)
    assert "\n" not in msg
    for form in ("'local'", "'local:PATH.gguf'", "'openai:MODEL'", "'none'"):
        assert form in msg
    assert isinstance(e.value, ValueError)


def test_config_defaults_and_bad_override() -> None:
    cfg = LMConfig()
    assert (cfg.spec, cfg.temperature, cfg.max_tokens, cfg.timeout_s, cfg.n_ctx) == (
        "local",
        0.0,
        256,
        20.0,
        2048,
    )
    assert cfg.n_threads >= 1
    with pytest.raises(LMConfigError, match="bad LM spec"):
        create_chat_model("gpt4")
    with pytest.raises(LMConfigError) as e:
        create_chat_model("none", temperatur=0.5)
    assert "\n" not in str(e.value)


def test_none_gives_no_model() -> None:
    assert create_chat_model("none") is None
    assert check_reachable("none") is None
    out, stats = structured_call(None, SitePick, "x", timeout_s=1)
    assert out is None and stats.error


def test_openai_env_and_keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("langchain_openai")
    monkeypatch.setenv("EDGEAGENTS_OPENAI_BASE_URL", "http://10.0.0.1:8000/v1/")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = LMConfig(spec="openai:m")
    assert cfg.resolved_base_url() == "http://10.0.0.1:8000/v1"
    assert cfg.resolved_api_key() == "EMPTY"
    model = create_chat_model(
        "openai:m", base_url="http://127.0.0.1:9/v1", api_key="k", timeout_s=4
    )
    assert model.model_name == "m"
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.max_retries == 0 and model.request_timeout == 4
    assert "k" not in repr(LMConfig(spec="openai:m", api_key="k").api_key)


# --------------------------------------------------------------------------- reachability


@pytest.mark.enable_socket
def test_openai_unreachable_fails_fast_in_one_line() -> None:
    t0 = time.perf_counter()
    with pytest.raises(LMConfigError) as e:
        check_reachable("openai:some-model", timeout_s=3, base_url="http://127.0.0.1:9/v1")
    assert time.perf_counter() - t0 < 5
    msg = str(e.value)
    assert "\n" not in msg
    assert "unreachable at http://127.0.0.1:9/v1/models" in msg


def test_local_missing_file() -> None:
    with pytest.raises(LMConfigError, match="not found"):
        check_reachable("local:/nonexistent/model.gguf")


# --------------------------------------------------------------------------- timeouts, bad output


class ScriptedChatModel(BaseChatModel):
    """Test double: answers with the next scripted text after sleeping `sleep_s`."""

    replies: list[str]
    sleep_s: float = 0.0
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        time.sleep(self.sleep_s)
        text = self.replies[self.calls % len(self.replies)]
        self.calls += 1
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


def test_timeout_returns_none_at_deadline() -> None:
    model = ScriptedChatModel(replies=['{"site": "east", "weight": 1, "reason": "r"}'], sleep_s=3)
    t0 = time.perf_counter()
    out, stats = structured_call(model, SitePick, PROMPT, timeout_s=0.5)
    elapsed = time.perf_counter() - t0
    assert out is None
    assert stats.error == "timeout"
    assert 0.5 <= elapsed < 2.5, "returns at its deadline, not when the model answers (3 s)"
    assert stats.wall_s == pytest.approx(elapsed, abs=0.25)


def test_scripted_json_in_prose_parses_and_bad_output_does_not_raise() -> None:
    good = ScriptedChatModel(
        replies=['Sure! ```json\n{"site": "east", "weight": 0.9, "reason": "lowest {ms}"}\n```']
    )
    out, stats = structured_call(good, SitePick, PROMPT, timeout_s=5)
    assert out == SitePick(site="east", weight=0.9, reason="lowest {ms}")
    assert stats.method == "prompted_json" and stats.error is None

    bad = ScriptedChatModel(replies=['{"site": "mars", "weight": "x"}', "no json at all"])
    for _ in range(2):
        out, stats = structured_call(bad, SitePick, PROMPT, timeout_s=5)
        assert out is None
        assert stats.error and stats.error.startswith("invalid output") and "\n" not in stats.error
        assert stats.raw_text


def test_schema_hint_names_fields() -> None:
    hint = schema_hint(SitePick)
    assert '"site": "north" | "east" | "south" | "west"' in hint
    assert '"weight": number' in hint and '"reason": string' in hint


# --------------------------------------------------------------------------- core rule


def test_module_imports_no_lm_backend() -> None:
    code = (
        "import sys, edgeagents.agents.llm as m; m.parse_llm_spec('openai:x'); m.LMConfig();"
        "bad = [k for k in ('llama_cpp', 'langchain_openai', 'langchain_community', 'openai',"
        " 'langchain_core') if k in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# --------------------------------------------------------------------------- real local LM


@pytest.mark.lm
def test_local_smollm2_structured_call() -> None:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("langchain_community")
    check_reachable("local")  # loads the shipped GGUF into the shared cache
    a = create_chat_model("local", max_tokens=96)
    b = create_chat_model("local", temperature=0.7)
    assert a.client is b.client  # one llama.cpp model per process
    assert type(a).__name__ == "SharedChatLlamaCpp" and a.verbose is False

    out, stats = structured_call(a, SitePick, PROMPT, timeout_s=20)
    assert isinstance(stats, LMCallStats)
    assert stats.method == "grammar"
    assert stats.error is None, stats
    assert isinstance(out, SitePick)
    assert stats.completion_tokens and stats.prompt_tokens
    assert stats.wall_s < 20

    # A call cut at its deadline stops at its next token, freeing the shared model at once.
    long = create_chat_model("local", max_tokens=2000)
    t0 = time.perf_counter()
    out, stats = structured_call(long, SitePick, PROMPT, timeout_s=0.3)
    assert out is None and stats.error == "timeout"
    assert time.perf_counter() - t0 < 3, "2,000 tokens take 20 s; a loaded machine may lag"
    lock = lock_of(a.client)
    assert lock.acquire(timeout=2), "the cut call still holds the model"
    lock.release()
    out, stats = structured_call(a, SitePick, PROMPT, timeout_s=20)
    assert isinstance(out, SitePick), stats


@pytest.mark.lm
@pytest.mark.enable_socket
def test_openai_compatible_server_if_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a real server (vLLM, Ollama, llama.cpp's) when EDGEAGENTS_TEST_OPENAI_BASE_URL and
    EDGEAGENTS_TEST_OPENAI_MODEL are set; skipped otherwise."""
    import os

    url = os.environ.get("EDGEAGENTS_TEST_OPENAI_BASE_URL")
    name = os.environ.get("EDGEAGENTS_TEST_OPENAI_MODEL")
    if not (url and name):
        pytest.skip("no OpenAI-compatible server given")
    pytest.importorskip("langchain_openai")
    check_reachable(f"openai:{name}", base_url=url)
    model = create_chat_model(f"openai:{name}", base_url=url, max_tokens=96)
    out, stats = structured_call(model, SitePick, PROMPT, timeout_s=30)
    assert stats.method in ("json_schema", "json_mode")
    assert stats.error is None or stats.error.startswith(("invalid output", "output cut")), stats
    assert out is None or isinstance(out, SitePick)
    assert stats.completion_tokens


def test_lm_threads_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeagents.agents.llm import LM_THREADS_ENV, LMConfig, LMConfigError

    monkeypatch.setenv(LM_THREADS_ENV, "1")
    assert LMConfig().n_threads == 1
    assert LMConfig(n_threads=3).n_threads == 3, "an explicit value wins"
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(LM_THREADS_ENV, bad)
        with pytest.raises(LMConfigError, match=LM_THREADS_ENV):
            LMConfig()
