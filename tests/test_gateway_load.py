"""A bounded load test over real HTTP on 127.0.0.1 (`serving.loadtest`): the gateway's
production routes under uvicorn over in-process `ModelServer`s with a timed fake engine, many
clients at once. Nothing may be lost, no 5xx, every 429 an OpenAI-style error, and the gateway
must serve afterwards. No Ray cluster is started."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("hypothesis")
pytest.importorskip("python_multipart")
pytest.importorskip("uvicorn")
pytest.importorskip("ray")  # serving.app imports ray.serve (no cluster is started)

from one_line import exits_2_with_one_line

from serving.load_report import LoadReport, LoadSettings
from serving.loadtest import KINDS, main, run_load


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_twenty_clients_over_a_small_bound_lose_nothing_and_get_openai_429s() -> None:
    """3 s of load on in-flight bound 1: about 2,000 answers here (2 cores), 40% of them 429."""
    settings = LoadSettings(clients=20, duration_s=3, max_inflight=1, service_ms=20, seed=1)
    report = run_load(settings)
    total = report.total
    assert report.ok, (report.nonconforming, report.unserved_after, report.transport_errors)
    assert total.sent == sum(total.answers.values()) > 100 and total.lost == 0
    assert total.answers["5xx"] == total.answers["other"] == total.timeouts == 0
    assert total.answers["200"] > 0 and total.answers["429"] > 0
    assert report.nonconforming == [] and report.transport_errors == {}
    assert report.error_codes == {"429 queue_full": total.answers["429"]}  # OpenAI-style JSON
    assert set(report.by_kind) == set(KINDS)
    assert all(c.answers["200"] > 0 and c.lost == 0 for c in report.by_kind.values())
    assert report.unserved_after == []
    ok, refused = total.latency_200, total.latency_429
    assert ok.p50_ms is not None and ok.p99_ms is not None and ok.p50_ms >= 20  # service time
    assert refused.p50_ms is not None and ok.p50_ms <= ok.p99_ms
    assert 0 < report.share_429 < 1 and report.requests_per_s > 0
    assert report.elapsed_s >= 3


@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_the_cli_prints_a_table_and_one_summary_line_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "load.json"
    argv = ["--clients", "5", "--duration", "0.5", "--seed", "2", "--json", str(path)]
    assert main(argv) == 0
    report = LoadReport.model_validate_json(path.read_text())
    assert report.ok and report.settings.clients == 5 and report.settings.seed == 2
    out = capsys.readouterr().out
    assert "gateway load: 5 clients" in out and "audio" in out
    summary = [line for line in out.splitlines() if " answers in " in line]
    assert len(summary) == 1 and "lost 0, 5xx 0" in summary[0] and "served" in summary[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--clients", "0"], "--clients: input should be greater than or equal to 1, got 0"),
        (["--clients", "many"], "invalid int value"),
        (["--duration", "0"], "--duration: input should be greater than 0"),
        (["--duration", "-5"], "--duration: input should be greater than 0"),
        (["--duration", "inf"], "--duration: input should be a finite number"),
        (["--max-inflight", "0"], "--max-inflight: input should be greater than or equal to 1"),
        (["--json", "/no/such/dir/load.json"], "--json: cannot write"),
        (["--json", "/"], "--json: cannot write"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert needle in exits_2_with_one_line(main, argv, capsys)
