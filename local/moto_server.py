"""moto's server for the local stack's DynamoDB, without moto's record of every object it ever made.

CLI: python -m local.moto_server -H 127.0.0.1 -p 8000 (the arguments of `python -m moto.server`).

moto appends each model object it creates to a list on its class, for its dashboard
(`/moto-api/data.json`), and keeps it until a reset. Among them is every DynamoDB item of the copies
that TransactWriteItems makes of a table, once per item, to roll back from: the rollups write a
transaction per stream batch, so ending 500 calls took moto from 90 MiB to 2.8 GiB, with its full
collections growing to seconds, and on SIGTERM its exit spent over 15 s collecting. Nothing else in
moto's DynamoDB reads those lists, and nothing here uses the dashboard, so objects are made untracked.
"""

from __future__ import annotations

import sys
from typing import Any

from moto import server
from moto.core.common_models import BaseModel


def _new_untracked(cls: type[BaseModel], *args: Any, **kwargs: Any) -> BaseModel:
    return object.__new__(cls)


def main() -> None:
    BaseModel.__new__ = staticmethod(_new_untracked)  # type: ignore[method-assign, assignment]
    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
