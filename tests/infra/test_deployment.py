"""template.yaml as a production deployment: no call dropped on a deploy or a scale-in, secrets kept secret.

Each check reads the template (tests/infra/cfn_template.py); the ones about the code's own names
(the scaling metric, the log lines alarms count) take those names from the running code.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.active_calls_metric import ActiveCallsMetric
from tests.infra.cfn_template import RESOURCES, ROOT, TEMPLATE, of_type, ref
from tests.infra.test_template import TOOL_FUNCTIONS, tool_function

[(SERVICE_ID, SERVICE)] = of_type("AWS::ECS::Service").items()
[(TARGET_GROUP_ID, TARGET_GROUP)] = of_type("AWS::ElasticLoadBalancingV2::TargetGroup").items()
[(LOAD_BALANCER_ID, LOAD_BALANCER)] = of_type("AWS::ElasticLoadBalancingV2::LoadBalancer").items()
PARAMETERS: dict[str, dict[str, Any]] = TEMPLATE["Parameters"]
ALARMS = of_type("AWS::CloudWatch::Alarm")
# Twilio gives up on an idle WebSocket sooner than this never; ALB's own default (60 s) is too short.
MIN_IDLE_TIMEOUT_S = 300
# ALB's ceiling for a target group's deregistration delay.
MAX_DEREGISTRATION_DELAY_S = 3600


def attributes(properties: dict[str, Any], key: str) -> dict[str, Any]:
    return {item["Key"]: item["Value"] for item in properties.get(key, [])}


def parameter_default(value: Any) -> Any:
    """A literal, or the default of the parameter it refers to."""
    return PARAMETERS[ref(value)]["Default"] if ref(value) in PARAMETERS else value


# --- the load balancer ----------------------------------------------------------------------------

def test_the_load_balancer_keeps_quiet_websockets_open() -> None:
    idle = parameter_default(attributes(LOAD_BALANCER, "LoadBalancerAttributes")["idle_timeout.timeout_seconds"])
    assert int(idle) >= MIN_IDLE_TIMEOUT_S


def test_the_deregistration_delay_is_a_parameter_within_alb_limits() -> None:
    delay = attributes(TARGET_GROUP, "TargetGroupAttributes")["deregistration_delay.timeout_seconds"]
    parameter = PARAMETERS[ref(delay)]
    assert parameter["MaxValue"] <= MAX_DEREGISTRATION_DELAY_S
    # long enough for a typical call (a few minutes), short of the ceiling
    assert 300 <= parameter["Default"] <= parameter["MaxValue"]


def test_the_target_group_checks_the_health_route_the_bridge_fails_while_draining() -> None:
    from bridge.app import app

    assert TARGET_GROUP["HealthCheckPath"] == "/health"
    assert "/health" in {getattr(route, "path", None) for route in app.routes}
    assert TARGET_GROUP["TargetType"] == "ip"  # awsvpc tasks register by IP


def test_the_listener_is_https_with_a_certificate_and_plain_http_only_without() -> None:
    [listener] = of_type("AWS::ElasticLoadBalancingV2::Listener").values()
    conditions = TEMPLATE["Conditions"]

    assert listener["Protocol"] == {"Fn::If": ["HasCertificate", "HTTPS", "HTTP"]}
    assert conditions["HasCertificate"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CertificateArn"}, ""]}]}
    assert listener["Certificates"]["Fn::If"][1] == [{"CertificateArn": {"Ref": "CertificateArn"}}]
    assert PARAMETERS["CertificateArn"]["Default"] == ""


def security_group_ingress(group: str) -> Iterator[dict[str, Any]]:
    """Every ingress rule of `group`: inline and as AWS::EC2::SecurityGroupIngress resources."""
    yield from RESOURCES[group]["Properties"].get("SecurityGroupIngress", [])
    for rule in of_type("AWS::EC2::SecurityGroupIngress").values():
        if ref(rule["GroupId"]) == group:
            yield rule


def test_bridge_tasks_accept_traffic_from_the_load_balancer_only() -> None:
    [bridge_group] = [ref(group) for group in SERVICE["NetworkConfiguration"]["AwsvpcConfiguration"]["SecurityGroups"]]
    [balancer_group] = [ref(group) for group in LOAD_BALANCER["SecurityGroups"]]
    rules = list(security_group_ingress(bridge_group))

    assert rules, "the load balancer must reach the bridge"
    assert all(set(rule) & {"CidrIp", "CidrIpv6", "SourcePrefixListId"} == set() for rule in rules)
    assert {ref(rule.get("SourceSecurityGroupId")) for rule in rules} == {balancer_group}


# --- the service ------------------------------------------------------------------------------------

def test_deployments_roll_back_by_themselves() -> None:
    deployment = SERVICE["DeploymentConfiguration"]
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert deployment["MinimumHealthyPercent"] == 100  # old tasks keep their calls until new ones are healthy


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def test_spot_capacity_is_used_nowhere() -> None:
    """A reclaimed Spot task cuts its calls with two minutes' notice."""
    assert not [text for text in strings(TEMPLATE) if "SPOT" in text.upper()]
    assert SERVICE["LaunchType"] == "FARGATE"
    assert "CapacityProviderStrategy" not in SERVICE


def test_the_task_runs_on_arm64_fargate() -> None:
    task = RESOURCES[ref(SERVICE["TaskDefinition"])]["Properties"]
    assert task["RuntimePlatform"] == {"CpuArchitecture": "ARM64", "OperatingSystemFamily": "LINUX"}
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert ref(task["Cpu"]) in PARAMETERS and ref(task["Memory"]) in PARAMETERS


def test_the_service_sits_behind_the_load_balancer_after_its_listener_exists() -> None:
    [binding] = SERVICE["LoadBalancers"]
    [container] = RESOURCES[ref(SERVICE["TaskDefinition"])]["Properties"]["ContainerDefinitions"]

    assert ref(binding["TargetGroupArn"]) == TARGET_GROUP_ID
    assert (binding["ContainerName"], binding["ContainerPort"]) == (
        container["Name"], container["PortMappings"][0]["ContainerPort"])
    assert RESOURCES[SERVICE_ID]["DependsOn"] in of_type("AWS::ElasticLoadBalancingV2::Listener")
    assert SERVICE["HealthCheckGracePeriodSeconds"] > 0


def test_the_template_does_not_fight_autoscaling_over_the_task_count() -> None:
    """A DesiredCount in the template would reset the fleet to it on every deploy, mid-traffic."""
    assert "DesiredCount" not in SERVICE


# --- autoscaling on live calls ------------------------------------------------------------------------

def published_metric(capsys: pytest.CaptureFixture[str], service: str) -> dict[str, Any]:
    """What the bridge's metric publisher actually prints (CloudWatch EMF): namespace, name, dimensions."""
    capsys.readouterr()
    ActiveCallsMetric(lambda: 3, service=service).publish()
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    [directive] = record["_aws"]["CloudWatchMetrics"]
    [metric] = directive["Metrics"]
    [dimension_names] = directive["Dimensions"]
    return {"Namespace": directive["Namespace"], "MetricName": metric["Name"], "Unit": metric["Unit"],
            "Dimensions": [{"Name": name, "Value": record[name]} for name in dimension_names]}


def _in_stack(value: Any, stack: str) -> Any:
    """A value as CloudFormation resolves it in a stack of that name (a `!Sub` of ${AWS::StackName} only)."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        return value["Fn::Sub"].replace("${AWS::StackName}", stack)
    return value


def test_the_fleet_scales_on_the_active_calls_metric_the_bridge_publishes(capsys: pytest.CaptureFixture[str]) -> None:
    [policy] = of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    metric = tracking["CustomizedMetricSpecification"]
    [container] = RESOURCES[ref(SERVICE["TaskDefinition"])]["Properties"]["ContainerDefinitions"]
    service = {item["Name"]: item["Value"] for item in container["Environment"]}["ACTIVE_CALLS_SERVICE"]

    assert policy["PolicyType"] == "TargetTrackingScaling"
    for stack in ("voiceline", "voiceline-staging"):  # each stack scales on its own tasks' calls only
        expected = {key: metric[key] for key in ("Namespace", "MetricName", "Unit")}
        expected["Dimensions"] = [{**dimension, "Value": _in_stack(dimension["Value"], stack)}
                                  for dimension in metric["Dimensions"]]
        assert expected == published_metric(capsys, _in_stack(service, stack))
        assert stack in _in_stack(service, stack)
    assert metric["Statistic"] == "Average"  # each task prints its own count: the average is calls per task
    assert ref(tracking["TargetValue"]) in PARAMETERS


def test_scale_out_is_fast_and_scale_in_is_slow() -> None:
    [policy] = of_type("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["ScaleOutCooldown"] <= 120
    assert tracking["ScaleInCooldown"] >= 5 * tracking["ScaleOutCooldown"]
    assert not tracking.get("DisableScaleIn", False)


def test_the_scalable_target_is_the_bridge_service_within_parameter_bounds() -> None:
    [target] = of_type("AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert target["ScalableDimension"] == "ecs:service:DesiredCount"
    assert f"${{{SERVICE_ID}.Name}}" in target["ResourceId"]["Fn::Sub"]
    for bound, parameter in (("MinCapacity", "BridgeMinTasks"), ("MaxCapacity", "BridgeMaxTasks")):
        assert ref(target[bound]) == parameter
    assert PARAMETERS["BridgeMinTasks"]["MinValue"] >= 1  # zero tasks answers no call


def test_the_bridge_may_protect_only_its_own_clusters_tasks() -> None:
    task = RESOURCES[ref(SERVICE["TaskDefinition"])]["Properties"]
    role = RESOURCES[task["TaskRoleArn"]["Fn::GetAtt"][0]]["Properties"]
    statements = [statement for policy in role["Policies"] for statement in policy["PolicyDocument"]["Statement"]
                  if "ecs:" in str(statement["Action"])]

    assert [statement["Action"] for statement in statements] == ["ecs:UpdateTaskProtection"]
    assert f"task/${{{ref(SERVICE['Cluster'])}}}/*" in statements[0]["Resource"]["Fn::Sub"]


# --- secrets ----------------------------------------------------------------------------------------

def parameters_reached(node: Any) -> set[str]:
    """Parameters a value depends on, through Ref, ${Name} in Sub, and every other intrinsic function."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= set(re.findall(r"\$\{([^}!.][^}.]*)\}", text))
                found |= parameters_reached(value[1]) if isinstance(value, list) else set()
            else:
                found |= parameters_reached(value)
    elif isinstance(node, list):
        for item in node:
            found |= parameters_reached(item)
    return found


def environment_values(template: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(owner, value) for every environment variable a function or container gets, Globals included."""
    for variable, value in template.get("Globals", {}).get("Function", {}).get("Environment", {}).get(
            "Variables", {}).items():
        yield f"Globals/{variable}", value
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            for variable, value in properties.get("Environment", {}).get("Variables", {}).items():
                yield f"{name}/{variable}", value
        for container in properties.get("ContainerDefinitions", []):
            for item in container.get("Environment", []):
                yield f"{name}/{container['Name']}/{item['Name']}", item["Value"]


def no_echo_leaks(template: dict[str, Any]) -> list[str]:
    hidden = {name for name, spec in template.get("Parameters", {}).items()
              if str(spec.get("NoEcho")).lower() == "true"}
    return [owner for owner, value in environment_values(template) if parameters_reached(value) & hidden]


def test_no_noecho_parameter_reaches_an_environment_variable() -> None:
    assert no_echo_leaks(TEMPLATE) == []


@pytest.mark.parametrize("value", [{"Ref": "Token"}, {"Fn::Sub": "Bearer ${Token}"},
                                   {"Fn::If": ["Always", {"Fn::Join": ["", [{"Ref": "Token"}]]}, ""]},
                                   {"Fn::Sub": ["x${T}", {"T": {"Ref": "Token"}}]}])
def test_the_noecho_check_sees_through_intrinsic_functions(value: Any) -> None:
    leaking = {"Parameters": {"Token": {"Type": "String", "NoEcho": True}},
               "Resources": {"Fn": {"Type": "AWS::Serverless::Function",
                                    "Properties": {"Environment": {"Variables": {"T": value}}}}}}
    assert no_echo_leaks(leaking) == ["Fn/T"]


def test_no_parameter_asks_for_a_secret() -> None:
    """Secrets are put into Secrets Manager after the deploy; a parameter would print them in the console."""
    looks_secret = re.compile(r"(Token|Password|ApiKey|SecretKey|AuthToken|PrivateKey)$")
    assert [name for name in PARAMETERS if looks_secret.search(name)] == []


# --- logs and alarms -------------------------------------------------------------------------------------

@pytest.mark.parametrize("log_group", sorted(of_type("AWS::Logs::LogGroup")))
def test_every_log_group_expires(log_group: str) -> None:
    assert ref(RESOURCES[log_group]["Properties"]["RetentionInDays"]) == "LogRetentionDays"


# Each alarm the issue asks for, and the log line (file, message) behind it when it counts one.
LOG_LINE_ALARMS = {
    "OpenAIConnectFailuresFilter": ("bridge/realtime_link.py", "BridgeLogGroup"),
    "ToolFailuresFilter": ("bridge/tool_invoker.py", "BridgeLogGroup"),
}


@pytest.mark.parametrize("metric_filter", sorted(LOG_LINE_ALARMS))
def test_log_metric_filters_match_a_line_the_code_logs(metric_filter: str) -> None:
    source, log_group = LOG_LINE_ALARMS[metric_filter]
    properties = RESOURCES[metric_filter]["Properties"]
    [message] = re.findall(r'\$\.message = "([^"]+)"', properties["FilterPattern"])

    assert ref(properties["LogGroupName"]) == log_group
    assert re.search(rf'logger\.\w+\(\s*"{re.escape(message)}"', (ROOT / source).read_text()), \
        f"{source} no longer logs {message!r}: the alarm on {metric_filter} would never fire"


def test_the_webhook_error_filter_watches_the_webhook_routes() -> None:
    events = RESOURCES["WebhooksFunction"]["Properties"]["Events"].values()
    routes = {f"{event['Properties']['Method']} {event['Properties']['Path']}" for event in events}
    properties = RESOURCES["WebhookErrorsFilter"]["Properties"]
    access_log = RESOURCES[ref(properties["LogGroupName"])]
    api = next(resource for resource in RESOURCES.values()
               if resource["Type"] == "AWS::Serverless::HttpApi"
               and resource["Properties"]["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0]
               == ref(properties["LogGroupName"]))

    assert access_log["Type"] == "AWS::Logs::LogGroup"
    assert set(re.findall(r'\$\.route = "([^"]+)"', properties["FilterPattern"])) == routes
    assert "$.status >= 400" in properties["FilterPattern"]
    # the access log writes status as a number, or the comparison never matches
    assert '"status":$context.status' in api["Properties"]["AccessLogSettings"]["Format"]


def alarm_metrics(alarm: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if "MetricName" in alarm:
        yield {"Namespace": alarm["Namespace"], "MetricName": alarm["MetricName"],
               "Dimensions": alarm.get("Dimensions", [])}
    for query in alarm.get("Metrics", []):
        if "MetricStat" in query:
            yield {"Dimensions": [], **query["MetricStat"]["Metric"]}


def test_the_tool_error_rate_counts_every_tool_function() -> None:
    alarm = ALARMS["ToolErrorRateAlarm"]
    functions = {ref(dimension["Value"]) for metric in alarm_metrics(alarm) if metric["MetricName"] == "Invocations"
                 for dimension in metric["Dimensions"] if dimension["Name"] == "FunctionName"}

    assert functions == {tool_function(tool) for tool in TOOL_FUNCTIONS.values()}
    assert len(alarm["Metrics"]) <= 10  # CloudWatch's limit for one alarm
    assert any(metric["MetricName"] == "ToolFailures" for metric in alarm_metrics(alarm))


@pytest.mark.parametrize(("signal", "namespace", "metric_name"), [
    ("bridge 5xx", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count"),
    ("no healthy bridge task", "AWS/ApplicationELB", "HealthyHostCount"),
    ("OpenAI connect failures", {"Fn::Sub": "Voiceline/${AWS::StackName}"}, "OpenAIConnectFailures"),
    ("tool error rate", {"Fn::Sub": "Voiceline/${AWS::StackName}"}, "ToolFailures"),
    ("webhook 4xx/5xx", {"Fn::Sub": "Voiceline/${AWS::StackName}"}, "WebhookErrors"),
])
def test_an_alarm_watches_each_signal_and_tells_the_topic(signal: str, namespace: Any, metric_name: str) -> None:
    watching = [name for name, alarm in ALARMS.items()
                if any((metric["Namespace"], metric["MetricName"]) == (namespace, metric_name)
                       for metric in alarm_metrics(alarm))]
    assert watching, f"no alarm on {signal}"
    for name in watching:
        assert [ref(action) for action in ALARMS[name]["AlarmActions"]] == ["AlarmTopic"]


def test_metrics_from_log_lines_are_counted_where_the_alarms_look() -> None:
    filtered = {(transform["MetricNamespace"]["Fn::Sub"], transform["MetricName"])
                for properties in of_type("AWS::Logs::MetricFilter").values()
                for transform in properties["MetricTransformations"]}
    watched = {(metric["Namespace"]["Fn::Sub"], metric["MetricName"]) for alarm in ALARMS.values()
               for metric in alarm_metrics(alarm) if isinstance(metric["Namespace"], dict)}
    assert watched == filtered


# --- outputs and deploy -----------------------------------------------------------------------------------

def test_outputs_give_the_urls_to_paste_into_twilio_and_the_bridge_url() -> None:
    outputs = TEMPLATE["Outputs"]
    events = RESOURCES["WebhooksFunction"]["Properties"]["Events"]
    for output, event in (("VoiceWebhookUrl", "Voice"), ("StatusCallbackUrl", "Status")):
        assert outputs[output]["Value"]["Fn::Sub"].endswith(events[event]["Properties"]["Path"])
    assert outputs["AdminApiBaseUrl"]["Value"]["Fn::Sub"].endswith("/api")
    # the bridge's URL is the one the webhooks put in <Stream>
    webhooks_env = RESOURCES["WebhooksFunction"]["Properties"]["Environment"]["Variables"]
    assert outputs["BridgePublicUrl"]["Value"] == webhooks_env["BRIDGE_PUBLIC_URL"]


def test_make_deploy_builds_pushes_an_arm64_image_then_deploys_with_it() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "-n", "deploy", "PARAMETERS=TwilioAccountSid=AC1"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    script = result.stdout
    steps = [script.index(step) for step in ("sam build", "docker buildx build --platform linux/arm64",
                                             "--push", "sam deploy")]

    assert steps == sorted(steps)
    assert '--parameter-overrides "BridgeImageUri=$image TwilioAccountSid=AC1"' in script
    assert "-f bridge/Dockerfile" in script
