"""Serving pieces without a Ray cluster: routing weights, back-pressure, emulated delay, WAV
decoding, and the model server's batching over an injected fake engine."""

from __future__ import annotations

import asyncio
import io
import wave
from collections import Counter
from typing import Any

import numpy as np
import pytest

pytest.importorskip("starlette")

from edgeagents.core.state import RoutingPolicy
from serving.config import ModelServerConfig
from serving.engines import SAMPLE_RATE_HZ, EngineError, decode_wav
from serving.gateway import Gateway
from serving.server import ModelServer

PLACEMENT = {"temple-meads": ["llama-3.1-8b"], "clifton": ["llama-3.1-8b"]}


def _gateway(**over: Any) -> Gateway:
    def no_handle(app: str) -> Any:
        raise AssertionError(f"no server call expected ({app})")

    return Gateway({"placement": PLACEMENT, **over}, handle_factory=no_handle)


def test_candidates_follow_policy_weights() -> None:
    gw = _gateway(seed=1)
    gw.set_policy(
        RoutingPolicy.model_validate(
            {
                "routes": {
                    "llama-3.1-8b": [
                        {"site": "temple-meads", "weight": 3.0},
                        {"site": "clifton", "weight": 1.0},
                        {"site": "filton", "weight": 100.0},  # not placed: ignored
                    ]
                }
            }
        )
    )
    first = Counter(gw.candidates("llama-3.1-8b")[0] for _ in range(4000))
    assert set(first) == {"temple-meads", "clifton"}
    assert first["temple-meads"] / 4000 == pytest.approx(0.75, abs=0.03)


def test_in_flight_requests_shift_and_then_stop_traffic() -> None:
    gw = _gateway(max_queue_per_server=3, seed=2)
    gw._inflight[("llama-3.1-8b", "temple-meads")] = 2  # weight 1/3 against clifton's 1
    first = Counter(gw.candidates("llama-3.1-8b")[0] for _ in range(3000))
    assert first["clifton"] / 3000 == pytest.approx(0.75, abs=0.03)
    gw._inflight[("llama-3.1-8b", "temple-meads")] = 3  # at the bound: left out
    assert gw.candidates("llama-3.1-8b") == ["clifton"]
    assert gw.candidates("whisper-large-v3") == []


def test_emulated_delay_is_radio_plus_backhaul() -> None:
    gw = _gateway()
    # clifton cell -> temple-meads site: clifton-harbourside 0.8 ms + harbourside-temple 0.5 ms.
    cell = next(c for c in gw.scenario.cells if c.name == "clifton")
    up = gw._delay_s("clifton", "temple-meads", 1000.0, up=True)
    expected = cell.radio_rtt_ms / 2000 + 8000 / (cell.uplink_mbps * 1e6) + 0.0013 + 8000 / 10e9
    assert up == pytest.approx(expected, rel=1e-6)
    assert gw._delay_s(None, "temple-meads", 1000.0, up=True) == 0.0


def _wav(rate: int, channels: int, seconds: float) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.full(int(rate * seconds) * channels, 16383, np.int16).tobytes())
    return buf.getvalue()


def test_decode_wav_resamples_to_16k_mono() -> None:
    x = decode_wav(_wav(8000, 2, 0.5))
    assert x.dtype == np.float32
    assert x.size == SAMPLE_RATE_HZ // 2
    assert x.max() == pytest.approx(0.5, abs=1e-3)
    with pytest.raises(EngineError):
        decode_wav(b"RIFF....WAVEnope")


class _FakeEngine:
    """Records batch sizes; echoes each prompt (the model server's logic is what is tested)."""

    backend = "fake"
    synthetic_weights = True
    weights = "fake"

    def __init__(self, config: ModelServerConfig) -> None:
        self.batches: list[int] = []

    def load(self) -> None:
        pass

    def run_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.batches.append(len(requests))
        if any(r.get("bad") for r in requests):
            raise EngineError("bad request in batch")
        return [{"echo": r["x"]} for r in requests]

    def memory_bytes(self) -> int:
        return 1


def test_model_server_batches_queued_requests() -> None:
    cfg = ModelServerConfig(model="m", site="s", backend="llama-cpp", max_batch=4, batch_wait_ms=20)
    server = ModelServer(cfg, engine_cls=_FakeEngine)

    async def go() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        replies = await asyncio.gather(*(server.infer({"x": i}) for i in range(10)))
        return replies, await server.infer({"x": 0, "bad": True})

    replies, bad = asyncio.run(asyncio.wait_for(go(), 30))
    assert [r["result"]["echo"] for r in replies] == list(range(10))
    assert server.engine.batches[:3] == [4, 4, 2]
    assert bad == {"error": "bad request in batch", "status": 400}
    stats = server.stats()
    assert stats["served"] == 10 and stats["errors"] == 1 and stats["synthetic_weights"]


@pytest.mark.parametrize("backend", ["whisper", "diffusers", "vlm"])
def test_real_weights_load_from_a_local_path_only(backend: str, tmp_path: Any) -> None:
    """A missing weights path fails at load, with sockets blocked: nothing is fetched."""
    pytest.importorskip("diffusers" if backend == "diffusers" else "transformers")
    from pytest_socket import disable_socket, enable_socket

    from serving.engines import create_engine

    engine = create_engine(
        ModelServerConfig(
            model="m", site="s", backend=backend, weights_path=str(tmp_path / "absent")
        )
    )
    assert engine.synthetic_weights is False
    disable_socket()
    try:
        with pytest.raises((OSError, ValueError)):
            engine.load()
    finally:
        enable_socket()


def test_serve_command_is_a_typer_subcommand() -> None:
    from typer.testing import CliRunner

    from serving.command import app

    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--scenario", "--duration", "--rate", "--policy", "--llm", "--json"):
        assert option in result.output


class _FlakyServer:
    """A server handle whose first `fail` calls raise as a dead replica does."""

    def __init__(self, fail: int) -> None:
        self.fail, self.calls = fail, 0
        self.infer = self

    def remote(self, request: dict[str, Any]) -> Any:
        self.calls += 1

        async def reply() -> dict[str, Any]:
            if self.calls <= self.fail:
                raise RuntimeError("actor died")
            return {"result": {"text": "ok"}}

        return reply()


def test_a_dead_replica_is_retried_once_then_fails_clearly() -> None:
    from serving.protocol import OpenAIError

    flaky = _FlakyServer(fail=1)
    gw = Gateway(
        {"placement": {"clifton": ["whisper-large-v3"]}, "retry_backoff_s": 0.01},
        handle_factory=lambda app: flaky,
    )
    reply, facts = asyncio.run(gw._call("whisper-large-v3", {}, None, 0.0))
    assert reply == {"result": {"text": "ok"}}
    assert (facts["site"], facts["retries"], flaky.calls) == ("clifton", 1, 2)

    flaky.fail, flaky.calls = 5, 0
    with pytest.raises(OpenAIError) as err:
        asyncio.run(gw._call("whisper-large-v3", {}, None, 0.0))
    assert (err.value.status, err.value.code, flaky.calls) == (503, "replica_failed", 2)
    assert gw._inflight[("whisper-large-v3", "clifton")] == 0


class _HangingServer:
    """A server handle whose calls never answer (its node is gone, Serve has no replica)."""

    def __init__(self) -> None:
        self.infer = self

    def remote(self, request: dict[str, Any]) -> Any:
        return asyncio.Event().wait()


def test_a_call_to_a_site_that_goes_down_is_retried_elsewhere_or_refused() -> None:
    """The gateway watches which sites some live node offers: the call in flight to a site
    that goes down stops waiting and goes to another site; with every site of the model down,
    a request is refused with `site_down`."""
    from serving.protocol import OpenAIError

    model, live = "whisper-large-v3", set[str]()
    gw = Gateway(
        {"placement": {"clifton": [model], "southmead": [model]}, "liveness_poll_s": 0.01},
        handle_factory=lambda app: _HangingServer() if app.endswith("clifton") else _FlakyServer(0),
        live_sites=lambda: set(live),
    )
    live |= set(gw.scenario.site_names)  # every site has a node
    gw.set_policy({"routes": {model: [{"site": "clifton", "weight": 1.0}]}})

    async def scenario() -> tuple[Any, list[str], OpenAIError]:
        call = asyncio.create_task(gw._call(model, {}, None, 0.0))
        await asyncio.sleep(0.1)
        assert not call.done()  # waiting on clifton
        live.discard("clifton")
        answer = await asyncio.wait_for(call, 5)
        down = gw.down_sites()
        live.discard("southmead")
        await asyncio.sleep(0.1)
        with pytest.raises(OpenAIError) as err:
            await gw._call(model, {}, None, 0.0)
        return answer, down, err.value

    (_, facts), down, refused = asyncio.run(scenario())
    assert (facts["site"], facts["retries"], down) == ("southmead", 1, ["clifton"])
    assert (refused.status, refused.code) == (503, "site_down")
    assert gw._inflight[(model, "clifton")] == 0
