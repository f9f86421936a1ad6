"""The gateway under fuzzing, in process: the production routes over real `ModelServer`s with
a fake engine behind pickling handles, an httpx client on one event loop, and the valid
requests that must still succeed afterwards."""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
import pickle
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import numpy as np

from serving.app import create_gateway_api
from serving.config import BACKEND_FOR_KIND, ModelServerConfig
from serving.engines import EngineError
from serving.fuzz.contract import (
    DEFAULT_TIMEOUT_S,
    FUZZ_TOKEN,
    MAX_BODY_BYTES,
    FuzzAnswer,
    FuzzCase,
)
from serving.fuzz.values import Catalogue, catalogue, dumps, multipart, png_url
from serving.gateway import Gateway
from serving.loadgen import png, wav
from serving.notice_board import OPERATOR_TOKEN_ENV
from serving.server import ModelServer

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ORIGIN = "http://gateway"


class FakeEngine:
    """An engine that answers at once, in the shapes the real engines answer, and refuses what
    they refuse: text the tokenizers cannot encode as UTF-8, images that are not pictures."""

    synthetic_weights = True

    def __init__(self, config: ModelServerConfig) -> None:
        self.backend = config.backend
        self.weights = f"fake:{config.backend}"

    def load(self) -> None:
        pass

    def memory_bytes(self) -> int:
        return 0

    def run_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self._one(r) for r in requests]

    def _one(self, r: dict[str, Any]) -> dict[str, Any]:
        if self.backend == "llama-cpp":
            tokens = len(_tokens("\n".join(m["content"] for m in r["messages"])))
            return {
                "text": "fuzz",
                "finish_reason": "stop",
                "prompt_tokens": tokens,
                "completion_tokens": 1,
            }
        if self.backend == "vlm":
            _tokens(r["prompt"])
            for image in r.get("images_png") or []:
                if not image.startswith(_PNG_MAGIC):
                    raise EngineError("image is not a readable picture")
            return {"text": "fuzz", "completion_tokens": 1}
        if self.backend == "diffusers":
            _tokens(r["prompt"])
            picture = base64.b64encode(png()).decode("ascii")
            return {"images_b64": [picture] * int(r.get("n") or 1)}
        np.frombuffer(r["audio_f32"], dtype=np.float32)
        return {"text": "fuzz"}


def _tokens(text: str) -> list[bytes]:
    """Tokens as the real engines start them: UTF-8 bytes (a lone surrogate raises, there as
    here, an error that is not an `EngineError`)."""
    return text.encode("utf-8").split()


class _Remote:
    """`handle.method.remote(*args)`: an awaitable, its arguments and result pickled both ways,
    as Serve does between processes."""

    def __init__(self, method: Callable[..., Any]) -> None:
        self._method = method

    def remote(self, *args: Any) -> Any:
        sent = pickle.loads(pickle.dumps(args))
        return self._call(sent)

    async def _call(self, args: tuple[Any, ...]) -> Any:
        out = self._method(*args)
        if inspect.isawaitable(out):
            out = await out
        return pickle.loads(pickle.dumps(out))


class ServerHandle:
    """A Serve deployment handle over an in-process `ModelServer`."""

    def __init__(self, server: ModelServer) -> None:
        self.infer = _Remote(server.infer)
        self.stats = _Remote(server.stats)


def fake_server(
    gateway: Gateway, app_name: str, engine_cls: type[FakeEngine] = FakeEngine
) -> ModelServer:
    """The server of the Serve application `app_name` (`<model>--<site>`) of `gateway`'s
    scenario, in process, over `engine_cls`: what a handle factory builds instead of a replica."""
    model, _, site = app_name.partition("--")
    backend = BACKEND_FOR_KIND[gateway.scenario.model(model).kind]
    cfg = ModelServerConfig(model=model, site=site, backend=backend, batch_wait_ms=0.5)
    return ModelServer(cfg, engine_cls=engine_cls)


class GatewayHarness:
    """A `Gateway` behind its production routes, in process, with fake model servers and an
    httpx client; one event loop for every request (the servers' batch workers live on it).
    Puts `FUZZ_TOKEN` in the operator-token environment variable while open."""

    def __init__(
        self,
        *,
        scenario: str = "bristol",
        seed: int = 0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.timeout_s = timeout_s
        self.gateway = Gateway(
            {
                "scenario": scenario,
                "max_body_bytes": MAX_BODY_BYTES,
                "request_timeout_s": min(5.0, timeout_s / 2),
                "retry_backoff_s": 0.01,
                "seed": seed,
            },
            handle_factory=self._handle,
        )
        self._servers: list[ModelServer] = []
        self._runner: asyncio.Runner | None = None
        self._client: httpx.AsyncClient | None = None
        self._saved_token: str | None = None

    def _handle(self, app_name: str) -> ServerHandle:
        server = fake_server(self.gateway, app_name)
        self._servers.append(server)
        return ServerHandle(server)

    def __enter__(self) -> GatewayHarness:
        self._saved_token = os.environ.get(OPERATOR_TOKEN_ENV)
        os.environ[OPERATOR_TOKEN_ENV] = FUZZ_TOKEN
        self._runner = asyncio.Runner()
        transport = httpx.ASGITransport(
            app=create_gateway_api(self.gateway), raise_app_exceptions=False
        )
        self._client = httpx.AsyncClient(transport=transport, base_url=_ORIGIN)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._runner is not None and self._client is not None:
                self._runner.run(self._client.aclose())
        finally:
            if self._runner is not None:
                self._runner.close()  # cancels the servers' batch workers
            for server in self._servers:
                server._executor.shutdown(wait=False, cancel_futures=True)
            if self._saved_token is None:
                os.environ.pop(OPERATOR_TOKEN_ENV, None)
            else:
                os.environ[OPERATOR_TOKEN_ENV] = self._saved_token
            self._runner = self._client = None

    def send(self, case: FuzzCase) -> FuzzAnswer:
        """One request, waited for at most `timeout_s`."""
        if self._runner is None:
            raise RuntimeError("GatewayHarness.send outside `with GatewayHarness() as h:`")
        return self._runner.run(self._send(case))

    async def _send(self, case: FuzzCase) -> FuzzAnswer:
        assert self._client is not None
        content: bytes | AsyncIterator[bytes] = _pieces(case.body) if case.chunked else case.body
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in case.headers]
        url = _ORIGIN + case.path  # absolute: httpx refuses a relative '//path'
        request = self._client.build_request(case.method, url, headers=headers, content=content)
        t0 = time.perf_counter()
        try:
            response = await asyncio.wait_for(self._client.send(request), self.timeout_s)
        except TimeoutError:
            return FuzzAnswer(status=None, seconds=time.perf_counter() - t0)
        return FuzzAnswer(
            status=response.status_code,
            content_type=response.headers.get("content-type", ""),
            body=response.content,
            seconds=time.perf_counter() - t0,
        )

    def unhealthy(self) -> list[str]:
        """Valid requests of every kind that did not succeed as they should (empty: all did)."""
        cases = health_cases(catalogue(self.gateway.config.scenario))
        problems = (health_problem(case, self.send(case), check) for case, check in cases)
        return [p for p in problems if p is not None]


def _pieces(body: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(body), size):
            yield body[i : i + size]

    return gen()


def health_problem(case: FuzzCase, answer: FuzzAnswer, check: Callable[[Any], bool]) -> str | None:
    """Why a valid request's answer is not the success it should be (None: it is)."""
    if answer.status != 200:
        return f"{case.method} {case.path}: {answer.status} {answer.body[:200]!r}"
    try:
        ok = check(json.loads(answer.body))
    except (ValueError, KeyError, TypeError):
        ok = False
    return None if ok else f"{case.method} {case.path}: unexpected {answer.body[:200]!r}"


def health_cases(cat: Catalogue) -> list[tuple[FuzzCase, Callable[[Any], bool]]]:
    """Valid requests of every endpoint and what their answer must hold."""
    png = png_url()
    json_h = (("content-type", "application/json"),)
    auth_h = (*json_h, ("authorization", f"Bearer {FUZZ_TOKEN}"))
    hello = [{"role": "user", "content": "hello"}]
    vlm_msg = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": png}},
            ],
        }
    ]
    upload = multipart(
        [
            ("file", "speech.wav", "audio/wav", wav(0.1)),
            ("model", None, None, cat.of("speech-to-text")[0].encode()),
        ],
        "healthboundary",
    )

    def case(method: str, path: str, body: Any = None, headers: Any = json_h) -> FuzzCase:
        raw = body if isinstance(body, bytes) else b"" if body is None else dumps(body)
        return FuzzCase(category="health", method=method, path=path, headers=headers, body=raw)

    def chat_ok(d: Any) -> bool:
        return d["choices"][0]["message"]["role"] == "assistant"

    return [
        (
            case("POST", "/v1/chat/completions", {"model": cat.of("llm")[0], "messages": hello}),
            chat_ok,
        ),
        (
            case("POST", "/v1/chat/completions", {"model": cat.of("vlm")[0], "messages": vlm_msg}),
            chat_ok,
        ),
        (
            case("POST", "/v1/images/generations", {"prompt": "a bridge", "n": 2, "size": "32x32"}),
            lambda d: len(d["data"]) == 2 and bool(d["data"][0]["b64_json"]),
        ),
        (
            case(
                "POST",
                "/v1/audio/transcriptions",
                upload,
                (("content-type", "multipart/form-data; boundary=healthboundary"),),
            ),
            lambda d: isinstance(d["text"], str),
        ),
        (case("GET", "/v1/models"), lambda d: len(d["data"]) == len(cat.models)),
        (
            case("POST", "/v1/operator/notices", {"text": "health check"}, auth_h),
            lambda d: isinstance(d["id"], str),
        ),
        (case("GET", "/v1/operator/notices", headers=auth_h), lambda d: d["object"] == "list"),
        (case("GET", "/healthz"), lambda d: d == {"ok": True}),
    ]
