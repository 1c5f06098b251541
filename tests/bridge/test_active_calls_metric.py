"""The active-calls scaling metric comes out as CloudWatch EMF that the autoscaling policy can read."""

from __future__ import annotations

import asyncio
import json

import pytest

from bridge.active_calls_metric import METRIC_NAME, ActiveCallsMetric


def _emf_records(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{") and '"_aws"' in line]


def test_each_record_is_emf_with_the_current_count(capsys: pytest.CaptureFixture[str]) -> None:
    calls = [1, 2, 3]
    metric = ActiveCallsMetric(lambda: len(calls), namespace="VoicelineTest")

    metric.publish()
    calls.pop()
    metric.publish()

    records = _emf_records(capsys.readouterr().out)
    assert [record[METRIC_NAME] for record in records] == [[3.0], [2.0]]  # EMF allows a list of values
    definition = records[0]["_aws"]["CloudWatchMetrics"][0]
    assert definition["Namespace"] == "VoicelineTest"
    assert definition["Metrics"] == [{"Name": METRIC_NAME, "Unit": "Count"}]
    assert records[0]["service"] == "voiceline-bridge"
    assert definition["Dimensions"] == [["service"]]


def test_the_service_dimension_is_the_one_configured(capsys: pytest.CaptureFixture[str]) -> None:
    ActiveCallsMetric(lambda: 1, service="voiceline-staging-bridge").publish()
    [record] = _emf_records(capsys.readouterr().out)
    assert record["service"] == "voiceline-staging-bridge"


async def test_it_publishes_on_its_own_until_closed(capsys: pytest.CaptureFixture[str]) -> None:
    metric = ActiveCallsMetric(lambda: 0, interval_s=0.05)
    metric.start()
    await asyncio.sleep(0.18)
    await metric.aclose()
    published = len(_emf_records(capsys.readouterr().out))
    await asyncio.sleep(0.1)
    assert published >= 3 and not _emf_records(capsys.readouterr().out)
