"""A small discrete-event engine in the style of SimPy.

Ordering is defined once: `(time, priority, sequence)`. The sequence is a per-engine counter,
so two runs of the same inputs pop events in the same order. Events return follow-up events.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol


class Event(Protocol):
    """Something that happens at `time`; firing it may return follow-up events."""

    time: float
    priority: ClassVar[int]

    def fire(self, world: Any) -> Iterable[Event] | None: ...


class Engine:
    """Event heap with a clock. Exposes little: `now`, `peek`, `schedule`, `step`, `run`."""

    __slots__ = ("_heap", "_seq", "now", "trace", "world")

    def __init__(self, world: Any, *, trace: bool = False) -> None:
        self.world = world
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Event]] = []
        self._seq = 0
        self.trace: list[tuple[float, str]] | None = [] if trace else None

    def schedule(self, event: Event) -> None:
        if event.time < self.now:
            raise ValueError(
                f"cannot schedule {type(event).__name__} at {event.time} < now {self.now}"
            )
        self._seq += 1
        heapq.heappush(self._heap, (event.time, event.priority, self._seq, event))

    def peek(self) -> float:
        """Time of the next event, or infinity."""
        return self._heap[0][0] if self._heap else float("inf")

    def step(self) -> None:
        time, _, _, event = heapq.heappop(self._heap)
        self.now = time
        if self.trace is not None:
            self.trace.append((time, repr(event)))
        follow = event.fire(self.world)
        if follow:
            for e in follow:
                self.schedule(e)

    def run(self, until: float) -> None:
        """Fire every event up to and including `until`, then set the clock to `until`."""
        if until < self.now:
            raise ValueError(f"run(until={until}) is in the past (now={self.now})")
        heap = self._heap
        while heap and heap[0][0] <= until:
            self.step()
        self.now = until

    def __len__(self) -> int:
        return len(self._heap)
