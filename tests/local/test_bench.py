"""make bench's sections: each leaves the environment as it found it, for the sections after it."""

from __future__ import annotations

import argparse
import os

import pytest

from local import bench
from local.stack import LocalStack


def test_a_section_leaves_no_stack_settings_behind_so_the_next_stack_starts_its_scripted_model(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    before = dict(os.environ)
    section = bench.tool_round_trips(argparse.Namespace(samples=1))
    assert len(section.rows) > 1  # every tool, then the warm calls' summary
    assert dict(os.environ) == before  # the stack's OPENAI_API_KEY, left here, meant no scripted model next
    assert LocalStack().uses_scripted_model
