"""A run's checkpoint: one SQLite file from which a killed `edgeagents run` resumes.

The simulated city is deterministic given its scenario, workload, seed and the decisions
applied at each tick, so the file holds no city. It holds, per episode, every control cycle's
decision with the tick it was made at and the time it applied; the agents' LangGraph state
after each cycle (a `SqliteSaver` in the same file, one thread per episode); and a fingerprint
of the options and the code. Resuming re-simulates an episode from t=0 applying the recorded
decisions (no agent, no LM), then goes on live from the last recorded cycle. Each cycle is one
SQLite transaction, so a SIGKILL at any moment leaves a file that opens at a whole cycle.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from edgeagents.core.state import ApplyReport, Decision

if TYPE_CHECKING:
    from edgeagents.sim.city import SimulatedCity
    from edgeagents.sim.workload import Workload

FORMAT = 1
"""Bumped when the file's tables change; a file of another format does not resume."""
CODE_PACKAGES = ("edgeagents", "graphs", "memory")
"""Packages whose source the fingerprint hashes: other code, other decisions."""
SCHEMA = """
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS episode (
    name TEXT PRIMARY KEY, finished INTEGER NOT NULL DEFAULT 0, wall_s REAL, sim_wall_s REAL);
CREATE TABLE IF NOT EXISTS cycle (
    episode TEXT NOT NULL, k INTEGER NOT NULL, tick_s REAL NOT NULL, applied_s REAL NOT NULL,
    decision TEXT NOT NULL, report TEXT NOT NULL, graph_checkpoint TEXT,
    decide_s REAL NOT NULL, elapsed_s REAL NOT NULL, PRIMARY KEY (episode, k));
CREATE TABLE IF NOT EXISTS resume (
    at_unix_s REAL NOT NULL, episode TEXT NOT NULL, cycles INTEGER NOT NULL,
    replay_s REAL NOT NULL);
"""


class CheckpointError(Exception):
    """A checkpoint that cannot be written or resumed; the message is one line."""


@runtime_checkable
class Resumable(Protocol):
    """A controller whose state after a cycle lives in the checkpoint's LangGraph thread
    (when `checkpointed`)."""

    thread_id: str
    checkpointed: bool

    def resume_from(self, checkpoint_id: str) -> None: ...


def resumable(controller: Any) -> bool:
    return isinstance(controller, Resumable) and controller.checkpointed


@dataclass(slots=True, frozen=True)
class Cycle:
    """One recorded control cycle."""

    tick_s: float
    applied_s: float
    decision: Decision
    report_json: str
    graph_checkpoint: str | None
    decide_s: float
    elapsed_s: float


def source_digest() -> str:
    """Hash of the source of `CODE_PACKAGES`: a checkpoint resumes only on the same code."""
    from importlib.util import find_spec

    h = hashlib.sha256()
    for package in CODE_PACKAGES:
        spec = find_spec(package)
        if spec is None or spec.origin is None:
            continue
        root = Path(spec.origin).parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root.parent)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def workload_digest(workload: Workload) -> str:
    """Hash of every prompt of the workload (a trace file included)."""
    from dataclasses import fields

    import numpy as np

    h = hashlib.sha256()
    for f in fields(workload):
        value = getattr(workload, f.name)
        h.update(f.name.encode())
        h.update(value.tobytes() if isinstance(value, np.ndarray) else repr(value).encode())
    return h.hexdigest()[:16]


def fingerprint(scenario: Any, workload: Workload, *, options: dict[str, Any]) -> dict[str, Any]:
    """What must be the same for a checkpoint to resume: format, code, city, prompts and the
    run's options (named as the command line names them)."""
    city = hashlib.sha256(scenario.model_dump_json().encode()).hexdigest()[:16]
    return {"format": FORMAT, "code": source_digest(), "scenario": city,
            "workload": workload_digest(workload), **options}  # fmt: skip


def run_options(
    *, seed: int, duration_s: float, baselines: list[str], with_none: bool,
    charge: bool | float, lm_config: Any,
) -> dict[str, Any]:  # fmt: skip
    """The options of `edgeagents run` a resume must repeat; the LM configs only as a hash,
    so that the file never holds an API key."""
    lm = hashlib.sha256(lm_config.model_dump_json().encode()).hexdigest()[:16]
    return {"seed": seed, "duration_s": float(duration_s), "baselines": list(baselines),
            "with_none": with_none, "decision_charge": charge, "llm": lm_config.specs(),
            "lm_config": lm}  # fmt: skip


def state_types() -> list[type]:
    """The pydantic models the agents' state carries, allowed to load from the checkpoint."""
    from pydantic import BaseModel

    from edgeagents.core import control_state, notice, notice_form, state

    out: list[type] = []
    for module in (state, notice, notice_form, control_state):
        out += [
            v for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == module.__name__
        ]  # fmt: skip
    return out


class RunCheckpoint:
    """The checkpoint file of one run: created new, or opened to resume (its fingerprint must
    match). `saver` is the agents' LangGraph checkpointer on the same file."""

    def __init__(self, path: Path, prints: dict[str, Any], *, resume: bool) -> None:
        self.path = Path(path)
        if resume and not self.path.is_file():
            raise CheckpointError(f"--resume: no checkpoint at {self.path}")
        if not resume and self.path.exists():
            raise CheckpointError(
                f"--checkpoint {self.path}: exists; pass --resume to continue it, or remove it"
            )
        try:
            self.conn = sqlite3.connect(self.path, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            if resume:
                self._check(prints)
            else:
                self._create(prints)
        except sqlite3.DatabaseError as e:
            raise CheckpointError(f"checkpoint {self.path}: unreadable ({e})") from e
        self._saver: Any = None

    def _create(self, prints: dict[str, Any]) -> None:
        """Tables and fingerprint in one transaction: a kill leaves all of them or none."""
        self.conn.execute("BEGIN")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                self.conn.execute(statement)
        self.conn.execute("INSERT INTO run VALUES ('fingerprint', ?)", (json.dumps(prints),))
        self.conn.commit()

    def _check(self, prints: dict[str, Any]) -> None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        if not tables:  # killed while the file was being made: nothing was recorded
            self._create(prints)
            return
        if not {"run", "episode", "cycle", "resume"} <= tables:
            raise CheckpointError(f"--resume: {self.path} is not an edgeagents run checkpoint")
        row = self.conn.execute("SELECT value FROM run WHERE key = 'fingerprint'").fetchone()
        stored = json.loads(row[0]) if row else {}
        diff = [k for k in sorted({*stored, *prints}) if stored.get(k) != prints.get(k)]
        if diff:
            said = "; ".join(f"{k} {stored.get(k)!r} there, {prints.get(k)!r} here" for k in diff)
            raise CheckpointError(
                f"--resume: {self.path} was written by another run ({said}): give the same "
                "options on the same code, or start a new --checkpoint"
            )

    @property
    def saver(self) -> Any:
        """The agents' `SqliteSaver` (made on first use: it needs the agents extra)."""
        if self._saver is None:
            from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
            from langgraph.checkpoint.sqlite import SqliteSaver

            serde = JsonPlusSerializer(allowed_msgpack_modules=state_types())
            self._saver = SqliteSaver(self.conn, serde=serde)
        return self._saver

    def episode(self, name: str) -> EpisodeLog:
        return EpisodeLog(self, name)

    def episodes(self) -> list[tuple[str, bool, int]]:
        """Each episode recorded, in run order: its name, whether it finished, its cycles."""
        rows = self.conn.execute(
            "SELECT c.episode, coalesce(e.finished, 0), count(*) FROM cycle c LEFT JOIN episode "
            "e ON e.name = c.episode GROUP BY c.episode ORDER BY min(c.rowid)"
        )
        return [(r[0], bool(r[1]), int(r[2])) for r in rows]

    def close(self) -> None:
        self.conn.close()


class EpisodeLog:
    """One episode's cycles in the checkpoint: what to replay, and each new cycle written."""

    def __init__(self, checkpoint: RunCheckpoint, name: str) -> None:
        self.cp = checkpoint
        self.name = name
        conn = checkpoint.conn
        row = conn.execute(
            "SELECT finished, wall_s, sim_wall_s FROM episode WHERE name = ?", (name,)
        ).fetchone()
        self.finished = bool(row and row[0])
        self.walls = (row[1], row[2]) if self.finished else None
        self.recorded = [
            Cycle(r[0], r[1], Decision.model_validate_json(r[2]), r[3], r[4], r[5], r[6])
            for r in conn.execute(
                "SELECT tick_s, applied_s, decision, report, graph_checkpoint, decide_s, "
                "elapsed_s FROM cycle WHERE episode = ? ORDER BY k", (name,),
            )
        ]  # fmt: skip

    def replay_plan(self, controller: Any) -> list[Cycle]:
        """The cycles to replay before going live: all of a finished episode; those of an
        unfinished one whose controller resumes (it then continues from the last one's
        LangGraph state); none otherwise, the episode then starting over."""
        if self.finished:
            return self.recorded
        last = self.recorded[-1] if self.recorded else None
        if resumable(controller) and last is not None and last.graph_checkpoint:
            controller.resume_from(last.graph_checkpoint)
            return self.recorded
        self.restart(controller)
        return []

    def restart(self, controller: Any) -> None:
        """Forget this episode's cycles and its LangGraph thread."""
        with self.cp.conn:
            self.cp.conn.execute("DELETE FROM cycle WHERE episode = ?", (self.name,))
            self.cp.conn.execute("DELETE FROM episode WHERE name = ?", (self.name,))
        if resumable(controller):
            self.cp.saver.delete_thread(controller.thread_id)
        self.recorded = []

    def record(
        self, k: int, tick_s: float, decision: Decision, report: ApplyReport, *,
        controller: Any, decide_s: float, elapsed_s: float,
    ) -> None:  # fmt: skip
        """Cycle `k`, with the LangGraph checkpoint its controller's thread ended it on."""
        graph = None
        conn = self.cp.conn
        if resumable(controller):
            row = conn.execute(
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
                "ORDER BY checkpoint_id DESC LIMIT 1", (controller.thread_id,),
            ).fetchone()  # fmt: skip
            graph = row[0] if row else None
        with conn:
            conn.execute(
                "INSERT OR REPLACE INTO cycle VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.name, k, tick_s, report.time_s, decision.model_dump_json(),
                 report.model_dump_json(), graph, decide_s, elapsed_s),
            )  # fmt: skip

    def resumed(self, cycles: int, replay_s: float) -> None:
        with self.cp.conn:
            self.cp.conn.execute(
                "INSERT INTO resume VALUES (?, ?, ?, ?)", (time.time(), self.name, cycles, replay_s)
            )

    def finish(self, wall_s: float, sim_wall_s: float) -> None:
        with self.cp.conn:
            self.cp.conn.execute(
                "INSERT OR REPLACE INTO episode VALUES (?, 1, ?, ?)",
                (self.name, wall_s, sim_wall_s),
            )


def replay_cycle(city: SimulatedCity, cycle: Cycle) -> tuple[Decision, ApplyReport]:
    """Redo one recorded cycle on the city as the controller did it: observe (it moves the
    replicas' accounting), wait until the decision applied, apply it. A report unlike the
    recorded one means the city went another way: the checkpoint does not replay."""
    city.observe()
    if cycle.applied_s > city.now:
        city.advance(cycle.applied_s)
    report = city.apply(cycle.decision)
    if report.model_dump_json() != cycle.report_json:
        raise CheckpointError(
            f"checkpoint: the cycle at {cycle.tick_s:g} s does not replay to what was recorded"
        )
    return cycle.decision, report
