"""The OpenAI wire format the gateway speaks: request schemas, the error shape, and the
per-request telemetry record. Plain pydantic; no Ray, no FastAPI."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import JSONResponse

Outcome = Literal["served", "refused", "failed"]


class OpenAIError(Exception):
    """An error answered as OpenAI does: `{"error": {message, type, param, code}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.type, self.param = (
            status,
            message,
            code,
            type_,
            param,
        )
        self.headers = headers
        """Extra response headers (a 401's `WWW-Authenticate`)."""

    def response(self) -> JSONResponse:
        body = {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


# --------------------------------------------------------------------------- request schemas


class _Req(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChatMessage(_Req):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(_Req):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=4096)
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=1, description="One choice per request.")
    stream: bool = False
    seed: int | None = None
    stop: str | list[str] | None = None


class ImageGenerationRequest(_Req):
    prompt: str = Field(min_length=1, max_length=4000)
    model: str | None = None
    n: int = Field(default=1, ge=1, le=4)
    size: str | None = None
    response_format: Literal["b64_json"] | None = None
    num_inference_steps: int | None = Field(default=None, ge=1, le=1000)


class RequestRecord(BaseModel):
    """Telemetry of one request through the gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_s: float = Field(description="Wall-clock (epoch) seconds when it finished.")
    model: str
    site: str | None
    cell: str | None
    status: int
    outcome: Outcome
    reason: str | None = None
    latency_s: float = Field(description="Gateway arrival to answer, with emulated network.")
    network_s: float = 0.0
    queue_s: float = 0.0
    infer_s: float = 0.0
    retries: int = 0


def validate_request(schema: type[BaseModel], data: Any) -> Any:
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise OpenAIError(400, f"{loc}: {err['msg']}", code="invalid_value", param=loc) from None


def text_of(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(str(p.get("text", "")) for p in content if p.get("type") == "text")


def images_of(messages: list[ChatMessage]) -> list[bytes]:
    out = []
    for m in messages:
        if not isinstance(m.content, list):
            continue
        for part in m.content:
            if part.get("type") != "image_url":
                continue
            image = part.get("image_url")
            if not isinstance(image, dict):
                raise OpenAIError(
                    400,
                    'image_url must be an object {"url": "data:..."}',
                    code="invalid_image_url",
                    param="messages",
                )
            url = image.get("url")
            if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
                raise OpenAIError(
                    400,
                    "image_url must be a data: URL (base64); the gateway fetches nothing",
                    code="invalid_image_url",
                    param="messages",
                )
            try:
                out.append(base64.b64decode(url.split(",", 1)[1], validate=True))
            except (binascii.Error, ValueError) as e:
                raise OpenAIError(
                    400, f"image_url is not valid base64: {e}", code="invalid_image_url"
                ) from e
    return out
