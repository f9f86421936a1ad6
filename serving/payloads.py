"""The gateway's translation between the OpenAI API and the model servers: a validated request
becomes a server payload, and a server's result the OpenAI answer (with its size on the way
back, for the emulated network)."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from serving.config import BACKEND_FOR_KIND
from serving.protocol import (
    ChatCompletionRequest,
    ImageGenerationRequest,
    OpenAIError,
    images_of,
    text_of,
)

if TYPE_CHECKING:
    from edgeagents.core.scenario import Scenario


def chat_payload(req: ChatCompletionRequest, kind: str) -> tuple[dict[str, Any], float]:
    """The server payload of a chat request to a model of `kind` (a VLM gets one prompt and
    the images; a text LLM the messages, and no images), and the bytes the request carries."""
    max_tokens = req.max_completion_tokens or req.max_tokens or 64
    images = images_of(req.messages)
    if kind == "vlm":
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
    return payload, bytes_in


def chat_answer(model: str, result: dict[str, Any]) -> tuple[dict[str, Any] | str, float]:
    """The `chat.completion` answer of `model`'s result, and the bytes of its text."""
    text = result.get("text", "")
    completion = int(result.get("completion_tokens", 0))
    prompt_tokens = int(result.get("prompt_tokens", 0))
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
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


def images_payload(req: ImageGenerationRequest) -> dict[str, Any]:
    """The server payload of an image request; 400 for a size that is not a square 'NxN' with
    8 <= N <= 2048."""
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
    return payload


def images_answer(result: dict[str, Any]) -> tuple[dict[str, Any] | str, float]:
    """The images answer (b64_json) of a server's result, and the bytes of its pictures."""
    images = result["images_b64"]
    body = {
        "created": int(time.time()),
        "data": [{"b64_json": b, "revised_prompt": None} for b in images],
    }
    return body, float(sum(len(b) * 3 / 4 for b in images))


def transcription_answer(
    fmt: str, seconds: float, result: dict[str, Any]
) -> tuple[dict[str, Any] | str, float]:
    """The transcription answer of a server's result in `fmt` (json, text or verbose_json of
    audio `seconds` long), and the characters of its text."""
    text = result["text"]
    if fmt == "text":
        return text, float(len(text))
    body: dict[str, Any] = {"text": text}
    if fmt == "verbose_json":
        body.update(task="transcribe", language="en", duration=seconds, segments=[])
    return body, float(len(text))


def model_list(scenario: Scenario, placement: dict[str, list[str]]) -> dict[str, Any]:
    """GET /v1/models's answer: the catalogue, with the sites that serve each model now."""
    data = []
    for m in scenario.models:
        sites = [s for s, ms in placement.items() if m.name in ms]
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
    return {"object": "list", "data": data}
