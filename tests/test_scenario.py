"""Scenario validation: each bad input names its field in one line."""

from __future__ import annotations

import pytest
import yaml
from conftest import TINY

from edgeagents.core.scenario import Scenario, ScenarioError, load_scenario


def test_bristol_is_valid_and_as_specified():
    sc = load_scenario("bristol")
    assert len(sc.sites) == 7
    kinds = {m.kind for m in sc.models}
    assert kinds == {"llm", "vlm", "text-to-image", "speech-to-text"}
    modalities = {mod for m in sc.models for mod in m.input_modality} | {
        m.output_modality for m in sc.models
    }
    assert modalities == {"text", "image", "audio"}
    assert len({slot.type for s in sc.sites for slot in s.gpus}) >= 4
    assert sc.backhaul.number_of_nodes() == 7


def _mutate(path: list, value: object) -> str:
    data = yaml.safe_load(TINY)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (["links", 0, "b"], "nowhere", "links[0].b: unknown site 'nowhere'"),
        (["cells", 0, "site"], "nowhere", "cells[0].site: unknown site 'nowhere'"),
        (["sites", 0, "gpus", 0, "type"], "TPU", "sites[0].gpus[0].type: unknown GPU type"),
        (["models", 0, "weights_gb"], 500.0, "larger than every GPU"),
        (["models", 0, "profile"], "gpt-9", "models[0].profile: unknown profile 'gpt-9'"),
        (["workload", "demands", 0, "arrivals", "rate_per_s"], -1.0,
         "workload.demands[0].arrivals.rate_per_s: Input should be greater than or equal to 0"),
        (["workload", "demands", 0, "model"], "ghost", "unknown model 'ghost'"),
        (["placement"], {"a": ["ghost"]}, "placement.a: unknown model 'ghost'"),
        (["links"], [], "links: the backhaul does not connect every site"),
        (["sites", 0, "colour"], "red", "sites[0].colour: unknown field"),
        (["cells", 0, "uplink_mbps"], "fast",
         "cells[0].uplink_mbps: Input should be a valid number"),
    ],
)  # fmt: skip
def test_bad_scenarios_name_the_field(path, value, expected):
    with pytest.raises(ScenarioError) as e:
        Scenario.from_yaml(_mutate(path, value), source="s.yaml")
    message = str(e.value)
    assert expected in message
    assert message.startswith("s.yaml: ")
    assert "\n" not in message


def test_malformed_yaml_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml: not valid YAML at line \d+"):
        Scenario.from_file(bad)
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load_scenario(tmp_path / "missing.yaml")
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ScenarioError, match="a scenario is a YAML mapping"):
        Scenario.from_file(lst)


def test_scenarios_are_frozen(tiny):
    with pytest.raises(Exception, match="frozen"):
        tiny.name = "other"  # type: ignore[misc]
