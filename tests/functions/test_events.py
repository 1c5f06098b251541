"""Every sample event under events/<function>/ runs through that function's handler and gets an answer."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from local.gateway import DEFAULT_TEMPLATE, LambdaFunction, lambda_functions, load_template
from local.seed import seed

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "events").glob("*/*.json"))


@cache
def function_for(folder: str) -> LambdaFunction:
    """The template's function whose CodeUri ends in `folder`, else functions/<folder> with app.lambda_handler."""
    if DEFAULT_TEMPLATE.exists():
        for function in lambda_functions(load_template(DEFAULT_TEMPLATE), DEFAULT_TEMPLATE.parent):
            if function.code_dir.name == folder:
                return function
    return LambdaFunction(folder, ROOT / "functions" / folder, "app.lambda_handler")


def test_every_event_folder_names_a_function() -> None:
    assert SAMPLES, "events/ holds no samples"
    for folder in {sample.parent.name for sample in SAMPLES}:
        function = function_for(folder)
        assert function.code_dir.is_dir(), f"events/{folder} has no function at {function.code_dir}"


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda sample: f"{sample.parent.name}/{sample.name}")
def test_sample_event_gets_an_answer_without_a_server_error(sample: Path, dynamodb: None) -> None:
    seed()

    result = function_for(sample.parent.name).invoke(json.loads(sample.read_text()))

    if isinstance(result, dict) and "statusCode" in result:
        assert result["statusCode"] < 500, result
