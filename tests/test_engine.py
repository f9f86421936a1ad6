from __future__ import annotations

from typing import ClassVar

import pytest

from edgeagents.sim.engine import Engine


class Tick:
    priority: ClassVar[int] = 1

    def __init__(self, time: float, label: str, every: float = 0.0, until: float = 0.0) -> None:
        self.time = time
        self.label = label
        self.every = every
        self.until = until

    def fire(self, world: list) -> list:
        world.append((self.time, self.label))
        if self.every and self.time + self.every <= self.until:
            return [Tick(self.time + self.every, self.label, self.every, self.until)]
        return []


class Urgent(Tick):
    priority: ClassVar[int] = 0


def test_events_fire_at_exact_times_and_return_follow_ups():
    world: list = []
    eng = Engine(world)
    eng.schedule(Tick(0.5, "a", every=1.5, until=5.0))
    eng.run(until=4.0)
    assert world == [(0.5, "a"), (2.0, "a"), (3.5, "a")]
    assert eng.now == 4.0
    assert eng.peek() == 5.0


def test_ties_break_by_priority_then_insertion():
    world: list = []
    eng = Engine(world)
    eng.schedule(Tick(1.0, "first"))
    eng.schedule(Tick(1.0, "second"))
    eng.schedule(Urgent(1.0, "urgent"))
    eng.run(until=1.0)
    assert [label for _, label in world] == ["urgent", "first", "second"]


def test_running_into_the_past_raises_with_the_value():
    eng = Engine([])
    eng.run(until=3.0)
    with pytest.raises(ValueError, match=r"until=1\.0.*now=3\.0"):
        eng.run(until=1.0)
    with pytest.raises(ValueError, match=r"at 2\.0"):
        eng.schedule(Tick(2.0, "late"))
