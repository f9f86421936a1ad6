"""The load generator of `edgeagents serve`: the scenario's prompts as real OpenAI requests.

Each prompt of the generated workload is sent with its sizes capped for CPU (`sent_prompt`),
from its user's cell (header `x-edgeagents-cell`), and what came back is kept beside what was
sent (`SentPrompt`): the replay in the simulator (serving/replay.py) uses exactly these sizes
and send times.
"""

from __future__ import annotations

import base64
import io
import time
import wave
from dataclasses import asdict, dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import httpx

    from edgeagents.core.scenario import Scenario
    from edgeagents.sim.workload import Workload

MAX_INPUT_WORDS = 64
"""Prompt words sent at most (text, VLM, text-to-image): one word is about one token. SmolLM2
on one CPU thread prefills about 100 tokens/s here, so longer prompts would overload the text
server at 1 prompt/s."""
MAX_OUTPUT_TOKENS = 16
"""Tokens asked at most (`max_tokens`) of text and VLM models."""
AUDIO_S = (0.5, 3.0)
"""Audio seconds sent, clipped to this range."""
TRANSCRIBE_TOKENS = 16
"""Tokens the gateway asks a speech model for (serving/gateway.py)."""
IMAGE_PX = 16
"""Side of the generated images, px."""
IMAGE_STEPS = 2
"""Denoising steps asked."""
# fmt: off
WORDS = (
    "city", "bus", "road", "park", "river", "bridge", "street", "market", "school", "house",
    "train", "station", "light", "water", "music", "food", "coffee", "tea", "bread", "apple",
    "garden", "tree", "flower", "bird", "dog", "cat", "window", "door", "table", "chair", "book",
    "paper", "letter", "phone", "money", "time", "day", "night", "week", "year", "morning",
    "evening", "rain", "snow", "wind", "sun", "moon", "star", "sea", "hill", "town", "shop",
    "bank", "hotel", "church", "office", "museum", "library", "cinema", "theatre",
)
# fmt: on
"""Prompt words (about one token each); each prompt draws its own sequence, so prompts do not
share a long prefix (llama.cpp would reuse its cache for one, as it does for a repeated prompt)."""
BYTES_PER_WORD = sum(len(w) + 1 for w in WORDS) / len(WORDS)


@dataclass
class SentPrompt:
    """One request the load generator sent (sizes as really sent) and its outcome."""

    model: str
    kind: str
    cell: str | None
    arrival_s: float
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    audio_s: float = 0.0
    resolution_px: int = 0
    steps: int = 0
    sent_s: float | None = None
    status: int | None = None
    code: str | None = None
    site: str | None = None
    latency_s: float | None = None
    network_s: float | None = None
    queue_s: float | None = None
    infer_s: float | None = None
    batch: int | None = None
    retries: int | None = None
    completion_tokens: int | None = None
    text_seed: int = 0

    @property
    def served(self) -> bool:
        return self.status == 200

    @property
    def overhead_s(self) -> float | None:
        """Client latency not spent in emulated network or in the server: HTTP, Serve's proxy,
        the gateway, the handle call."""
        if not self.served or self.latency_s is None:
            return None
        return self.latency_s - (self.network_s or 0) - (self.queue_s or 0) - (self.infer_s or 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sent_prompt(scenario: Scenario, w: Workload, i: int) -> SentPrompt:
    """Prompt `i` of the workload with its sizes capped for CPU."""
    model = w.model_names[int(w.model[i])]
    kind = scenario.model(model).kind
    words = int(min(max(w.input_tokens[i], 1), MAX_INPUT_WORDS))
    p = SentPrompt(model, kind, w.cell_names[int(w.cell[i])], float(w.arrival_s[i]), text_seed=i)
    if kind == "text-to-image":
        p.input_tokens, p.resolution_px, p.steps = words, IMAGE_PX, IMAGE_STEPS
    elif kind == "speech-to-text":
        p.audio_s = float(min(max(w.audio_s[i], AUDIO_S[0]), AUDIO_S[1]))
        p.output_tokens = TRANSCRIBE_TOKENS
    else:
        p.input_tokens = words
        p.output_tokens = int(min(max(w.output_tokens[i], 1), MAX_OUTPUT_TOKENS))
        p.images = 1 if kind == "vlm" else 0
    return p


def wav(seconds: float) -> bytes:
    """A 300 Hz tone, 16 kHz 16-bit mono WAV."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16_000)
        t = np.arange(int(seconds * 16_000)) / 16_000
        f.writeframes((np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16).tobytes())
    return buf.getvalue()


@cache
def png() -> bytes:
    """The picture attached to every VLM prompt: 32x32 px, one colour."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 120, 200)).save(buf, format="PNG")
    return buf.getvalue()


def prompt_text(words: int, seed: int) -> str:
    """`words` words drawn from `WORDS` by `seed`."""
    rng = np.random.default_rng(seed)
    return " ".join(WORDS[k] for k in rng.integers(len(WORDS), size=max(words, 1)))


def http_request(p: SentPrompt) -> tuple[str, dict[str, Any]]:
    """The HTTP path and httpx keyword arguments that send `p`."""
    words = prompt_text(p.input_tokens, p.text_seed)
    if p.kind == "text-to-image":
        body = {"model": p.model, "prompt": words, "size": f"{p.resolution_px}x{p.resolution_px}",
                "num_inference_steps": p.steps}  # fmt: skip
        return "/v1/images/generations", {"json": body}
    if p.kind == "speech-to-text":
        return "/v1/audio/transcriptions", {
            "files": {"file": ("a.wav", wav(p.audio_s), "audio/wav")},
            "data": {"model": p.model},
        }
    content: Any = words
    if p.kind == "vlm":
        url = "data:image/png;base64," + base64.b64encode(png()).decode()
        content = [
            {"type": "text", "text": words},
            {"type": "image_url", "image_url": {"url": url}},
        ]
    body = {
        "model": p.model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": p.output_tokens,
    }
    return "/v1/chat/completions", {"json": body}


def send(client: httpx.Client, p: SentPrompt, *, timeout_s: float = 120.0) -> SentPrompt:
    """Send `p` with `client` (an `httpx.Client` whose base_url is the gateway, shared by the
    load generator's threads: one connection pool, as a real client keeps); fill in its
    outcome (client latency, site, the gateway's and server's timings) and return it."""
    import httpx

    path, kwargs = http_request(p)
    headers = {"x-edgeagents-cell": p.cell} if p.cell else {}
    t = time.perf_counter()
    try:
        r = client.post(path, headers=headers, timeout=timeout_s, **kwargs)
        json_body = r.headers.get("content-type", "").startswith("application/json")
        body = r.json() if json_body else {}
        p.status = r.status_code
    except httpx.HTTPError as e:
        body, p.status = {"error": {"code": type(e).__name__}}, 599
    p.latency_s = time.perf_counter() - t
    facts = body.get("x_edgeagents") or {}
    p.site = facts.get("site")
    if p.status != 200:
        p.code = (body.get("error") or {}).get("code") or f"http_{p.status}"
        return p
    p.network_s = facts.get("network_s")
    p.queue_s = facts.get("queue_s")
    p.infer_s = facts.get("infer_s")
    p.batch = facts.get("batch")
    p.retries = facts.get("retries")
    usage = body.get("usage") or {}
    if p.kind in ("llm", "vlm") and "completion_tokens" in usage:
        p.completion_tokens = int(usage["completion_tokens"])
    return p
