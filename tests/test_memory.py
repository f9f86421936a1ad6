"""The experience store (memory/): round trip, persistence across processes, retrieval
relevance for both embeddings, export/import, offline guarantee, bad paths, the CLI."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("chromadb")

from edgeagents.core.state import ModelTelemetry, SiteTelemetry, Telemetry
from memory.errors import MemoryStoreError
from memory.experience import Experience, feature_names, summarize_situation
from memory.store import ExperienceStore

ROOT = Path(__file__).resolve().parents[1]
SITES = ["harbour", "centre", "university"]
CELLS = {"harbour": "docks", "centre": "old-town", "university": "campus"}
MODELS = ["llama-8b", "llava-7b", "sdxl"]


def telemetry(kind: str, rng: random.Random, time_s: float = 600.0) -> Telemetry:
    """A city in one of four situations, with noise: calm, site-failure, text-surge,
    image-surge."""

    def j(x: float) -> float:
        return max(0.0, x * rng.uniform(0.85, 1.15))

    rates = {"llama-8b": 1.0, "llava-7b": 0.3, "sdxl": 0.1}
    lat = {"llama-8b": 2.0, "llava-7b": 3.0, "sdxl": 6.0}
    queue = {"llama-8b": 0, "llava-7b": 0, "sdxl": 0}
    busy = {"harbour": 0.2, "centre": 0.25, "university": 0.15}
    up = {s: True for s in SITES}
    refusals: dict[str, int] = {}
    hot = "centre"
    if kind == "site-failure":
        up["harbour"] = False
        busy.update(harbour=0.0, centre=0.85, university=0.8)
        lat = {m: v * 3 for m, v in lat.items()}
        queue = {"llama-8b": 12, "llava-7b": 5, "sdxl": 3}
        refusals = {"site_failed": int(j(40))}
        hot = "harbour"
    elif kind == "text-surge":
        rates["llama-8b"] = 9.0
        queue["llama-8b"] = 60
        lat["llama-8b"] = 25.0
        busy.update(centre=0.95, university=0.9)
        refusals = {"queue_full": int(j(15))}
        hot = "university"
    elif kind == "image-surge":
        rates["sdxl"] = 2.5
        queue["sdxl"] = 30
        lat["sdxl"] = 60.0
        busy.update(harbour=0.9)
    models = [
        ModelTelemetry(
            model=m,
            arrivals_per_s=j(rates[m]),
            arrivals_per_s_by_cell={
                c: j(rates[m]) * (0.6 if s == hot else 0.2) for s, c in CELLS.items()
            },
            served=int(j(rates[m] * 60)),
            refused=0,
            mean_latency_s=j(lat[m]),
            queue_len=int(j(queue[m])),
            replicas=1 if m != "llama-8b" else 2,
        )
        for m in MODELS
    ]
    sites = [
        SiteTelemetry(
            site=s,
            up=up[s],
            gpus=[],
            loaded_models=MODELS if up[s] else [],
            queue_len=0,
            running=0,
            busy_share=min(1.0, j(busy[s])),
        )
        for s in SITES
    ]
    return Telemetry(
        time_s=time_s,
        window_s=60,
        sites=sites,
        replicas=[],
        models=models,
        refusals_by_reason=refusals,
    )


KINDS = ["calm", "site-failure", "text-surge", "image-surge"]


def experience(kind: str, i: int, rng: random.Random, latency: float = 5.0) -> Experience:
    text, feats = summarize_situation(telemetry(kind, rng, time_s=60.0 * (i + 1)))
    return Experience(
        id=f"{kind}-{i}",
        scenario=f"city-{kind}",
        time_s=60.0 * (i + 1),
        epoch=i,
        situation=text,
        action=f"plan for {kind}",
        outcome=f"mean latency {latency} s",
        mean_latency_s=latency,
        jain=0.9,
        refused=0,
        features=feats,
    )


def stored(rng: random.Random) -> list[Experience]:
    return [experience(k, i, rng) for k in KINDS for i in range(3)]


@pytest.fixture(scope="module")
def text_store(tmp_path_factory):
    """A text store built, with the model loaded from scratch, while sockets are blocked."""
    from pytest_socket import disable_socket, enable_socket

    import edgeagents.agents.encoder

    edgeagents.agents.encoder._encoder = None
    disable_socket()
    try:
        store = ExperienceStore(tmp_path_factory.mktemp("mem") / "store", embedding="text")
        store.add_many(stored(random.Random(1)))
    finally:
        enable_socket()
    return store


def test_summary_and_features() -> None:
    t = telemetry("site-failure", random.Random(0))
    text, feats = summarize_situation(t)
    assert "harbour down" in text and "llama-8b" in text and "Jain" in text
    assert len(feats) == len(feature_names(t)) == 4 * len(MODELS) + 2 * len(SITES)
    assert feats[4 * len(MODELS)] == 0.0  # harbour is down
    with pytest.raises(ValueError):
        Experience.model_validate(
            {"id": "x", "scenario": "s", "time_s": 0, "situation": "a", "z": 1}
        )


def test_round_trip(text_store: ExperienceStore) -> None:
    assert text_store.count() == 12
    exp = experience("calm", 99, random.Random(5), latency=1.5)
    text_store.add(exp)
    text_store.add(exp)  # same id: replaced
    assert text_store.count() == 13
    got, score = text_store.search(exp, k=1)[0]
    assert got == exp and 0.9 < score <= 1.0
    st = text_store.stats()
    assert st["count"] == 13 and "city-calm" in st["scenarios"]
    assert st["time_span_s"] == [60.0, 6000.0]


@pytest.mark.parametrize("embedding", ["text", "features"])
def test_retrieval_relevance(embedding: str, text_store: ExperienceStore, tmp_path: Path) -> None:
    if embedding == "text":
        store = text_store
    else:
        store = ExperienceStore(tmp_path / "f", embedding="features")
        store.add_many(stored(random.Random(1)))
    rng = random.Random(42)
    for kind in KINDS:
        for i in range(3):
            query = experience(kind, 1000 + i, rng)
            hits = store.search(query, k=3, where={"scenario": {"$ne": "none"}})
            assert hits[0][0].id.startswith(kind + "-"), (embedding, kind, hits[0][0].id)


def test_outcome_breaks_ties(tmp_path: Path) -> None:
    store = ExperienceStore(tmp_path / "f", embedding="features")
    rng = random.Random(3)
    slow = experience("calm", 0, rng, latency=40.0)
    fast = slow.model_copy(update={"id": "calm-fast", "mean_latency_s": 2.0})
    store.add_many([slow, fast])
    assert [e.id for e, _ in store.search(slow, k=2)] == ["calm-fast", "calm-0"]


@pytest.mark.filterwarnings("ignore:A test tried to use socket.socket")  # our own probe below
def test_offline(text_store: ExperienceStore) -> None:
    from pytest_socket import SocketBlockedError, disable_socket, enable_socket

    disable_socket()
    try:
        import socket

        with pytest.raises(SocketBlockedError):
            socket.socket()
        text_store.add(experience("text-surge", 77, random.Random(9)))
        hits = text_store.search("text prompts surging, long queues for llama-8b", k=3)
        assert hits and hits[0][0].id.startswith("text-surge")
    finally:
        enable_socket()


def test_persistence_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "store"
    write = f"""
        import random, sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from test_memory import stored
        from memory.store import ExperienceStore
        ExperienceStore({str(path)!r}, embedding="features").add_many(stored(random.Random(1)))
    """
    read = f"""
        import json
        from memory.store import ExperienceStore
        s = ExperienceStore({str(path)!r}, embedding="features")
        print(json.dumps(s.stats()))
    """
    for code in (write, read):
        r = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout.strip().splitlines()[-1])
    assert st["count"] == 12 and len(st["scenarios"]) == 4


def test_export_import(tmp_path: Path) -> None:
    a = ExperienceStore(tmp_path / "a", embedding="features")
    exps = stored(random.Random(1))
    a.add_many(exps)
    assert a.export(tmp_path / "x.jsonl") == 12
    b = ExperienceStore(tmp_path / "b", embedding="features")
    assert b.import_(tmp_path / "x.jsonl") == 12
    assert b.import_(tmp_path / "x.jsonl") == 12  # idempotent by id
    assert b.count() == 12
    assert sorted(b.all(), key=lambda e: e.id) == sorted(exps, key=lambda e: e.id)
    (tmp_path / "bad.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(MemoryStoreError, match="line 1"):
        b.import_(tmp_path / "bad.jsonl")
    b.clear()
    assert b.count() == 0


def test_bad_paths(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(MemoryStoreError) as e:
        ExperienceStore(tmp_path / "file")
    assert "\n" not in str(e.value)
    with pytest.raises(MemoryStoreError) as e:
        ExperienceStore(tmp_path / "file" / "store")
    assert "\n" not in str(e.value) and "cannot create" in str(e.value)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "chroma.sqlite3").write_bytes(b"not a database at all" * 10)
    with pytest.raises(MemoryStoreError, match="corrupted") as e:
        ExperienceStore(corrupt)
    assert "\n" not in str(e.value)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeagents", "memory", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_cli(tmp_path: Path, text_store: ExperienceStore) -> None:
    feats = ExperienceStore(tmp_path / "t", embedding="features")
    feats.add_many(stored(random.Random(1)))
    path = str(tmp_path / "t")

    r = cli("stats", "--path", path, "--embedding", "features")
    assert r.returncode == 0, r.stderr
    assert "experiences: 12" in r.stdout and "city-calm" in r.stdout

    r = cli("export", str(tmp_path / "x.jsonl"), "--path", path, "--embedding", "features")
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 12
    other = str(tmp_path / "u")
    r = cli("import", str(tmp_path / "x.jsonl"), "--path", other, "--embedding", "features")
    assert r.returncode == 0, r.stderr
    assert "imported 12" in r.stdout
    assert ExperienceStore(other, embedding="features").count() == 12

    # text search (loads the embedding model in the subprocess)
    r = cli("search", "a site is down, prompts refused", "-k", "2", "--path",
            str(text_store.path), "--embedding", "text")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "site-failure" in r.stdout and "top 2" in r.stdout
    # words against the features store (the default): situations containing every word
    r = cli("search", "harbour down", "-k", "3", "--path", path)
    assert r.returncode == 0, r.stderr
    assert "site-failure" in r.stdout and "top 3" in r.stdout
    assert "text-surge" not in r.stdout and "city-calm" not in r.stdout

    r = cli("clear", "--path", path, "--embedding", "features")
    assert r.returncode == 2 and "--yes" in r.stderr
    r = cli("clear", "--yes", "--path", path, "--embedding", "features")
    assert r.returncode == 0 and "deleted 12" in r.stdout
    assert feats.count() == 0  # the open store sees the other process's clear

    (tmp_path / "file").write_text("x")
    for args in (
        ("stats", "--path", str(tmp_path / "file" / "store")),
        ("import", str(tmp_path / "missing.jsonl"), "--path", path),
        ("stats", "--path", path, "--embedding", "bogus"),
    ):
        r = cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "error:" in r.stderr, r.stderr
