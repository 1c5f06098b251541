"""template.yaml against the code it deploys: table keys, handlers, tool functions, IAM, secrets and logs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from typing import Any

import pytest
from pynamodb.models import Model

from local.environment import DEFAULTS
from local.lambda_runtime import lambda_functions, rendered, substitution_values
from tests.conftest import TwilioSigner
from tests.infra.cfn_template import (
    CONTAINERS,
    FUNCTIONS,
    RESOURCES,
    ROOT,
    TEMPLATE,
    is_secret_resource,
    of_type,
    policy_statements,
    ref,
)
from voiceline.models import ALL_MODELS, IdempotencyRecord
from voiceline.tools import BRIDGE, REGISTRY, Tool, lambda_function_name

SECRET_NAMES = ("TWILIO_AUTH_TOKEN", "STREAM_TOKEN_KEY", "OPENAI_API_KEY")
# Fargate sends SIGKILL this long after SIGTERM at most; live calls need all of it to finish.
FARGATE_MAX_STOP_TIMEOUT_S = 120


def environments() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every plain environment a deployable gets, as (owner, name → value)."""
    for name, props in FUNCTIONS.items():
        yield name, props["Environment"]["Variables"]
    for name, container in CONTAINERS.items():
        yield name, {item["Name"]: item["Value"] for item in container.get("Environment", [])}


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


# --- tool functions -----------------------------------------------------------------------------

STACK_NAME = "voiceline-test"
TOOL_FUNCTIONS = {tool.name: tool for tool in REGISTRY.values() if tool.runs_on != BRIDGE}
# Least privilege, written out: the tables each tool's own code touches, and how (read the domain
# modules to change it). SAM's DynamoDB policy templates cover the table and its indexes.
TOOL_POLICIES: dict[str, set[tuple[str, str]]] = {
    "check_availability": {("DynamoDBReadPolicy", "TenantDataTable"), ("DynamoDBReadPolicy", "BookingsTable")},
    "book_appointment": {("DynamoDBReadPolicy", "TenantDataTable"), ("DynamoDBWritePolicy", "BookingsTable"),
                         ("DynamoDBCrudPolicy", "IdempotencyTable")},
    "cancel_appointment": {("DynamoDBReadPolicy", "TenantDataTable"), ("DynamoDBReadPolicy", "BookingsTable"),
                           ("DynamoDBWritePolicy", "BookingsTable")},
    "get_pricing": {("DynamoDBReadPolicy", "TenantDataTable")},
    "check_service_area": {("DynamoDBReadPolicy", "TenantDataTable")},
    "lookup_customer": {("DynamoDBReadPolicy", "TenantDataTable"), ("DynamoDBReadPolicy", "BookingsTable")},
    "search_knowledge": {("DynamoDBReadPolicy", "TenantDataTable")},
    "take_message": {("DynamoDBWritePolicy", "TenantDataTable"), ("DynamoDBCrudPolicy", "IdempotencyTable")},
}
DYNAMODB_POLICY_TEMPLATES = {"DynamoDBReadPolicy", "DynamoDBWritePolicy", "DynamoDBCrudPolicy"}


def rendered_function_names(stack_name: str) -> dict[str, str | None]:
    """Logical id → FunctionName as CloudFormation renders it for `stack_name`."""
    values = {**substitution_values(TEMPLATE), "AWS::StackName": stack_name}
    return {name: rendered(props["FunctionName"], values) if "FunctionName" in props else None
            for name, props in FUNCTIONS.items()}


def tool_function(tool: Tool) -> str:
    """The logical id of the function deployed as <stack>-<runs_on>, or an assertion naming what is missing."""
    wanted = f"{STACK_NAME}-{tool.runs_on}"
    found = [name for name, function_name in rendered_function_names(STACK_NAME).items() if function_name == wanted]
    assert len(found) == 1, f"{tool.name}: expected one function named {wanted!r}, found {found}"
    return found[0]


def test_the_registry_and_the_policy_map_name_the_same_tools() -> None:
    assert set(TOOL_POLICIES) == set(TOOL_FUNCTIONS)


@pytest.mark.parametrize("tool", sorted(TOOL_FUNCTIONS))
def test_every_business_tool_has_a_function_named_stack_dash_runs_on(tool: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    logical_id = tool_function(TOOL_FUNCTIONS[tool])
    properties = FUNCTIONS[logical_id]

    assert properties["CodeUri"].rstrip("/") == f"functions/{tool}"
    assert properties["Handler"] == "app.lambda_handler"
    assert ref(properties["Layers"][0]) == "CoreLayer"
    # The bridge's container gets TOOL_FUNCTION_PREFIX = "<stack>-" and builds the same name.
    monkeypatch.setenv("TOOL_FUNCTION_PREFIX", f"{STACK_NAME}-")
    assert lambda_function_name(TOOL_FUNCTIONS[tool]) == rendered_function_names(STACK_NAME)[logical_id]


@pytest.mark.parametrize("tool", sorted(TOOL_FUNCTIONS))
def test_tool_functions_run_at_least_as_long_as_the_bridge_waits(tool: str) -> None:
    assert FUNCTIONS[tool_function(TOOL_FUNCTIONS[tool])]["Timeout"] >= TOOL_FUNCTIONS[tool].timeout_s


def test_the_local_gateway_finds_tool_functions_by_their_default_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bridge's default prefix (voiceline-) reaches the functions the local gateway serves."""
    monkeypatch.delenv("STACK_NAME", raising=False)
    monkeypatch.delenv("TOOL_FUNCTION_PREFIX", raising=False)
    served = {function.deployed_name for function in lambda_functions(TEMPLATE, ROOT)}
    assert {lambda_function_name(tool) for tool in TOOL_FUNCTIONS.values()} <= served


def granted_tables(policies: list[Any]) -> set[tuple[str, str]]:
    """(policy template, table logical id) for each policy, refusing anything but a DynamoDB template on one table.

    Inline statements are refused outright, so no tool function can hold a `*` resource or action.
    """
    granted = set()
    for policy in policies:
        assert isinstance(policy, dict) and len(policy) == 1, f"only SAM DynamoDB policy templates, got {policy!r}"
        [(template, arguments)] = policy.items()
        assert template in DYNAMODB_POLICY_TEMPLATES, f"{template} is not a DynamoDB table policy template"
        table = ref(arguments.get("TableName"))
        assert table in of_type("AWS::DynamoDB::Table"), f"{template} must name a table with !Ref, got {arguments}"
        granted.add((template, table))
    return granted


@pytest.mark.parametrize("tool", sorted(TOOL_FUNCTIONS))
def test_tool_functions_may_touch_only_the_tables_their_code_needs(tool: str) -> None:
    properties = RESOURCES[tool_function(TOOL_FUNCTIONS[tool])]["Properties"]

    assert granted_tables(properties.get("Policies", [])) == TOOL_POLICIES[tool]


def bridge_invoke_statements() -> list[dict[str, Any]]:
    [task] = of_type("AWS::ECS::TaskDefinition").values()
    role = RESOURCES[task["TaskRoleArn"]["Fn::GetAtt"][0]]
    statements = list(policy_statements(role["Properties"].get("Policies", [])))
    return [s for s in statements if "lambda" in str(s.get("Action", "")).lower()]


def test_the_bridge_may_invoke_exactly_the_tool_functions() -> None:
    [statement] = bridge_invoke_statements()
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]

    assert statement["Effect"] == "Allow"
    assert statement["Action"] in ("lambda:InvokeFunction", ["lambda:InvokeFunction"])
    assert all(set(resource) == {"Fn::GetAtt"} and resource["Fn::GetAtt"][1] == "Arn" for resource in resources)
    assert sorted(resource["Fn::GetAtt"][0] for resource in resources) == sorted(
        tool_function(tool) for tool in TOOL_FUNCTIONS.values())


def test_the_bridge_gets_the_tool_function_prefix_and_no_tenant_tables() -> None:
    [container] = CONTAINERS.values()
    environment = {item["Name"]: item["Value"] for item in container.get("Environment", [])}
    assert environment["TOOL_FUNCTION_PREFIX"] == {"Fn::Sub": "${AWS::StackName}-"}

    [task] = of_type("AWS::ECS::TaskDefinition").values()
    role = RESOURCES[task["TaskRoleArn"]["Fn::GetAtt"][0]]
    touched = {node.get("Fn::GetAtt", [None])[0] for statement in policy_statements(role["Properties"]["Policies"])
               for node in (statement["Resource"] if isinstance(statement["Resource"], list)
                            else [statement["Resource"]]) if isinstance(node, dict)}
    assert touched.isdisjoint({"TenantDataTable", "BookingsTable", "IdempotencyTable"})


def test_idempotency_records_expire_on_the_attribute_powertools_writes() -> None:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    expiry = DynamoDBPersistenceLayer(table_name="any").expiry_attr
    properties = RESOURCES[table_resource(IdempotencyRecord)]["Properties"]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": expiry, "Enabled": True}


# The actions SAM's policy templates grant (samtranslator's policy_templates.json).
SAM_DYNAMODB_ACTIONS = {
    "DynamoDBReadPolicy": {"GetItem", "Scan", "Query", "BatchGetItem", "DescribeTable"},
    "DynamoDBWritePolicy": {"PutItem", "UpdateItem", "BatchWriteItem"},
    "DynamoDBCrudPolicy": {"GetItem", "DeleteItem", "PutItem", "Scan", "Query", "UpdateItem", "BatchWriteItem",
                           "BatchGetItem", "DescribeTable", "ConditionCheckItem"},
}
TOOL_RUNS: dict[str, dict[str, Any]] = {
    "check_availability": {"service": "tap repair", "date_from": "2030-03-12", "date_to": "2030-03-13"},
    "book_appointment": {"service": "tap repair", "slot_start": "2030-03-12T10:00", "customer_name": "Jordan Lee"},
    "cancel_appointment": {"confirmation_code": "<booked>"},
    "get_pricing": {"service": "tap repair"},
    "check_service_area": {"postcode": "10001"},
    "lookup_customer": {},
    "search_knowledge": {"query": "card payment"},
    "take_message": {"message": "Please call me back.", "callback_requested": True},
}


def record_dynamodb_calls(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, str]]:
    """From now until `monkeypatch.undo()`, every DynamoDB call any client makes, as (operation, table resource)."""
    from botocore.client import BaseClient

    table_ids = {model.Meta.table_name: table_resource(model) for model in ALL_MODELS}
    recorded: set[tuple[str, str]] = set()
    make_api_call = BaseClient._make_api_call

    def recording(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "dynamodb":
            tables = params.get("RequestItems", {}).keys() if "RequestItems" in params else [params["TableName"]]
            recorded.update((operation, table_ids[table]) for table in tables)
        return make_api_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return recorded


def test_every_tool_has_a_permission_run() -> None:
    assert set(TOOL_RUNS) == set(TOOL_FUNCTIONS)


@pytest.mark.parametrize("tool", sorted(TOOL_RUNS))
def test_tool_permissions_are_exactly_what_a_successful_run_uses(tool: str, dynamodb: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every DynamoDB call the real handler makes is granted, and every grant is used: the map is least privilege."""

    from tests.functions.tool_calls import CALLER, Business, invoke, ok, seed_business
    from voiceline import booking

    seed_business(Business("tenant-permissions"))
    arguments = dict(TOOL_RUNS[tool])
    if tool == "cancel_appointment":
        arguments["confirmation_code"] = booking.book("tenant-permissions", "tap repair", "2030-03-12T10:00",
                                                      "Jordan Lee", CALLER)["confirmation_code"]
    calls = record_dynamodb_calls(monkeypatch)
    ok(invoke(tool, arguments, tenant="tenant-permissions", caller=CALLER))
    monkeypatch.undo()

    granted = TOOL_POLICIES[tool]
    allowed = {(action, table) for template, table in granted for action in SAM_DYNAMODB_ACTIONS[template]}
    assert calls <= allowed, f"{tool} makes calls its policies do not allow: {sorted(calls - allowed)}"
    used = {(template, table) for template, table in granted
            if any((action, table) in calls for action in SAM_DYNAMODB_ACTIONS[template])}
    assert used == granted, f"{tool} never uses {sorted(granted - used)}"


# --- the admin API ------------------------------------------------------------------------------

# Least privilege for the admin function, written out: keys are only read; agents and numbers are
# configured; calls are read (history) and written (outbound calls); call events are only read.
ADMIN_POLICIES = {("DynamoDBReadPolicy", "ApiKeysTable"), ("DynamoDBCrudPolicy", "AgentsTable"),
                  ("DynamoDBCrudPolicy", "PhoneNumbersTable"), ("DynamoDBReadPolicy", "CallsTable"),
                  ("DynamoDBWritePolicy", "CallsTable"), ("DynamoDBReadPolicy", "CallEventsTable"),
                  ("DynamoDBReadPolicy", "RollupsTable")}


def test_the_admin_function_serves_the_app_under_api() -> None:
    properties = FUNCTIONS["AdminFunction"]
    assert properties["CodeUri"].rstrip("/") == "functions/admin"
    assert properties["Handler"] == "app.lambda_handler"
    assert ref(properties["Layers"][0]) == "CoreLayer"
    [event] = properties["Events"].values()
    assert event["Type"] == "HttpApi"
    assert (event["Properties"]["Method"], event["Properties"]["Path"]) == ("ANY", "/api/{proxy+}")
    assert ref(event["Properties"]["ApiId"]) == "HttpApi"
    requirements = (ROOT / "functions" / "admin" / "requirements.txt").read_text()
    assert "fastapi" in requirements and "mangum" in requirements  # sam build installs them beside the handler


def test_the_admin_function_may_touch_only_its_tables_and_the_twilio_token() -> None:
    policies = RESOURCES["AdminFunction"]["Properties"]["Policies"]
    secret_policies = [policy for policy in policies if "AWSSecretsManagerGetSecretValuePolicy" in policy]
    assert [ref(policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]) for policy in secret_policies] == [
        "TwilioAuthTokenSecret"]
    assert granted_tables([policy for policy in policies if policy not in secret_policies]) == ADMIN_POLICIES
    environment = FUNCTIONS["AdminFunction"]["Environment"]["Variables"]
    assert ref(environment["TWILIO_AUTH_TOKEN_SECRET_ARN"]) == "TwilioAuthTokenSecret"
    assert ref(environment["PUBLIC_WEBHOOK_BASE_URL"]) == "PublicWebhookBaseUrl"


def test_admin_permissions_cover_every_call_its_routes_make_and_no_route_scans(
        dynamodb: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Agents CRUD, preview, call history and call detail through the real handler, every DynamoDB call recorded."""
    import httpx

    from local.asgi_server import ThreadedServer
    from local.gateway import DEFAULT_TEMPLATE, build_app
    from voiceline import api_keys, calls

    key = api_keys.issue_key("tenant-permissions", "tests").key
    calls.create_call("CA" + "9" * 32, "tenant-permissions", "agent-x", "+15551234567", "+15550100")
    calls.append_events("CA" + "9" * 32, 0, [calls.NewEvent("transcript", 10, role="agent", text="Hello")])
    with ThreadedServer(build_app(DEFAULT_TEMPLATE)) as server, \
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client:
        recorded = record_dynamodb_calls(monkeypatch)
        body = {"name": "Ava", "instructions": "Help {caller_number}.", "greeting": "Hello."}
        agent_url = f"/api/agents/{client.post('/api/agents', json=body).json()['agent_id']}"
        statuses = [client.get("/api/agents").status_code, client.get(agent_url).status_code,
                    client.put(agent_url, json={**body, "version": 1}).status_code,
                    client.patch(agent_url, json={"version": 2, "speed": 1.2}).status_code,
                    client.post(f"{agent_url}/preview").status_code,
                    client.get("/api/calls", params={"limit": 1}).status_code,
                    client.get("/api/calls", params={"agent": "agent-x"}).status_code,
                    client.get(f"/api/calls/CA{'9' * 32}").status_code,
                    client.delete(agent_url).status_code]
        monkeypatch.undo()

    assert statuses == [200, 200, 200, 200, 200, 200, 200, 200, 204]
    assert not any(operation == "Scan" for operation, _ in recorded)
    allowed = {(action, table) for template, table in ADMIN_POLICIES for action in SAM_DYNAMODB_ACTIONS[template]}
    assert recorded <= allowed, f"calls the admin policies do not allow: {sorted(recorded - allowed)}"
    # The phone-number and outbound-call routes use the rest (PhoneNumbers, writing Calls).
    used = {(template, table) for template, table in ADMIN_POLICIES
            if any((action, table) in recorded for action in SAM_DYNAMODB_ACTIONS[template])}
    assert used >= {("DynamoDBReadPolicy", "ApiKeysTable"), ("DynamoDBCrudPolicy", "AgentsTable"),
                    ("DynamoDBReadPolicy", "CallsTable"), ("DynamoDBReadPolicy", "CallEventsTable")}


# --- the bridge ----------------------------------------------------------------------------------

def bridge_table_grants() -> set[tuple[str, str]]:
    """(DynamoDB operation, table logical id) for each action the bridge's task role allows on a table."""
    [task] = of_type("AWS::ECS::TaskDefinition").values()
    role = RESOURCES[task["TaskRoleArn"]["Fn::GetAtt"][0]]
    grants = set()
    for statement in policy_statements(role["Properties"]["Policies"]):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        grants |= {(action.removeprefix("dynamodb:"), resource["Fn::GetAtt"][0])
                   for action in actions if action.startswith("dynamodb:") for resource in resources}
    return grants


async def test_bridge_permissions_are_exactly_what_a_call_uses(dynamodb: None, monkeypatch: pytest.MonkeyPatch,
                                                               twilio_signer: TwilioSigner) -> None:
    """A whole call through the real bridge (scripted model, silence ends it), every DynamoDB call recorded."""
    from local.scripted_model import ScriptedModelServer, load_script
    from local.stack import DEMO_CONVERSATION
    from tests.bridge.bridge_harness import AGENT, TENANT, TwilioLeg, ended_call, running_bridge
    from voiceline import calls
    from voiceline.models import Agent

    Agent(AGENT, tenant_id=TENANT, name="Ava", business_name="Acme", instructions="Help {caller_number}",
          greeting="Hello from {business_name}", max_duration_s=60, silence_timeout_s=1).save()
    calls.create_call("CA" + "7" * 32, TENANT, AGENT, "+15551230000", "+15550100")
    recorded = record_dynamodb_calls(monkeypatch)
    async with ScriptedModelServer(load_script(DEMO_CONVERSATION), port=0) as model, \
            running_bridge(model.url, monkeypatch) as url, \
            TwilioLeg.open(url, twilio_signer, "CA" + "7" * 32) as leg:
        await leg.run_until_closed(timeout_s=15)
    # Polls the Call with GetItem, as the bridge itself does when the stream starts.
    assert (await ended_call("CA" + "7" * 32)).end_reason == "silence_timeout"
    monkeypatch.undo()

    granted = bridge_table_grants()
    assert recorded <= granted, f"calls the bridge's task role does not allow: {sorted(recorded - granted)}"
    assert recorded == granted, f"the bridge's task role grants what a call never uses: {sorted(granted - recorded)}"


def test_the_analytics_function_reads_the_calls_stream_and_writes_only_rollups() -> None:
    """Batch item failures reported, bounded retries, and no table but Rollups (write) in its policies."""
    properties = FUNCTIONS["AnalyticsFunction"]
    [event] = properties["Events"].values()
    assert event["Type"] == "DynamoDB"
    assert event["Properties"]["Stream"] == {"Fn::GetAtt": ["CallsTable", "StreamArn"]}
    assert event["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["Properties"]["MaximumRetryAttempts"] >= 0
    assert RESOURCES["CallsTable"]["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert granted_tables(properties["Policies"]) == {("DynamoDBWritePolicy", "RollupsTable")}


def _references(node: Any) -> set[str]:
    """Logical ids a resource refers to through Ref, GetAtt and ${…} in Sub."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!][^}]*)\}", text)}
                found |= _references(value[1]) if isinstance(value, list) else set()
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def test_no_resource_depends_on_itself_through_others() -> None:
    """CloudFormation refuses circular dependencies; SAM adds one edge per event, from the API to the function.

    e.g. a function whose environment names its own HttpApi's URL, when the API integrates that function.
    """
    def without_events(resource: dict[str, Any]) -> dict[str, Any]:
        """A function's events turn into API routes and permissions: the API depends on it, not it on the API."""
        return {**resource, "Properties": {key: value for key, value in resource.get("Properties", {}).items()
                                           if key != "Events"}}

    depends = {name: _references(without_events(resource)) & set(RESOURCES) for name, resource in RESOURCES.items()}
    for name, properties in of_type("AWS::Serverless::Function").items():
        for event in (properties.get("Events") or {}).values():
            api = ref((event.get("Properties") or {}).get("ApiId"))
            if event.get("Type") == "HttpApi" and api:
                depends[api].add(name)

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for target in depends[node]:
                if target == start:
                    return [*path, start]
                if target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
        return None

    cycles = [cycle for name in RESOURCES if (cycle := cycle_from(name))]
    assert cycles == [], f"circular dependencies: {cycles}"
