"""Workload generation: arrival processes, shifts, trace replay, cells and mobility."""

from __future__ import annotations

import copy
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeagents.core.scenario import Scenario, ScenarioError, load_scenario
from edgeagents.core.state import Prompt
from edgeagents.sim.trace import Trace, load_trace
from edgeagents.sim.workload import Workload, generate_workload

BRISTOL: dict[str, Any] = yaml.safe_load(
    resources.files("edgeagents.scenarios").joinpath("bristol.yaml").read_text()
)
LLM, VLM, T2I, STT = "llama-3.1-8b", "qwen2-vl-7b", "stable-diffusion-1.5", "whisper-large-v3"
DTYPES = {
    "arrival_s": np.float64,
    "model": np.int16,
    "cell": np.int16,
    "input_tokens": np.int32,
    "output_tokens": np.int32,
    "images": np.int16,
    "audio_s": np.float32,
    "resolution_px": np.int32,
    "steps": np.int32,
}


def city(workload: dict[str, Any], *, users: list[int] | None = None) -> Scenario:
    """Bristol with another workload (and optionally other cell populations)."""
    data = copy.deepcopy(BRISTOL)
    data["workload"] = workload
    if users is not None:
        for cell, n in zip(data["cells"], users, strict=True):
            cell["users"] = n
    return Scenario.from_yaml(yaml.safe_dump(data))


def poisson(model: str, rate: float, **extra: Any) -> dict[str, Any]:
    return {"model": model, "arrivals": {"process": "poisson", "rate_per_s": rate}, **extra}


def of_model(w: Workload, name: str) -> np.ndarray:
    return w.model == w.model_names.index(name)


def write_trace(path: Path, n: int = 1000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A trace with exponential gaps (mean 0.5 s) and distinct token counts per row."""
    gaps = np.random.default_rng(seed).exponential(0.5, n - 1)
    t = np.concatenate([[0.0], np.cumsum(gaps)])
    ctx, gen = np.arange(n) + 10, 2 * np.arange(n) + 1
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    lines += [f"{x:.7f},{c},{g}" for x, c, g in zip(t, ctx, gen, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return ctx, gen


def check_invariants(w: Workload, duration: float) -> None:
    for name, dtype in DTYPES.items():
        col = getattr(w, name)
        assert col.dtype == dtype, name
        assert col.shape == (len(w),), name
    assert np.all(np.diff(w.arrival_s) >= 0)
    assert np.all((w.arrival_s >= 0) & (w.arrival_s < duration))
    assert np.all((w.model >= 0) & (w.model < len(w.model_names)))
    assert np.all((w.cell >= 0) & (w.cell < len(w.cell_names)))


def test_bristol_default_generates_every_model_sorted_with_dtypes() -> None:
    sc = load_scenario("bristol")
    w = generate_workload(sc)
    check_invariants(w, sc.duration_s)
    assert w.model_names == tuple(sc.model_names)
    assert w.cell_names == tuple(c.name for c in sc.cells)
    counts = w.counts_by_model()
    assert set(counts) == set(sc.model_names) and all(n > 50 for n in counts.values())
    assert sum(counts.values()) == len(w)
    assert 3000 < len(w) < 6000
    assert set(np.unique(w.cell)) == set(range(len(sc.cells)))
    vlm, t2i, stt = of_model(w, VLM), of_model(w, T2I), of_model(w, STT)
    assert np.all(w.images[vlm] == 1) and np.all(w.images[~vlm] == 0)
    assert np.all(w.output_tokens[t2i] == 0)
    assert np.all(w.resolution_px[t2i] == 512) and np.all(w.steps[t2i] == 30)
    assert np.all(w.resolution_px[~t2i] == 0) and np.all(w.steps[~t2i] == 0)
    assert np.all((w.audio_s[stt] >= 1) & (w.audio_s[stt] <= 600))
    assert np.all(w.audio_s[~stt] == 0) and np.all(w.input_tokens[stt] == 0)
    assert np.all(w.input_tokens[~stt] >= 1) and np.all(w.output_tokens[~t2i] >= 1)


def test_prompt_matches_columns() -> None:
    w = generate_workload(load_scenario("bristol"), duration_s=60)
    i = int(np.flatnonzero(of_model(w, VLM))[0])
    p = w.prompt(i)
    assert isinstance(p, Prompt)
    assert p.id == i and p.model == VLM and p.cell == w.cell_names[w.cell[i]]
    assert p.arrival_s == w.arrival_s[i] and p.images == 1
    assert p.input_tokens == w.input_tokens[i] and p.output_tokens == w.output_tokens[i]


def test_columns_are_read_only() -> None:
    w = generate_workload(load_scenario("bristol"), duration_s=30)
    with pytest.raises(ValueError):
        w.arrival_s[0] = 1.0


def test_same_seed_identical_different_seed_differs() -> None:
    sc = load_scenario("bristol")
    a, b = generate_workload(sc, seed=7), generate_workload(sc, seed=7)
    for name in DTYPES:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = generate_workload(sc, seed=8)
    assert len(a) != len(c) or not np.array_equal(a.arrival_s, c.arrival_s)
    assert not np.array_equal(a.cell[: len(c)], c.cell[: len(a)])


def test_adding_a_demand_leaves_the_others_unchanged() -> None:
    one = city({"demands": [poisson(VLM, 2.0)]})
    two = city({"demands": [poisson(T2I, 1.0), poisson(VLM, 2.0)]})
    a, b = generate_workload(one, seed=3), generate_workload(two, seed=3)
    keep = of_model(b, VLM)
    for name in DTYPES:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name)[keep])


def test_counts_by_model_lists_models_without_demand() -> None:
    w = generate_workload(city({"demands": [poisson(T2I, 1.0)]}), duration_s=100)
    counts = w.counts_by_model()
    assert counts[T2I] == len(w) > 0 and counts[LLM] == counts[VLM] == counts[STT] == 0


def test_zero_duration_is_empty_and_negative_is_refused() -> None:
    sc = load_scenario("bristol")
    w = generate_workload(sc, duration_s=0)
    assert len(w) == 0
    check_invariants(w, 1.0)
    with pytest.raises(ScenarioError, match="duration_s"):
        generate_workload(sc, duration_s=-1)


def dispersion(t: np.ndarray, duration: float, window: float = 10.0) -> float:
    counts = np.bincount((t // window).astype(int), minlength=int(duration // window))
    return float(counts.var() / counts.mean())


def test_poisson_count_and_dispersion() -> None:
    duration, rate = 2000.0, 10.0
    w = generate_workload(city({"demands": [poisson(LLM, rate)]}), duration_s=duration, seed=11)
    expected = rate * duration
    assert abs(len(w) - expected) < 5 * math.sqrt(expected)
    assert 0.8 < dispersion(w.arrival_s, duration) < 1.2


def test_mmpp_mean_rate_and_burstiness() -> None:
    mmpp = {"process": "mmpp", "rate_per_s": 2.0, "burst_factor": 6, "burst_share": 0.2}
    sc = city({"demands": [{"model": VLM, "arrivals": mmpp | {"mean_burst_s": 30}}]})
    duration = 20_000.0
    w = generate_workload(sc, duration_s=duration, seed=5)
    assert abs(len(w) / duration - 2.0) < 0.3
    assert dispersion(w.arrival_s, duration) > 5.0


def test_mmpp_without_bursts_is_poisson() -> None:
    mmpp = {"process": "mmpp", "rate_per_s": 4.0, "burst_share": 0.0}
    w = generate_workload(city({"demands": [{"model": VLM, "arrivals": mmpp}]}), duration_s=2000)
    assert abs(len(w) - 8000) < 5 * math.sqrt(8000)
    assert 0.8 < dispersion(w.arrival_s, 2000) < 1.2


def test_step_shift_doubles_the_rate_of_its_model_only() -> None:
    wl = {
        "demands": [poisson(LLM, 5.0), poisson(VLM, 5.0)],
        "shifts": [{"at_s": 1000, "model": LLM, "factor": 2.0}],
    }
    w = generate_workload(city(wl), duration_s=2000, seed=2)
    for name, ratio in ((LLM, 2.0), (VLM, 1.0)):
        t = w.arrival_s[of_model(w, name)]
        after, before = np.sum(t >= 1000), np.sum(t < 1000)
        assert abs(after / before - ratio) < 0.15 * ratio, name


def test_shift_without_model_scales_every_model() -> None:
    wl = {
        "demands": [poisson(LLM, 5.0), poisson(VLM, 5.0)],
        "shifts": [{"at_s": 500, "factor": 0.0}],
    }
    w = generate_workload(city(wl), duration_s=1000)
    assert len(w) > 0 and w.arrival_s.max() < 500


def test_diurnal_swing_has_peak_and_trough() -> None:
    wl = {"demands": [poisson(LLM, 10.0)], "diurnal": {"amplitude": 0.5, "period_s": 1000}}
    w = generate_workload(city(wl), duration_s=1000, seed=4)
    high, low = np.sum(w.arrival_s < 500), np.sum(w.arrival_s >= 500)
    expected = (1 + 1 / math.pi) / (1 - 1 / math.pi)  # mean of 1 + 0.5 sin over each half
    assert abs(high / low - expected) < 0.15 * expected


def test_trace_replay_matches_rate_and_token_counts(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    ctx, gen = write_trace(path)
    sc = city({"demands": [poisson(LLM, 2.0, trace=str(path))]})
    period = len(ctx) / 2.0  # the trace's requests at 2 prompts/s
    w = generate_workload(sc, duration_s=3 * period)
    assert abs(len(w) - 3 * len(ctx)) <= 1  # three full passes, wrapping around
    np.testing.assert_array_equal(w.input_tokens[: len(ctx)], ctx)
    np.testing.assert_array_equal(w.output_tokens[: len(ctx)], gen)
    np.testing.assert_array_equal(w.input_tokens[len(ctx) : 2 * len(ctx)], ctx)
    gaps = np.diff(load_trace(path).arrival_s)
    np.testing.assert_allclose(np.diff(w.arrival_s[: len(ctx)]), gaps * 0.5 / gaps.mean())


def test_trace_offset_starts_later_in_the_trace(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    ctx, _ = write_trace(path)
    offset = float(load_trace(path).arrival_s[300])
    sc = city({"demands": [poisson(LLM, 2.0, trace=str(path), trace_offset_s=offset)]})
    w = generate_workload(sc, duration_s=50)
    assert w.input_tokens[0] == ctx[300] and w.arrival_s[0] == 0.0


def test_trace_rate_zero_gives_nothing(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    write_trace(path)
    sc = city({"demands": [poisson(LLM, 0.0, trace=str(path)), poisson(VLM, 1.0)]})
    assert generate_workload(sc, duration_s=100).counts_by_model()[LLM] == 0


@pytest.mark.parametrize("factor", [0.5, 2.0, 3.0])
def test_trace_follows_step_shifts(tmp_path: Path, factor: float) -> None:
    path = tmp_path / "trace.csv"
    ctx, gen = write_trace(path, n=2000)
    wl = {
        "demands": [poisson(LLM, 2.0, trace=str(path))],
        "shifts": [{"at_s": 1000, "model": LLM, "factor": factor}],
    }
    w = generate_workload(city(wl), duration_s=2000, seed=9)
    after, before = np.sum(w.arrival_s >= 1000), np.sum(w.arrival_s < 1000)
    assert before == 2000 and abs(after / before - factor) < 0.1 * factor
    pairs = set(zip(ctx.tolist(), gen.tolist(), strict=True))
    assert set(zip(w.input_tokens.tolist(), w.output_tokens.tolist(), strict=True)) <= pairs


def test_trace_path_overrides_llm_demands_only(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    ctx, _ = write_trace(path)
    w = generate_workload(load_scenario("bristol"), duration_s=120, trace_path=path)
    llm = of_model(w, LLM)
    assert set(w.input_tokens[llm].tolist()) <= set(ctx.tolist())
    assert abs(llm.sum() - 5.4 * 120) < 0.05 * 5.4 * 120  # the local trace is near-uniform
    assert w.counts_by_model()[VLM] > 0


def test_builtin_azure_trace_feeds_bristol_llm() -> None:
    trace = load_trace("azure-conv")
    assert load_trace("azure-conv") is trace
    assert len(trace) > 19_000 and trace.arrival_s[0] == 0.0
    assert trace.arrival_s[1] == pytest.approx(4.314579, abs=1e-6)
    assert (trace.input_tokens[0], trace.output_tokens[0]) == (374, 44)
    w = generate_workload(load_scenario("bristol"), duration_s=300)
    llm = of_model(w, LLM)
    pairs = set(zip(trace.input_tokens.tolist(), trace.output_tokens.tolist(), strict=True))
    got = set(zip(w.input_tokens[llm].tolist(), w.output_tokens[llm].tolist(), strict=True))
    assert got <= pairs


def test_load_trace_formats(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(
        "extra,TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "x,2023-11-16 23:59:59.5000000,5,6\n\n"
        "y,2023-11-17T00:00:00.7500001,7,8\n"
    )
    trace = load_trace(path)
    assert isinstance(trace, Trace)
    np.testing.assert_allclose(trace.arrival_s, [0.0, 1.2500001], atol=1e-6)
    assert trace.input_tokens.dtype == np.int32 and trace.output_tokens.tolist() == [6, 8]
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n10.5,1,2\n12,3,4\n")
    np.testing.assert_allclose(load_trace(path).arrival_s, [0.0, 1.5])


HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
GOOD = "2023-11-16 18:15:46.6805900,374,44\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty file"),
        (HEADER, "no requests"),
        ("TIMESTAMP,ContextTokens\n1,2\n", "line 1: missing column GeneratedTokens"),
        (HEADER + GOOD + "2023-11-16 18:15:47.1,-3,5\n", "line 3: ContextTokens is negative (-3)"),
        (HEADER + GOOD + "2023-11-16 18:15:47.1,3,many\n", "line 3: GeneratedTokens is not"),
        (HEADER + GOOD + "yesterday at noon,3,5\n", "line 3: TIMESTAMP is not"),
        (HEADER + GOOD + "2023-11-16 25:15:47.1,3,5\n", "line 3: TIMESTAMP is not"),
        (HEADER + GOOD + "2023-11-16 18:15:40.0,3,5\n", "line 3: TIMESTAMP"),
        (HEADER + GOOD + "2023-11-16 18:15:47.0,3\n", "line 3: expected 3 fields"),
        (HEADER + GOOD + GOOD, "one time"),
    ],
)
def test_load_trace_errors_are_one_line_naming_the_file(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad-trace.csv"
    path.write_text(text)
    with pytest.raises(ScenarioError) as err:
        load_trace(path)
    message = str(err.value)
    assert "\n" not in message and "bad-trace.csv" in message and expected in message


def test_load_trace_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nowhere\.csv: cannot read") as err:
        load_trace(tmp_path / "nowhere.csv")
    assert "\n" not in str(err.value)


def test_bad_trace_in_scenario_raises_scenario_error(tmp_path: Path) -> None:
    sc = city({"demands": [poisson(LLM, 1.0, trace=str(tmp_path / "gone.csv"))]})
    with pytest.raises(ScenarioError, match=r"gone\.csv"):
        generate_workload(sc)


def test_sizes_have_the_configured_lognormal_means() -> None:
    wl = {
        "demands": [
            poisson(VLM, 20.0, sizes={"input_tokens_mean": 300, "output_tokens_mean": 50}),
            poisson(LLM, 20.0),
            poisson(STT, 20.0, sizes={"audio_s_mean": 10}),
        ]
    }
    w = generate_workload(city(wl), duration_s=1000, seed=1)
    vlm, llm, stt = of_model(w, VLM), of_model(w, LLM), of_model(w, STT)
    assert w.input_tokens[vlm].mean() == pytest.approx(300, rel=0.03)
    assert w.output_tokens[vlm].mean() == pytest.approx(50, rel=0.03)
    assert w.input_tokens[llm].mean() == pytest.approx(1000, rel=0.03)
    assert w.output_tokens[llm].mean() == pytest.approx(200, rel=0.03)
    assert w.audio_s[stt].mean() == pytest.approx(10, rel=0.05)
    per_second = w.output_tokens[stt].sum() / w.audio_s[stt].sum()
    assert per_second == pytest.approx(3.0, rel=0.05)


def cell_share(w: Workload, name: str, mask: np.ndarray) -> float:
    return float(np.mean(w.cell[mask] == w.cell_names.index(name)))


def test_cells_follow_population_without_mobility() -> None:
    sc = city({"demands": [poisson(LLM, 20.0)]})
    w = generate_workload(sc, duration_s=1000, seed=2)
    users = np.array([c.users for c in sc.cells], dtype=float)
    share = np.bincount(w.cell, minlength=len(users)) / len(w)
    np.testing.assert_allclose(share, users / users.sum(), atol=0.015)


@pytest.mark.parametrize("mobility", [None, {"moves_per_user_per_h": 30, "tracked_users": 3000}])
def test_cell_shift_reweights_users(mobility: dict[str, Any] | None) -> None:
    wl = {
        "demands": [poisson(LLM, 20.0)],
        "shifts": [
            {"at_s": 300, "cell": "temple-meads", "factor": 0.0},
            {"at_s": 300, "cell": "clifton", "factor": 4.0},
        ],
        "mobility": mobility,
    }
    w = generate_workload(city(wl), duration_s=600, seed=6)
    before, after = w.arrival_s < 300, w.arrival_s >= 300
    assert cell_share(w, "temple-meads", before) > 0.2
    assert cell_share(w, "temple-meads", after) == 0.0
    assert cell_share(w, "clifton", after) > 2.5 * cell_share(w, "clifton", before)
    assert abs(after.sum() - before.sum()) < 0.1 * before.sum()  # the split moves, not the rate


def test_mobility_spreads_users_to_neighbouring_cells() -> None:
    users = [3000, 0, 0, 0, 0, 0, 0]  # everyone starts in temple-meads
    wl = {
        "demands": [poisson(LLM, 20.0)],
        "mobility": {"moves_per_user_per_h": 60, "tracked_users": 2000},
    }
    w = generate_workload(city(wl, users=users), duration_s=1200, seed=3)
    early, late = w.arrival_s < 2, w.arrival_s > 900
    assert cell_share(w, "temple-meads", early) > 0.9
    assert cell_share(w, "temple-meads", late) < 0.5
    assert len(np.unique(w.cell[late])) == len(w.cell_names)
    first_move = np.flatnonzero(w.cell != 0)[0]
    neighbours = {"harbourside", "cabot-circus", "bedminster"}
    assert w.cell_names[w.cell[first_move]] in neighbours


def test_without_mobility_cells_stay_with_population() -> None:
    users = [3000, 0, 0, 0, 0, 0, 0]
    still = {"moves_per_user_per_h": 0, "tracked_users": 500}
    for mobility in (None, still):
        wl = {"demands": [poisson(LLM, 5.0)], "mobility": mobility}
        w = generate_workload(city(wl, users=users), duration_s=600)
        assert len(w) > 0 and np.all(w.cell == 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    duration=st.floats(0.0, 300.0),
    process=st.sampled_from(["poisson", "mmpp"]),
    rate=st.floats(0.0, 20.0),
    factor=st.floats(0.0, 3.0),
    mobile=st.booleans(),
)
def test_invariants_hold_for_any_configuration(
    seed: int, duration: float, process: str, rate: float, factor: float, mobile: bool
) -> None:
    wl = {
        "demands": [
            {"model": VLM, "arrivals": {"process": process, "rate_per_s": rate}},
            poisson(STT, 1.0),
            poisson(LLM, rate, trace="azure-conv", trace_offset_s=seed % 3000),
        ],
        "shifts": [
            {"at_s": duration / 2, "model": VLM, "factor": factor},
            {"at_s": duration / 3, "cell": "clifton", "factor": factor},
        ],
        "diurnal": {"amplitude": 0.4, "period_s": 100},
        "mobility": {"moves_per_user_per_h": 20, "tracked_users": 300} if mobile else None,
    }
    sc = city(wl)
    w = generate_workload(sc, duration_s=duration, seed=seed)
    check_invariants(w, max(duration, 1e-9))
    again = generate_workload(sc, duration_s=duration, seed=seed)
    np.testing.assert_array_equal(w.arrival_s, again.arrival_s)
    np.testing.assert_array_equal(w.cell, again.cell)
