"""The fidelity pieces of `edgeagents serve` without a Ray cluster: calibration fits profiles
the simulator accepts, the replay serves exactly the prompts sent, the report's figures."""

from __future__ import annotations

import os

import numpy as np
import pytest

from edgeagents.core.scenario import Scenario, load_scenario
from edgeagents.core.state import Decision, DeploymentAction
from serving.calibration import (
    Calibration,
    calibrated_scenario,
    fit_model,
    fit_profile,
)
from serving.loadgen import SentPrompt
from serving.replay import (
    fidelity,
    measured_outcomes,
    replay,
    replay_workload,
    serve_results,
)

PLACEMENT = {
    "temple-meads": ["llama-3.1-8b"],
    "harbourside": ["stable-diffusion-1.5"],
    "clifton": ["whisper-large-v3"],
    "cabot-circus": ["qwen2-vl-7b"],
}
STEP_S, PREFILL_S = 0.02, 0.001  # the fake LLM: 1 ms per input token, 20 ms per output token


def _served(model: str, kind: str, infer_s: float, **sizes: float) -> SentPrompt:
    p = SentPrompt(model=model, kind=kind, cell=None, arrival_s=0.0, **sizes)  # type: ignore[arg-type]
    p.status, p.infer_s, p.queue_s, p.network_s, p.batch = 200, infer_s, 0.0, 0.0, 1
    p.latency_s = infer_s + 0.015  # 15 ms of gateway overhead
    return p


def _calibration(sc: Scenario) -> Calibration:
    llm = [
        _served("llama-3.1-8b", "llm", PREFILL_S * i + STEP_S * o, input_tokens=i, output_tokens=o)
        for i, o in ((1, 1), (1, 16), (50, 1), (200, 1))
    ]
    vlm = [
        _served("qwen2-vl-7b", "vlm", 0.1 + 0.01 * o, input_tokens=i, output_tokens=o)
        for i, o in ((1, 1), (1, 16), (25, 1))
    ]
    sd = [
        _served("stable-diffusion-1.5", "text-to-image", 0.05 + 0.03 * s, input_tokens=8,
                resolution_px=16, steps=s)
        for s in (1, 4)
    ]  # fmt: skip
    asr = [
        _served("whisper-large-v3", "speech-to-text", 0.16, audio_s=a, output_tokens=16)
        for a in (0.5, 3.0)
    ]
    kinds = {"llama-3.1-8b": llm, "qwen2-vl-7b": vlm, "stable-diffusion-1.5": sd,
             "whisper-large-v3": asr}  # fmt: skip
    return Calibration(
        models={
            m: fit_model(m, sc.model(m).kind, points, source="probes")
            for m, points in kinds.items()
        },
        wall_s=0.0,
    )


@pytest.fixture(scope="module")
def calibrated() -> tuple[Scenario, Calibration]:
    sc = load_scenario("bristol")
    cal = _calibration(sc)
    return calibrated_scenario(
        sc, cal, placement=PLACEMENT, max_batch=4, max_queue_per_server=16
    ), cal


def test_calibration_fits_profiles_the_simulator_accepts(
    calibrated: tuple[Scenario, Calibration],
) -> None:
    from edgeagents.core.profiles import service_model

    cal_sc, cal = calibrated
    llm = cal.models["llama-3.1-8b"]
    assert llm.overhead_s == pytest.approx(0.015)
    step = llm.profile["decode_step"][0]["median_s"]
    assert step == pytest.approx(STEP_S, rel=1e-6)
    spec = cal_sc.model("llama-3.1-8b")
    svc = service_model(spec, cal_sc.gpu_catalogue["measured-host"], cal_sc.engine)
    # The simulator's stand-alone time of the probed sizes is what the fake server took.
    assert svc.standalone_s(200, 1) == pytest.approx(PREFILL_S * 200 + STEP_S, rel=1e-6)
    assert svc.standalone_s(50, 10) == pytest.approx(PREFILL_S * 50 + STEP_S * 10, rel=1e-6)
    assert svc.iter_s(4) == pytest.approx(4 * STEP_S)  # a batch runs one request after another
    sd = service_model(cal_sc.model("stable-diffusion-1.5"), svc.gpu, cal_sc.engine)
    assert sd.standalone_s(8, 0, resolution_px=16, steps=2) == pytest.approx(0.11, rel=1e-6)
    # The calibrated scenario is a scenario file like any other: it round-trips.
    again = Scenario.from_yaml(_yaml(cal_sc))
    assert again.profiles == cal_sc.profiles
    with pytest.raises(ValueError, match="decode_step"):
        bad = fit_profile("llm", [])
        bad.pop("decode_step")
        data = cal_sc.model_dump(mode="json")
        data["profiles"] = {"llm@broken": bad}
        data["models"][0]["profile"] = "llm@broken"
        Scenario.model_validate(data)


def _yaml(sc: Scenario) -> str:
    import yaml

    return yaml.safe_dump(sc.model_dump(mode="json"))


def _sent(cal_sc: Scenario) -> list[SentPrompt]:
    """Prompts as the load generator keeps them, out of send order, one refused."""
    rows = [
        ("llama-3.1-8b", "llm", 2.0, {"input_tokens": 40, "output_tokens": 16}, "temple-meads"),
        ("whisper-large-v3", "speech-to-text", 0.5, {"audio_s": 3.0, "output_tokens": 16},
         "clifton"),
        ("llama-3.1-8b", "llm", 1.0, {"input_tokens": 200, "output_tokens": 8}, "temple-meads"),
        ("qwen2-vl-7b", "vlm", 3.0, {"input_tokens": 5, "output_tokens": 4, "images": 1},
         "filton"),
        ("stable-diffusion-1.5", "text-to-image", 4.0,
         {"input_tokens": 8, "resolution_px": 16, "steps": 2}, "harbourside"),
        ("llama-3.1-8b", "llm", 6.0, {"input_tokens": 3, "output_tokens": 2}, None),
    ]  # fmt: skip
    out = []
    for model, kind, t, sizes, site in rows:
        p = SentPrompt(model=model, kind=kind, cell="clifton", arrival_s=t, **sizes)  # type: ignore[arg-type]
        p.sent_s, p.site = t + 0.01, site
        if site is None:
            p.status, p.code = 429, "queue_full"
        else:
            p.status, p.latency_s, p.network_s, p.queue_s, p.infer_s = 200, 0.5, 0.01, 0.0, 0.4
            p.completion_tokens = sizes.get("output_tokens") if kind in ("llm", "vlm") else None
        out.append(p)
    return out


def test_replay_serves_exactly_the_prompts_sent(calibrated: tuple[Scenario, Calibration]) -> None:
    cal_sc, cal = calibrated
    sent = _sent(cal_sc)
    w, order = replay_workload(cal_sc, sent)
    ps = [sent[k] for k in order]
    assert len(w) == len(sent) and sorted(order) == list(range(len(sent)))
    assert list(w.arrival_s) == sorted(p.sent_s for p in sent)
    assert [w.model_names[m] for m in w.model] == [p.model for p in ps]
    assert list(w.input_tokens) == [p.input_tokens for p in ps]
    assert list(w.output_tokens) == [p.output_tokens for p in ps]
    assert list(w.steps) == [p.steps for p in ps] and list(w.images) == [p.images for p in ps]
    # filton has no VLM at first: the load takes effect at 2.5 s, before that prompt.
    timeline = [
        Decision(
            time_s=2.5,
            actions=[DeploymentAction(site="filton", model="qwen2-vl-7b", op="load", max_batch=4)],
        )
    ]
    out = replay(cal_sc, w, timeline, [p.site for p in ps])
    assert not np.any(np.isnan(out.latency_s))  # every prompt served (a refused one too)
    names = cal_sc.site_names
    assert [names[s] for s in out.site[:-1]] == [p.site for p in ps[:-1]]
    # Alone on its server, the first LLM prompt takes exactly its profiled time + network.
    first = order.index(2)
    assert out.infer_s[first] == pytest.approx(PREFILL_S * 200 + STEP_S * 8, rel=1e-6)
    assert out.queue_s[first] == pytest.approx(0.0, abs=1e-9)

    measured = measured_outcomes(cal_sc, ps)
    assert np.isnan(measured.latency_s[-1]) and measured.refused[-1] >= 0
    over = {m: c.overhead_s for m, c in cal.models.items()}
    fid = fidelity(cal_sc, w, measured, out, over, dict.fromkeys(over, "probes"))
    assert fid.overall.prompts == len(sent) - 1
    for f in fid.models:
        assert f.error is not None and np.isfinite(f.error)
        assert f.simulated_mean_s == pytest.approx(
            f.simulated_parts_s["network"] + f.simulated_parts_s["queue"]
            + f.simulated_parts_s["cold"] + f.simulated_parts_s["infer"] + f.overhead_s
        )  # fmt: skip

    results = serve_results("agents", cal_sc, w, measured, {"simulator": (out, over)},
                            refused_codes={"queue_full": 1})  # fmt: skip
    meas, sim, low = results
    assert (meas.served, meas.refused, meas.refused_by_reason) == (5, 1, {"queue_full": 1})
    assert meas.mean_latency_s == pytest.approx(0.5)
    # Jain over the measured per-model means, with ref_k from the calibrated profiles.
    speeds = [m.normalized_speed for m in meas.per_model]
    assert all(s is not None and s > 0 for s in speeds)
    assert meas.jain == pytest.approx(sum(speeds) ** 2 / (len(speeds) * sum(s * s for s in speeds)))
    assert sim.served == 6 and low.policy == "lower-bound"


def test_a_run_fit_finds_each_batch_by_its_shared_time() -> None:
    """Two requests that ran as one batch (same site, time and batch size) are one point with
    summed sizes; the fitted step then matches the batch's time."""
    batch = [_served("llama-3.1-8b", "llm", 0.5, input_tokens=10, output_tokens=5)
             for _ in range(2)]  # fmt: skip
    alone = _served("llama-3.1-8b", "llm", 0.125, input_tokens=10, output_tokens=5)
    alone.infer_s = 0.125
    for p in batch:
        p.batch, p.site = 2, "temple-meads"
    alone.site = "temple-meads"
    fit = fit_model("llama-3.1-8b", "llm", [*batch, alone], source="run")
    assert sorted(p["requests"] for p in fit.points) == [1.0, 2.0]
    two = next(p for p in fit.points if p["requests"] == 2)
    assert (two["input_tokens"], two["output_tokens"], two["infer_s"]) == (20.0, 10.0, 0.5)


@pytest.mark.enable_socket  # holds a port on 127.0.0.1 busy
@pytest.mark.allow_hosts(["127.0.0.1"])
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--scenario", "nowhere.yaml"], "no such scenario file"),
        (["--duration", "0"], "--duration 0"),
        (["--rate", "-1"], "--rate -1"),
        (["--port", "PORT"], "is in use"),
    ],
)
def test_bad_serve_input_is_one_line_exit_2(args: list[str], expected: str) -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        argv = [port if a == "PORT" else a for a in args]
        res = subprocess.run(
            [sys.executable, "-m", "edgeagents", "serve", *argv],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert res.returncode == 2
    assert expected in res.stderr and "Traceback" not in res.stderr + res.stdout
    assert len(res.stderr.strip().splitlines()) == 1


def test_host_cpu_figures_are_busy_cores() -> None:
    from serving.calibration import busy_cores, cpu_times, wait_quiet

    t = cpu_times()
    sum(i * i for i in range(200_000))  # some work of our own
    busy = busy_cores(t)
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-9
    quiet = wait_quiet(0.0)
    assert quiet is None or quiet >= 0.0
