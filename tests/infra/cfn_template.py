"""template.yaml as the tests read it: CloudFormation's short tags as long-form mappings, SAM Globals applied."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


class CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation short tags (!Ref, !GetAtt, !Sub, …) as their long-form mappings."""


def _construct_short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    key = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    return {key: value}


CloudFormationLoader.add_multi_constructor("!", _construct_short_tag)

TEMPLATE: dict[str, Any] = yaml.load((ROOT / "template.yaml").read_text(), Loader=CloudFormationLoader)
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]


def of_type(resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: resource.get("Properties", {}) for name, resource in RESOURCES.items()
            if resource["Type"] == resource_type}


def function_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """A function's properties with Globals applied, as SAM merges them (environment maps merge)."""
    defaults = TEMPLATE.get("Globals", {}).get("Function", {})
    merged = {**defaults, **properties}
    merged["Environment"] = {"Variables": {**defaults.get("Environment", {}).get("Variables", {}),
                                           **properties.get("Environment", {}).get("Variables", {})}}
    return merged


FUNCTIONS = {name: function_properties(props) for name, props in of_type("AWS::Serverless::Function").items()}
CONTAINERS = {f"{task}/{container['Name']}": container
              for task, props in of_type("AWS::ECS::TaskDefinition").items()
              for container in props["ContainerDefinitions"]}


def ref(value: Any) -> str | None:
    return value.get("Ref") if isinstance(value, dict) else None


def is_secret_resource(value: Any) -> bool:
    target = RESOURCES.get(ref(value) or "")
    return target is not None and target["Type"] == "AWS::SecretsManager::Secret"


def policy_statements(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        statements = node.get("Statement")
        if isinstance(statements, list):
            yield from (s for s in statements if isinstance(s, dict))
        elif isinstance(statements, dict):
            yield statements
        for value in node.values():
            yield from policy_statements(value)
    elif isinstance(node, list):
        for item in node:
            yield from policy_statements(item)
