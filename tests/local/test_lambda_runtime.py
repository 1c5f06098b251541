"""The in-process Lambda runtime: FunctionName rendering, warm and cold execution environments, throttling."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from local.lambda_runtime import LambdaFunction, Throttled, rendered, substitution_values

HANDLER = '''
import threading

entered = threading.Event()
release = threading.Event()


def lambda_handler(event, context):
    if event.get("hold"):
        entered.set()
        release.wait(5)
    return {"module": __name__, "function_name": context.function_name}
'''


@pytest.fixture
def function(tmp_path: Path) -> LambdaFunction:
    (tmp_path / "app.py").write_text(HANDLER)
    return LambdaFunction("HoldFunction", tmp_path, "app.lambda_handler", function_name="voiceline-hold",
                          concurrency=2)


def test_sub_renders_stack_name_region_parameter_defaults_and_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STACK_NAME", "prod")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    values = substitution_values({"Parameters": {"Stage": {"Type": "String", "Default": "blue"}}})

    assert rendered({"Fn::Sub": "${AWS::StackName}-get-pricing"}, values) == "prod-get-pricing"
    assert rendered({"Fn::Sub": "${AWS::StackName}-${Stage}-${AWS::Region}"}, values) == "prod-blue-eu-west-1"
    assert rendered({"Fn::Sub": ["${Prefix}-x", {"Prefix": {"Ref": "Stage"}}]}, values) == "blue-x"
    assert rendered({"Fn::Sub": "${!Literal}-x"}, values) == "${Literal}-x"
    assert rendered("plain-name", values) == "plain-name"


def test_stack_name_defaults_to_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STACK_NAME", raising=False)

    assert rendered({"Fn::Sub": "${AWS::StackName}-x"}, substitution_values({})) == "voiceline-x"


@pytest.mark.parametrize("value", [{"Fn::Sub": "${Table}-x"}, {"Fn::GetAtt": ["Table", "Arn"]}, {"Ref": "Table"}, 7])
def test_a_value_that_needs_the_deployed_stack_renders_as_none(value: Any) -> None:
    assert rendered(value, substitution_values({})) is None


def test_sequential_invocations_reuse_the_warm_environment(function: LambdaFunction) -> None:
    first, second = function.invoke({}), function.invoke({})

    assert first == second == {"module": "lambda_HoldFunction", "function_name": "voiceline-hold"}


def test_a_busy_function_scales_out_then_throttles_beyond_its_concurrency(function: LambdaFunction) -> None:
    function.invoke({})  # environment 1 is warm
    first = sys.modules["lambda_HoldFunction"]
    holds = [threading.Thread(target=function.invoke, args=({"hold": True},))]
    holds[0].start()
    try:
        assert first.entered.wait(5)
        scaled_out = function.invoke({})  # environment 2 cold-starts, then is free again
        second = sys.modules["lambda_HoldFunction_2"]
        holds.append(threading.Thread(target=function.invoke, args=({"hold": True},)))
        holds[1].start()
        assert second.entered.wait(5)
        with pytest.raises(Throttled):
            function.invoke({}, wait=False)
    finally:
        for module in (first, sys.modules.get("lambda_HoldFunction_2")):
            if module is not None:
                module.release.set()
        for hold in holds:
            hold.join(5)

    assert scaled_out["module"] == "lambda_HoldFunction_2"
