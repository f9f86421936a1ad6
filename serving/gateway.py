"""The gateway: OpenAI-compatible ingress that routes each request to a site's model server.

`Gateway` is a plain class holding the routing policy, the placement, the in-flight counts
(back-pressure) and the per-request telemetry; its endpoint methods take a Starlette `Request`
and always answer JSON: OpenAI-style errors (4xx with `error.message/type/code`) for bad input,
never a traceback. `serving/app.py` wraps it as a FastAPI ingress deployment.

Operators post free-text notices to `POST /v1/operator/notices` (bearer token from the
environment variable `EDGEAGENTS_OPERATOR_TOKEN`); the gateway holds them, bounded, and
`RayServeCity.operator_notices` hands them to the agents each control cycle.

One gateway replica keeps exact counts (in flight, telemetry, notices); several would each apply
the same policy to their share of the traffic.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import os
import random
import re
import sys
import threading
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from edgeagents.core.notice import Notice, NoticeError, notice_from
from edgeagents.core.scenario import load_scenario
from edgeagents.core.state import RoutingPolicy
from edgeagents.sim.network import Network
from serving.config import (
    BACKEND_FOR_KIND,
    SERVER_DEPLOYMENT,
    GatewayConfig,
    server_app_name,
)
from serving.engines import EngineError, decode_wav
from serving.protocol import (
    ChatCompletionRequest,
    ImageGenerationRequest,
    OpenAIError,
    Outcome,
    RequestRecord,
    images_of,
    text_of,
    validate_request,
)

if TYPE_CHECKING:
    from collections.abc import Callable

OPERATOR_TOKEN_ENV = "EDGEAGENTS_OPERATOR_TOKEN"
"""The bearer token of the operator endpoints, read from the gateway process's environment on
each request (a Serve replica inherits the environment of `ray start`, or of the process that
started a local Ray). Unset or empty: every operator request is 401."""
NOTICE_FIELDS = ("text", "author", "publish_s")
"""What an operator may post; a scenario-only field such as `expect` is refused."""


class Gateway:
    """Routes OpenAI-style requests to model servers by the current `RoutingPolicy`."""

    def __init__(
        self,
        config: GatewayConfig | dict[str, Any] | None = None,
        *,
        handle_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.config = GatewayConfig.model_validate(config or {})
        self.scenario = load_scenario(self.config.scenario)
        self._kinds = {m.name: m.kind for m in self.scenario.models}
        placement = self.config.placement
        self.placement: dict[str, list[str]] = dict(
            placement if placement is not None else self.scenario.placement
        )
        self._check_placement(self.placement)
        self.policy = RoutingPolicy()
        self._network = Network(self.scenario)
        self._site_index = {s: i for i, s in enumerate(self.scenario.site_names)}
        self._cell_index = {c.name: i for i, c in enumerate(self.scenario.cells)}
        self._handle_factory = handle_factory or _serve_handle
        self._handles: dict[str, Any] = {}
        self._inflight: dict[tuple[str, str], int] = {}
        self._records: deque[RequestRecord] = deque(maxlen=20_000)
        self.errors_by_code: dict[str, int] = {}
        self._rng = random.Random(self.config.seed)
        self._epoch0 = time.time()
        self._notices: dict[str, Notice] = {}
        # Serve may run the handle's sync methods (notices, set_clock) on another thread.
        self._notices_lock = threading.Lock()

    # ---- control: policy, placement, telemetry -------------------------------------------

    def _check_placement(self, placement: dict[str, list[str]]) -> None:
        for site, models in placement.items():
            if site not in self.scenario.site_names:
                raise ValueError(f"placement: unknown site {site!r}")
            for m in models:
                if m not in self._kinds:
                    raise ValueError(f"placement.{site}: unknown model {m!r}")

    def set_policy(self, policy: RoutingPolicy | dict[str, Any]) -> dict[str, Any]:
        """Replace the routing policy (what the scheduler decided); returns it."""
        self.policy = RoutingPolicy.model_validate(policy)
        return self.policy.model_dump()

    def set_placement(self, placement: dict[str, list[str]]) -> dict[str, list[str]]:
        """Replace the placement (which server apps exist); the city calls this after a change."""
        self._check_placement(placement)
        self.placement = {s: list(ms) for s, ms in placement.items()}
        live = {server_app_name(m, s) for s, ms in self.placement.items() for m in ms}
        self._handles = {k: v for k, v in self._handles.items() if k in live}
        return self.placement

    def records(self, since_s: float = 0.0) -> list[dict[str, Any]]:
        """Per-request telemetry finished after `since_s` (epoch seconds)."""
        return [r.model_dump() for r in self._records if r.time_s > since_s]

    # ---- operator notices ------------------------------------------------------------------

    @property
    def clock_s(self) -> float:
        """Seconds since the city started serving (`RayServeCity.now`), from the wall clock
        that stamps the request records: the time notices are published on."""
        return max(0.0, time.time() - self._epoch0)

    def set_clock(self, epoch0_s: float) -> float:
        """Start the clock at `epoch0_s` (epoch seconds): `RayServeCity` calls this when it
        starts serving, so that a notice's `publish_s` reads on the agents' clock. Notices
        already held keep their moment (shifted, at least 0). Returns the clock now."""
        if not math.isfinite(epoch0_s):
            raise ValueError(f"set_clock: epoch0_s={epoch0_s!r} is not a finite time")
        with self._notices_lock:
            shift = self._epoch0 - epoch0_s
            self._epoch0 = epoch0_s
            if shift:
                moved = [
                    Notice(text=n.text, author=n.author, publish_s=max(0.0, n.publish_s + shift))
                    for n in self._notices.values()
                ]
                self._notices = {n.id: n for n in moved}
        return self.clock_s

    def _held_notices(self, since_s: float) -> list[Notice]:
        with self._notices_lock:
            held = list(self._notices.values())
        return [n for n in held if n.publish_s >= since_s]

    def notices(self, since_s: float = 0.0) -> list[dict[str, Any]]:
        """Operator notices published at or after `since_s` (on `clock_s`), in the order they
        came; what `RayServeCity.operator_notices` reads through the handle."""
        return [n.model_dump() for n in self._held_notices(since_s)]

    def _check_operator(self, request: Request) -> None:
        """401 unless `Authorization: Bearer <token>` matches `EDGEAGENTS_OPERATOR_TOKEN`.
        Read per request, so no token sits in a Serve config (which `serve status` shows)."""
        expected = os.environ.get(OPERATOR_TOKEN_ENV, "").strip()
        if not expected:
            raise _unauthorized(
                f"operator endpoints are off: set {OPERATOR_TOKEN_ENV} in the environment the "
                "gateway runs in (that of `ray start`)",
                "operator_token_unset",
            )
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            raise _unauthorized("send the header 'Authorization: Bearer <token>'", "missing_token")
        # Starlette decodes headers as latin-1: encode back to the bytes that were sent.
        if not hmac.compare_digest(given.encode("latin-1"), expected.encode()):
            raise _unauthorized("invalid operator token", "invalid_token")

    async def post_notice(self, request: Request) -> Response:
        """POST /v1/operator/notices: store one notice (`text`, optional `author` and
        `publish_s`, which defaults to `clock_s`); answers its `id` and `publish_s`. The same
        notice posted twice is stored once."""
        self._check_operator(request)
        data = await self._json_body(request)
        if not isinstance(data, dict):
            raise OpenAIError(
                400, f"a notice is a JSON object, got {_json_type(data)}", code="invalid_notice"
            )
        unknown = [k for k in data if k not in NOTICE_FIELDS]
        if unknown:
            raise OpenAIError(
                400,
                f"notice: {unknown[0]}: unknown field (send {', '.join(NOTICE_FIELDS)})",
                code="invalid_notice",
                param=str(unknown[0]),
            )
        fields = {k: v for k, v in data.items() if v is not None}  # null: the default
        publish = fields.setdefault("publish_s", self.clock_s)
        if isinstance(publish, bool) or not isinstance(publish, int | float):
            raise OpenAIError(
                400,
                f"notice: publish_s: a number of seconds, got {_json_type(publish)}",
                code="invalid_notice",
                param="publish_s",
            )
        try:
            notice = notice_from(fields, "notice")
        except NoticeError as e:
            raise OpenAIError(400, " ".join(str(e).split()), code="invalid_notice") from None
        with self._notices_lock:
            if notice.id not in self._notices:
                if len(self._notices) >= self.config.max_notices:
                    raise OpenAIError(
                        429,
                        f"the gateway holds {self.config.max_notices} operator notices, its "
                        "bound (max_notices); no more are taken until it is redeployed",
                        code="too_many_notices",
                        type_="rate_limit_error",
                    )
                self._notices[notice.id] = notice
        return JSONResponse({"id": notice.id, "publish_s": notice.publish_s})

    async def get_notices(self, request: Request) -> Response:
        """GET /v1/operator/notices?since_s=: the notices held, each with its `id`, and the
        clock now (`clock_s`), which an absolute `publish_s` or `from=` counts on."""
        self._check_operator(request)
        raw = request.query_params.get("since_s", "0")
        try:
            since_s = float(raw)
        except ValueError:
            since_s = math.nan
        if not math.isfinite(since_s):
            raise OpenAIError(
                400,
                f"since_s={raw!r}: expected seconds, e.g. 120",
                code="invalid_value",
                param="since_s",
            )
        data = [{"id": n.id, **n.model_dump()} for n in self._held_notices(since_s)]
        return JSONResponse({"object": "list", "data": data, "clock_s": self.clock_s})

    async def put_routing(self, request: Request) -> Response:
        """PUT /admin/routing: replace the routing policy (weights finite: `SiteWeight`)."""
        policy = validate_request(RoutingPolicy, await self._json_body(request))
        return JSONResponse(self.set_policy(policy))

    async def snapshot(self) -> dict[str, Any]:
        """Policy, placement, in-flight counts, and each model server's own figures."""
        pairs = [(m, site) for site, models in self.placement.items() for m in models]

        async def one(model: str, site: str) -> Any:
            call = self._handle(server_app_name(model, site)).stats.remote()
            return await asyncio.wait_for(_await(call), 10.0)

        results = await asyncio.gather(*(one(m, s) for m, s in pairs), return_exceptions=True)
        servers, unreachable = [], []
        for (m, site), res in zip(pairs, results, strict=True):
            if isinstance(res, BaseException):  # loading or dead: reported, not fatal
                unreachable.append({"model": m, "site": site, "error": type(res).__name__})
            else:
                servers.append(res)
        return {
            "time_s": time.time(),
            "policy": self.policy.model_dump(),
            "placement": self.placement,
            "inflight": {f"{m}@{s}": n for (m, s), n in self._inflight.items() if n},
            "servers": servers,
            "unreachable": unreachable,
            "errors_by_code": dict(self.errors_by_code),
        }

    # ---- data plane -----------------------------------------------------------------------

    def _handle(self, app_name: str) -> Any:
        if app_name not in self._handles:
            self._handles[app_name] = self._handle_factory(app_name)
        return self._handles[app_name]

    def candidates(self, model: str) -> list[str]:
        """Sites to try for `model`, best first: sampled by policy weight, corrected by the
        requests already in flight there; servers at the back-pressure bound are left out."""
        placed = [s for s, ms in self.placement.items() if model in ms]
        weights = {w.site: w.weight for w in self.policy.routes.get(model, []) if w.site in placed}
        if not any(weights.values()):
            weights = dict.fromkeys(placed, 1.0)
        cap = self.config.max_queue_per_server
        live = {
            s: w / (1 + self._inflight.get((model, s), 0))
            for s, w in weights.items()
            if w > 0 and self._inflight.get((model, s), 0) < cap
        }
        order = []
        while live:
            total = sum(live.values())
            x, acc = self._rng.random() * total, 0.0
            chosen = next(iter(live))
            for chosen, w in live.items():  # noqa: B007 (the loop variable is the choice)
                acc += w
                if x <= acc:
                    break
            order.append(chosen)
            del live[chosen]
        return order

    def _delay_s(self, cell: str | None, site: str, nbytes: float, up: bool) -> float:
        if cell is None or not self.config.emulate_network:
            return 0.0
        c, s = self._cell_index[cell], self._site_index[site]
        home = int(self._network.cell_site[c])
        radio = (self._network.uplink_s if up else self._network.downlink_s)(
            np.array([c]), np.array([nbytes])
        )[0]
        src, dst = (home, s) if up else (s, home)
        return float(radio + self._network.transfer_s(src, dst, nbytes))

    def _cell(self, request: Request) -> str | None:
        cell = request.headers.get("x-edgeagents-cell")
        if cell is not None and cell not in self._cell_index:
            raise OpenAIError(
                400,
                f"unknown cell {cell!r} in x-edgeagents-cell "
                f"(known: {', '.join(self._cell_index)})",
                code="unknown_cell",
            )
        return cell

    def _check_model(self, model: str, kinds: tuple[str, ...], endpoint: str) -> None:
        kind = self._kinds.get(model)
        if kind is None:
            raise OpenAIError(
                404,
                f"The model {model!r} does not exist (known: {', '.join(self._kinds)})",
                code="model_not_found",
                param="model",
            )
        if kind not in kinds:
            raise OpenAIError(
                400,
                f"model {model!r} is a {kind} model; {endpoint} serves {', '.join(kinds)} models",
                code="wrong_model_kind",
                param="model",
            )

    async def _call(
        self, model: str, request: dict[str, Any], cell: str | None, bytes_in: float
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send one request to a server; (server reply, gateway facts). Raises OpenAIError."""
        sites = self.candidates(model)
        if not sites:
            placed = any(model in ms for ms in self.placement.values())
            if placed:
                raise OpenAIError(
                    429,
                    f"every server of {model!r} has {self.config.max_queue_per_server} requests "
                    "in flight; retry later",
                    code="queue_full",
                    type_="rate_limit_error",
                )
            raise OpenAIError(
                503,
                f"model {model!r} is not deployed on any site now",
                code="model_not_deployed",
                type_="server_error",
            )
        attempts = sites[: self.config.retries + 1]
        while len(attempts) < self.config.retries + 1:  # retry on the same site if only one
            attempts.append(sites[0])
        last: Exception | None = None
        for i, site in enumerate(attempts):
            key = (model, site)
            self._inflight[key] = self._inflight.get(key, 0) + 1
            try:
                up = self._delay_s(cell, site, bytes_in, up=True)
                if up:
                    await asyncio.sleep(up)
                resp = self._handle(server_app_name(model, site)).infer.remote(request)
                reply = await asyncio.wait_for(_await(resp), self.config.request_timeout_s)
                return reply, {"site": site, "network_s": up, "retries": i}
            except TimeoutError:
                raise OpenAIError(
                    504,
                    f"{model} on {site} did not answer in {self.config.request_timeout_s:g} s",
                    code="timeout",
                    type_="server_error",
                ) from None
            except Exception as e:  # a replica died or is gone: try once more, then fail
                last = e
            finally:
                self._inflight[key] -= 1
            if i + 1 < len(attempts) and attempts[i + 1] == site:
                # Give Serve time to see the dead replica before asking the same site again.
                await asyncio.sleep(self.config.retry_backoff_s)
        raise OpenAIError(
            503,
            f"the server of {model} failed ({type(last).__name__}) after "
            f"{len(attempts)} attempt(s)",
            code="replica_failed",
            type_="server_error",
        )

    async def _serve(
        self,
        request: Request,
        model: str,
        payload: dict[str, Any],
        bytes_in: float,
        render: Callable[[dict[str, Any]], tuple[dict[str, Any] | str, float]],
    ) -> Response:
        """Call, render the body, add the result's way back, record telemetry either way; the
        answer carries the facts (site, backend, weights, timings) under `x_edgeagents`."""
        t0 = time.perf_counter()
        cell = self._cell(request)
        facts: dict[str, Any] = {}
        try:
            reply, facts = await self._call(model, payload, cell, bytes_in)
            if "error" in reply:
                raise OpenAIError(reply.get("status", 400), reply["error"], code="invalid_input")
            facts.update(
                {
                    k: reply[k]
                    for k in ("backend", "weights", "synthetic_weights", "replica", "batch")
                }
            )
            facts.update(queue_s=reply["queue_s"], infer_s=reply["infer_s"])
            body, bytes_out = render(reply["result"])
            down = self._delay_s(cell, facts["site"], bytes_out, up=False)
            if down:
                await asyncio.sleep(down)
            facts["network_s"] += down
            self._record(model, cell, t0, 200, "served", None, facts)
            if isinstance(body, str):
                return PlainTextResponse(body)
            return JSONResponse({**body, "x_edgeagents": {**facts, "model": model}})
        except OpenAIError as e:
            failed = e.code in ("replica_failed", "timeout")
            outcome: Outcome = "failed" if failed else "refused"
            self._record(model, cell, t0, e.status, outcome, e.code, facts)
            raise

    def _record(
        self,
        model: str,
        cell: str | None,
        t0: float,
        status: int,
        outcome: Outcome,
        reason: str | None,
        facts: dict[str, Any],
    ) -> None:
        self._records.append(
            RequestRecord(
                time_s=time.time(),
                model=model,
                site=facts.get("site"),
                cell=cell,
                status=status,
                outcome=outcome,
                reason=reason,
                latency_s=time.perf_counter() - t0,
                network_s=facts.get("network_s", 0.0),
                queue_s=facts.get("queue_s", 0.0),
                infer_s=facts.get("infer_s", 0.0),
                retries=facts.get("retries", 0),
            )
        )

    async def _json_body(self, request: Request) -> Any:
        body = await self._body(request)
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise OpenAIError(
                400, f"request body is not valid JSON: {e}", code="invalid_json"
            ) from e
        except RecursionError:  # '[[[[...' deeper than Python's stack: bad input, not a 500
            raise OpenAIError(
                400, "request body is not valid JSON: nested too deeply", code="invalid_json"
            ) from None
        except ValueError:  # a number literal longer than Python converts to an int
            raise OpenAIError(
                400,
                "request body is not valid JSON: a number has more than "
                f"{sys.get_int_max_str_digits()} digits",
                code="invalid_json",
            ) from None
        if _SURROGATE_ESCAPE.search(body) or b"\x00" in body:  # NUL: UTF-16 or UTF-32 JSON
            bad = _lone_surrogate(data)
            if bad is not None:
                raise OpenAIError(
                    400,
                    f"request body is not valid JSON text: the string {bad[:40]!r} holds a "
                    "lone UTF-16 surrogate escape, which is no Unicode character",
                    code="invalid_json",
                )
        return data

    async def _body(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            raise OpenAIError(
                413, f"request body of {declared} bytes is over {limit}", code="payload_too_large"
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise OpenAIError(
                    413, f"request body is over {limit} bytes", code="payload_too_large"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    # ---- endpoints ------------------------------------------------------------------------

    async def guarded(self, endpoint: Callable[[Request], Any], request: Request) -> Response:
        """Run an endpoint; count every OpenAI-style error it answers, by code."""
        try:
            return await endpoint(request)
        except OpenAIError as e:
            self.errors_by_code[e.code] = self.errors_by_code.get(e.code, 0) + 1
            raise

    async def chat_completions(self, request: Request) -> Response:
        """POST /v1/chat/completions (text LLMs and VLMs; no streaming)."""
        req = validate_request(ChatCompletionRequest, await self._json_body(request))
        if req.stream:
            raise OpenAIError(
                400, "stream=true is not supported", code="unsupported", param="stream"
            )
        self._check_model(req.model, ("llm", "vlm"), "/v1/chat/completions")
        max_tokens = req.max_completion_tokens or req.max_tokens or 64
        images = images_of(req.messages)
        if self._kinds[req.model] == "vlm":
            prompt = "\n".join(text_of(m.content) for m in req.messages)
            payload: dict[str, Any] = {
                "prompt": prompt,
                "images_png": images,
                "max_tokens": max_tokens,
            }
        else:
            if images:
                raise OpenAIError(400, f"model {req.model!r} takes no images", code="invalid_value")
            payload = {
                "messages": [{"role": m.role, "content": text_of(m.content)} for m in req.messages],
                "max_tokens": max_tokens,
                "temperature": req.temperature,
                "top_p": req.top_p,
                "stop": req.stop,
            }
            if req.seed is not None:
                payload["seed"] = req.seed
        bytes_in = sum(len(text_of(m.content)) for m in req.messages) + sum(map(len, images))

        def render(result: dict[str, Any]) -> tuple[dict[str, Any] | str, float]:
            text = result.get("text", "")
            completion = int(result.get("completion_tokens", 0))
            prompt_tokens = int(result.get("prompt_tokens", 0))
            body = {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": req.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": result.get("finish_reason", "stop"),
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion,
                    "total_tokens": prompt_tokens + completion,
                },
            }
            return body, float(len(text.encode()))

        return await self._serve(request, req.model, payload, bytes_in, render)

    def _default_model(self, kind: str) -> str:
        for name, k in self._kinds.items():
            if k == kind:
                return name
        raise OpenAIError(404, f"no {kind} model in the catalogue", code="model_not_found")

    async def images_generations(self, request: Request) -> Response:
        """POST /v1/images/generations (text-to-image; answers b64_json)."""
        req = validate_request(ImageGenerationRequest, await self._json_body(request))
        model = req.model or self._default_model("text-to-image")
        self._check_model(model, ("text-to-image",), "/v1/images/generations")
        px = None
        if req.size:
            w, _, h = req.size.partition("x")
            digits = w.isascii() and w.isdigit() and w == h  # '²'.isdigit(), but int('²') fails
            if not (digits and 8 <= int(w) <= 2048):
                raise OpenAIError(
                    400,
                    f"size {req.size!r}: use a square 'NxN' with 8 <= N <= 2048",
                    code="invalid_value",
                    param="size",
                )
            px = int(w)
        payload = {
            "prompt": req.prompt,
            "n": req.n,
            "size_px": px,
            "steps": req.num_inference_steps,
        }

        def render(result: dict[str, Any]) -> tuple[dict[str, Any] | str, float]:
            images = result["images_b64"]
            body = {
                "created": int(time.time()),
                "data": [{"b64_json": b, "revised_prompt": None} for b in images],
            }
            return body, float(sum(len(b) * 3 / 4 for b in images))

        return await self._serve(request, model, payload, len(req.prompt), render)

    async def audio_transcriptions(self, request: Request) -> Response:
        """POST /v1/audio/transcriptions (multipart: file, model, response_format)."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise OpenAIError(
                400, "send multipart/form-data with a 'file' part", code="invalid_content_type"
            )
        body = await self._body(request)
        form_request = Request(request.scope, _replay(body))
        try:
            form = await form_request.form()
        except Exception as e:  # python-multipart's parse errors have no common base
            raise OpenAIError(400, f"malformed multipart body: {e}", code="invalid_form") from e
        model = str(form.get("model") or self._default_model("speech-to-text"))
        self._check_model(model, ("speech-to-text",), "/v1/audio/transcriptions")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise OpenAIError(400, "missing the 'file' part", code="invalid_value", param="file")
        data = await upload.read()
        try:
            audio = decode_wav(data)
        except EngineError as e:
            raise OpenAIError(400, str(e), code="invalid_audio", param="file") from e
        fmt = str(form.get("response_format") or "json")
        if fmt not in ("json", "text", "verbose_json"):
            raise OpenAIError(
                400,
                f"response_format {fmt!r}: use json, text or verbose_json",
                code="invalid_value",
            )
        payload = {"audio_f32": audio.tobytes(), "max_tokens": 16}
        seconds = audio.size / 16_000

        def render(result: dict[str, Any]) -> tuple[dict[str, Any] | str, float]:
            text = result["text"]
            if fmt == "text":
                return text, float(len(text))
            body: dict[str, Any] = {"text": text}
            if fmt == "verbose_json":
                body.update(task="transcribe", language="en", duration=seconds, segments=[])
            return body, float(len(text))

        return await self._serve(request, model, payload, len(data), render)

    def list_models(self) -> Response:
        """GET /v1/models: the catalogue, with the sites that serve each model now."""
        data = []
        for m in self.scenario.models:
            sites = [s for s, ms in self.placement.items() if m.name in ms]
            data.append(
                {
                    "id": m.name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "edgeagents",
                    "x_edgeagents": {
                        "kind": m.kind,
                        "backend": BACKEND_FOR_KIND[m.kind],
                        "sites": sites,
                    },
                }
            )
        return JSONResponse({"object": "list", "data": data})


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
"""A JSON escape of a UTF-16 surrogate: paired, it is one character; alone, a string no
UTF-8 encoder (tokenizer, JSON answer, notice id) takes."""


def _lone_surrogate(value: Any) -> str | None:
    """The first string (value or key) of decoded JSON that holds a lone surrogate."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode()
            except UnicodeEncodeError:
                return v
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())
    return None


def _unauthorized(message: str, code: str) -> OpenAIError:
    return OpenAIError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _replay(body: bytes) -> Callable[[], Any]:
    """An ASGI receive callable that yields an already read body once."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _await(response: Any) -> Any:
    return await response


def _serve_handle(app_name: str) -> Any:
    from ray import serve

    return serve.get_deployment_handle(SERVER_DEPLOYMENT, app_name=app_name)
