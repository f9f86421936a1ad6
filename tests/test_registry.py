"""The name -> factory registry, and the baseline policies registered with it."""

from __future__ import annotations

import pytest

from edgeagents.policies import (
    BASELINES,
    CONTROLLERS,
    POLICIES,
    ROUTERS,
    AutoscaleController,
    PolicySpec,
    Registry,
    StaticController,
)
from edgeagents.policies.routing import GreedyRouter, RoundRobinRouter


def fresh() -> Registry[list[int]]:
    reg: Registry[list[int]] = Registry("widget")
    reg.register("one", lambda: [1])
    reg.register("two", lambda: [2])
    return reg


def test_create_calls_the_factory_registered_under_the_name() -> None:
    reg = fresh()
    assert reg.create("one") == [1]
    assert reg.create("two") == [2]


def test_create_builds_a_new_object_each_time() -> None:
    reg = fresh()
    first = reg.create("one")
    first.append(9)
    assert reg.create("one") == [1], "no state shared between creations"


def test_names_keep_registration_order() -> None:
    reg = fresh()
    reg.register("aardvark", list)
    assert reg.names() == ["one", "two", "aardvark"]
    assert list(reg) == ["one", "two", "aardvark"]


def test_contains() -> None:
    reg = fresh()
    assert "one" in reg
    assert "three" not in reg
    assert 1 not in reg


def test_unknown_name_error_names_the_kind_and_the_known_entries() -> None:
    reg = fresh()
    with pytest.raises(KeyError) as err:
        reg.create("three")
    assert err.value.args[0] == "unknown widget 'three' (known: one, two)"
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_unknown_name_in_an_empty_registry() -> None:
    with pytest.raises(KeyError, match=r"unknown gadget 'x' \(known: \)"):
        Registry("gadget").create("x")


def test_duplicate_registration_is_refused_and_keeps_the_first() -> None:
    reg = fresh()
    with pytest.raises(ValueError, match="widget 'one' is already registered"):
        reg.register("one", lambda: [99])
    assert reg.create("one") == [1]
    assert reg.names() == ["one", "two"]


def test_names_returns_a_copy() -> None:
    reg = fresh()
    reg.names().append("ghost")
    assert "ghost" not in reg


def test_the_library_registries_refuse_duplicates() -> None:
    with pytest.raises(ValueError, match="router 'greedy' is already registered"):
        ROUTERS.register("greedy", GreedyRouter)
    with pytest.raises(ValueError, match="controller 'static' is already registered"):
        CONTROLLERS.register("static", StaticController)
    with pytest.raises(ValueError, match="policy 'greedy' is already registered"):
        POLICIES.register("greedy", lambda: PolicySpec("greedy", "greedy", "static"))


def test_the_library_registries_name_their_entries_when_asked_for_another() -> None:
    with pytest.raises(KeyError, match=r"unknown router 'fastest' \(known: random, round-robin"):
        ROUTERS.create("fastest")
    with pytest.raises(KeyError, match=r"unknown controller 'x' \(known: static, autoscale\)"):
        CONTROLLERS.create("x")
    with pytest.raises(KeyError, match=r"unknown policy 'x' \(known: random, .*greedy-autoscale"):
        POLICIES.create("x")


# ---- the baseline policies ----------------------------------------------------------------------


EXPECTED = {
    "random": ("random", "static"),
    "round-robin": ("round-robin", "static"),
    "nearest": ("nearest", "static"),
    "least-loaded": ("least-loaded", "static"),
    "power-of-two": ("power-of-two", "static"),
    "greedy": ("greedy", "static"),
    "greedy-autoscale": ("greedy", "autoscale"),
}


def test_baselines_are_the_policies_in_order() -> None:
    assert tuple(POLICIES.names()) == BASELINES
    assert tuple(EXPECTED) == BASELINES


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_policy_pairs_its_router_and_controller(name: str) -> None:
    """Each registered factory binds its own names (no late binding of the loop variables)."""
    spec = POLICIES.create(name)
    assert spec == PolicySpec(name, *EXPECTED[name])
    router, controller = spec.create()
    assert router.name == spec.router
    assert controller.name == spec.controller


def test_policy_create_makes_fresh_instances() -> None:
    spec = POLICIES.create("greedy-autoscale")
    (r1, c1), (r2, c2) = spec.create(), spec.create()
    assert isinstance(r1, GreedyRouter) and isinstance(c1, AutoscaleController)
    assert r1 is not r2 and c1 is not c2


def test_a_policy_spec_may_pair_any_registered_router_and_controller() -> None:
    router, controller = PolicySpec("mine", "round-robin", "autoscale").create()
    assert isinstance(router, RoundRobinRouter)
    assert isinstance(controller, AutoscaleController)
    with pytest.raises(KeyError, match="unknown router 'nope'"):
        PolicySpec("bad", "nope", "static").create()
    with pytest.raises(KeyError, match="unknown controller 'nope'"):
        PolicySpec("bad", "greedy", "nope").create()


def test_policy_spec_is_frozen() -> None:
    spec = PolicySpec("p", "greedy", "static")
    with pytest.raises(AttributeError):
        spec.router = "random"  # type: ignore[misc]
