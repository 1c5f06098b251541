"""The bridge's scaling signal: how many calls this task carries, published as CloudWatch EMF.

The service scales on active calls per task, not CPU: a task's CPU says little about how many
more calls it can take, and scale-in must wait for calls, not load, to fall.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

METRIC_NAME = "ActiveCalls"
NAMESPACE = "Voiceline"
# The `service` dimension: the stack's own (ACTIVE_CALLS_SERVICE), so two stacks in one account and region
# never scale on each other's calls.
DEFAULT_SERVICE = "voiceline-bridge"


class ActiveCallsMetric:
    """Prints one EMF record every `interval_s` with the current count; CloudWatch Logs turns it into a metric."""

    def __init__(self, count: Callable[[], int], interval_s: float = 60.0, namespace: str = NAMESPACE,
                 service: str = DEFAULT_SERVICE) -> None:
        self._count = count
        self._interval_s = interval_s
        self._metrics = Metrics(namespace=namespace, service=service)
        self._task: asyncio.Task[None] | None = None

    def publish(self) -> None:
        self._metrics.add_metric(name=METRIC_NAME, unit=MetricUnit.Count, value=self._count())
        self._metrics.flush_metrics()

    def start(self) -> None:
        self._task = asyncio.create_task(self._every_interval(), name="active-calls-metric")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _every_interval(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(self._interval_s)
