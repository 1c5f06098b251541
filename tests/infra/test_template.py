"""template.yaml against the code it deploys: table keys, handlers, IAM actions, secrets and logs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pynamodb.models import Model

from local.environment import DEFAULTS
from voiceline.models import ALL_MODELS

ROOT = Path(__file__).resolve().parents[2]
SECRET_NAMES = ("TWILIO_AUTH_TOKEN", "STREAM_TOKEN_KEY", "OPENAI_API_KEY")
# Fargate sends SIGKILL this long after SIGTERM at most; live calls need all of it to finish.
FARGATE_MAX_STOP_TIMEOUT_S = 120


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


def environments() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every plain environment a deployable gets, as (owner, name → value)."""
    for name, props in FUNCTIONS.items():
        yield name, props["Environment"]["Variables"]
    for name, container in CONTAINERS.items():
        yield name, {item["Name"]: item["Value"] for item in container.get("Environment", [])}


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


# --- tables -------------------------------------------------------------------------------------

def table_variable(model: type[Model]) -> str:
    """The *_TABLE variable a model reads its table name from (models.py calls require() with it)."""
    names = [name for name, value in os.environ.items()
             if name.endswith("_TABLE") and value == model.Meta.table_name]
    assert len(names) == 1, f"{model.__name__}: expected one *_TABLE variable naming its table, found {names}"
    return names[0]


def table_resource(model: type[Model]) -> str:
    variable = table_variable(model)
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    logical_id = ref(variables.get(variable))
    assert logical_id in of_type("AWS::DynamoDB::Table"), f"Globals must set {variable}: !Ref <its table>"
    return logical_id


def keys(key_schema: list[dict[str, str]]) -> list[tuple[str, str]]:
    return sorted((k["KeyType"], k["AttributeName"]) for k in key_schema)  # HASH sorts before RANGE


def model_shape(model: type[Model]) -> dict[str, Any]:
    schema = model._get_schema()
    return {
        "keys": keys(schema["key_schema"]),
        "attributes": sorted((a["AttributeName"], a["AttributeType"]) for a in schema["attribute_definitions"]),
        "global_indexes": {index["index_name"]: (keys(index["key_schema"]), index["projection"]["ProjectionType"])
                           for index in schema["global_secondary_indexes"]},
        "local_indexes": {index["index_name"]: (keys(index["key_schema"]), index["projection"]["ProjectionType"])
                          for index in schema["local_secondary_indexes"]},
    }


def template_shape(properties: dict[str, Any]) -> dict[str, Any]:
    def indexes(name: str) -> dict[str, Any]:
        return {index["IndexName"]: (keys(index["KeySchema"]), index["Projection"]["ProjectionType"])
                for index in properties.get(name, [])}

    return {
        "keys": keys(properties["KeySchema"]),
        "attributes": sorted((a["AttributeName"], a["AttributeType"]) for a in properties["AttributeDefinitions"]),
        "global_indexes": indexes("GlobalSecondaryIndexes"),
        "local_indexes": indexes("LocalSecondaryIndexes"),
    }


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda model: model.__name__)
def test_table_keys_and_indexes_match_the_model(model: type[Model]) -> None:
    properties = of_type("AWS::DynamoDB::Table")[table_resource(model)]
    assert template_shape(properties) == model_shape(model)


def test_every_table_in_the_template_has_a_model() -> None:
    assert set(of_type("AWS::DynamoDB::Table")) == {table_resource(model) for model in ALL_MODELS}


@pytest.mark.parametrize("table", sorted(of_type("AWS::DynamoDB::Table")))
def test_tables_are_on_demand_encrypted_and_recoverable(table: str) -> None:
    properties = RESOURCES[table]["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_containers_get_every_table_the_models_need(container: str) -> None:
    """models.py reads every table name at import, so a missing one stops the container at start."""
    environment = {item["Name"]: item["Value"] for item in CONTAINERS[container].get("Environment", [])}
    for model in ALL_MODELS:
        assert ref(environment.get(table_variable(model))) == table_resource(model)


# --- handlers -----------------------------------------------------------------------------------

IMPORT_HANDLER = """
import importlib, sys
code_uri, site_packages, handler = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[:0] = [code_uri, *sys.argv[4:]]
sys.path.extend(site_packages.split("|"))
module_name, _, attribute = handler.rpartition(".")
target = getattr(importlib.import_module(module_name), attribute)
assert callable(target), f"{handler} is not callable"
"""


def layer_paths(properties: dict[str, Any]) -> list[str]:
    layers = [RESOURCES[ref(layer)] for layer in properties.get("Layers", []) if ref(layer) in RESOURCES]
    return [str(ROOT / layer["Properties"]["ContentUri"]) for layer in layers
            if layer["Type"] == "AWS::Serverless::LayerVersion"]


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_handler_imports_as_lambda_will_import_it(function: str) -> None:
    """Only the code folder, the layers and installed packages are importable: not the repo root."""
    properties = FUNCTIONS[function]
    # -S skips .pth files, so the editable voiceline install cannot stand in for the layer; -B leaves
    # no __pycache__ in the function folder.
    site_packages = "|".join(dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")))
    literal_env = {name: value for name, value in properties["Environment"]["Variables"].items()
                   if isinstance(value, str)}
    env = {**DEFAULTS, **literal_env, "PATH": os.environ.get("PATH", "")}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", IMPORT_HANDLER, str(ROOT / properties["CodeUri"]), site_packages,
         properties["Handler"], *layer_paths(properties)],
        env=env, cwd=ROOT / properties["CodeUri"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"{function}: {properties['Handler']} does not import:\n{result.stderr}"


# --- permissions, secrets, logs -----------------------------------------------------------------

def test_no_iam_statement_allows_wildcard_actions() -> None:
    wildcards = [action for statement in policy_statements(RESOURCES)
                 for key in ("Action", "NotAction")
                 for action in ([statement[key]] if isinstance(statement.get(key), str) else statement.get(key, []))
                 if "*" in action]
    assert wildcards == []


@pytest.mark.parametrize("owner", sorted(dict(environments())))
def test_environments_carry_secret_arns_never_secret_values(owner: str) -> None:
    for name, value in dict(environments())[owner].items():
        assert name not in SECRET_NAMES, f"{owner}: {name} must come from Secrets Manager"
        assert not re.search(r"(TOKEN|KEY|SECRET|PASSWORD)$", name), f"{owner}: {name} looks like a secret value"
        if name.endswith("_SECRET_ARN"):
            assert is_secret_resource(value), f"{owner}: {name} must be !Ref to an AWS::SecretsManager::Secret"


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_containers_get_secrets_as_ecs_secrets(container: str) -> None:
    secrets = {item["Name"]: item["ValueFrom"] for item in CONTAINERS[container].get("Secrets", [])}
    assert set(SECRET_NAMES) <= set(secrets)
    assert all(is_secret_resource(value) for value in secrets.values())


def test_task_execution_roles_may_read_exactly_their_containers_secrets() -> None:
    for task, props in of_type("AWS::ECS::TaskDefinition").items():
        wanted = {ref(item["ValueFrom"]) for container in props["ContainerDefinitions"]
                  for item in container.get("Secrets", [])}
        role = RESOURCES[props["ExecutionRoleArn"]["Fn::GetAtt"][0]]
        granted = {ref(resource) for statement in policy_statements(role["Properties"].get("Policies", []))
                   if statement.get("Action") == "secretsmanager:GetSecretValue"
                   for resource in statement["Resource"]}
        assert granted == wanted, task


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_containers_stop_within_fargate_limit(container: str) -> None:
    assert 0 < CONTAINERS[container]["StopTimeout"] <= FARGATE_MAX_STOP_TIMEOUT_S


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_functions_log_to_a_group_with_retention(function: str) -> None:
    log_group = RESOURCES.get(ref(FUNCTIONS[function].get("LoggingConfig", {}).get("LogGroup")) or "")
    assert log_group is not None, f"{function}: set LoggingConfig.LogGroup: !Ref <an AWS::Logs::LogGroup>"
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert "RetentionInDays" in log_group["Properties"]


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_containers_log_to_a_group_with_retention(container: str) -> None:
    log_group = RESOURCES[ref(CONTAINERS[container]["LogConfiguration"]["Options"]["awslogs-group"])]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert "RetentionInDays" in log_group["Properties"]
