"""The gateway: OpenAI-compatible ingress that routes each request to a site's model server.

`Gateway` is a plain class: its endpoint methods over `serving.router.RequestRouter` (the routing
policy, the placement, the in-flight counts (back-pressure) and the per-request telemetry) take
a Starlette `Request` and always answer JSON: OpenAI-style errors (4xx with
`error.message/type/code`) for bad input, never a traceback. Reading bodies is
`serving.request_body`'s, the OpenAI <-> server translation `serving.payloads`'s, the notices
`serving.notice_board`'s. `serving/app.py` wraps it as a FastAPI ingress deployment.

Operators post free-text notices to `POST /v1/operator/notices` (bearer token from the
environment variable `EDGEAGENTS_OPERATOR_TOKEN`); the gateway holds them, bounded, and
`RayServeCity.operator_notices` hands them to the agents each control cycle.

One gateway replica keeps exact counts (in flight, telemetry, notices); several would each apply
the same policy to their share of the traffic.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edgeagents.core.state import RoutingPolicy
from serving.config import GatewayConfig
from serving.engines import EngineError, decode_wav
from serving.notice_board import NOTICE_FIELDS as NOTICE_FIELDS
from serving.notice_board import OPERATOR_TOKEN_ENV as OPERATOR_TOKEN_ENV
from serving.notice_board import NoticeBoard, check_operator
from serving.payloads import (
    chat_answer,
    chat_payload,
    images_answer,
    images_payload,
    model_list,
    transcription_answer,
)
from serving.protocol import (
    ChatCompletionRequest,
    ImageGenerationRequest,
    OpenAIError,
    validate_request,
)
from serving.request_body import read_body, read_json, receive_once
from serving.router import RequestRouter

if TYPE_CHECKING:
    from collections.abc import Callable


class Gateway(RequestRouter):
    """Routes OpenAI-style requests to model servers by the current `RoutingPolicy`."""

    def __init__(
        self,
        config: GatewayConfig | dict[str, Any] | None = None,
        *,
        handle_factory: Callable[[str], Any] | None = None,
        live_sites: Callable[[], set[str]] | None = None,
    ) -> None:
        super().__init__(config, handle_factory=handle_factory, live_sites=live_sites)
        self._board = NoticeBoard()

    # ---- operator notices ------------------------------------------------------------------

    @property
    def clock_s(self) -> float:
        """Seconds since the city started serving (`RayServeCity.now`): the clock notices are
        published on (`NoticeBoard.clock_s`)."""
        return self._board.clock_s

    def set_clock(self, epoch0_s: float) -> float:
        """Start the notices' clock at `epoch0_s` (epoch seconds; `NoticeBoard.set_clock`):
        `RayServeCity` calls this when it starts serving. Returns the clock now."""
        return self._board.set_clock(epoch0_s)

    def notices(self, since_s: float = 0.0) -> list[dict[str, Any]]:
        """Operator notices published at or after `since_s` (on `clock_s`), in the order they
        came; what `RayServeCity.operator_notices` reads through the handle."""
        return [n.model_dump() for n in self._board.held(since_s)]

    async def post_notice(self, request: Request) -> Response:
        """POST /v1/operator/notices: store one notice (`text`, optional `author` and
        `publish_s`, which defaults to `clock_s`); answers its `id` and `publish_s`. The same
        notice posted twice is stored once."""
        check_operator(request)
        data = await read_json(request, self.config.max_body_bytes)
        notice = self._board.post(data, self.config.max_notices)
        return JSONResponse({"id": notice.id, "publish_s": notice.publish_s})

    async def get_notices(self, request: Request) -> Response:
        """GET /v1/operator/notices?since_s=: the notices held, each with its `id`, and the
        clock now (`clock_s`), which an absolute `publish_s` or `from=` counts on."""
        check_operator(request)
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
        data = [{"id": n.id, **n.model_dump()} for n in self._board.held(since_s)]
        return JSONResponse({"object": "list", "data": data, "clock_s": self.clock_s})

    async def put_routing(self, request: Request) -> Response:
        """PUT /admin/routing: replace the routing policy (weights finite: `SiteWeight`)."""
        policy = validate_request(
            RoutingPolicy, await read_json(request, self.config.max_body_bytes)
        )
        return JSONResponse(self.set_policy(policy))

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
        data = await read_json(request, self.config.max_body_bytes)
        req = validate_request(ChatCompletionRequest, data)
        if req.stream:
            raise OpenAIError(
                400, "stream=true is not supported", code="unsupported", param="stream"
            )
        kind = self.check_model(req.model, ("llm", "vlm"), "/v1/chat/completions")
        payload, bytes_in = chat_payload(req, kind)
        render = functools.partial(chat_answer, req.model)
        return await self.dispatch(request, req.model, payload, bytes_in, render)

    async def images_generations(self, request: Request) -> Response:
        """POST /v1/images/generations (text-to-image; answers b64_json)."""
        data = await read_json(request, self.config.max_body_bytes)
        req = validate_request(ImageGenerationRequest, data)
        model = req.model or self.default_model("text-to-image")
        self.check_model(model, ("text-to-image",), "/v1/images/generations")
        payload = images_payload(req)
        return await self.dispatch(request, model, payload, len(req.prompt), images_answer)

    async def audio_transcriptions(self, request: Request) -> Response:
        """POST /v1/audio/transcriptions (multipart: file, model, response_format)."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise OpenAIError(
                400, "send multipart/form-data with a 'file' part", code="invalid_content_type"
            )
        body = await read_body(request, self.config.max_body_bytes)
        form_request = Request(request.scope, receive_once(body))
        try:
            form = await form_request.form()
        except Exception as e:  # python-multipart's parse errors have no common base
            raise OpenAIError(400, f"malformed multipart body: {e}", code="invalid_form") from e
        model = str(form.get("model") or self.default_model("speech-to-text"))
        self.check_model(model, ("speech-to-text",), "/v1/audio/transcriptions")
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
        render = functools.partial(transcription_answer, fmt, seconds)
        return await self.dispatch(request, model, payload, len(data), render)

    def list_models(self) -> Response:
        """GET /v1/models: the catalogue, with the sites that serve each model now."""
        return JSONResponse(model_list(self.scenario, self.placement))
