"""Create a tenant (if new) and an admin API key for it, in the local stack's DynamoDB; the key is printed once.

    python -m local.admin_key --tenant tenant-demo [--name "laptop"] [--tenant-name "Bright Plumbing"]
    make admin-key TENANT=tenant-demo

It writes to the tables at AWS_ENDPOINT_URL_DYNAMODB (the local stack's, http://127.0.0.1:8000, unless set), so
start the stack first (`make dev`). Only the key's SHA-256 is stored: a lost key cannot be shown again, so make
another.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def issue_key_in(environment: Mapping[str, str], tenant: str, name: str) -> str:
    """A new key for `tenant` in the running stack that `environment` describes. It runs this command in a process
    of its own: the models read their table names and endpoint from the environment when first imported."""
    made = subprocess.run([sys.executable, "-m", "local.admin_key", "--tenant", tenant, "--name", name],
                          env=dict(environment), cwd=ROOT, capture_output=True, text=True, timeout=60)
    if made.returncode != 0:
        raise RuntimeError(f"python -m local.admin_key failed: {made.stderr.strip()}")
    return made.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.admin_key", description=__doc__.splitlines()[0])
    parser.add_argument("--tenant", required=True, help="the tenant id, e.g. tenant-demo")
    parser.add_argument("--name", default="admin", help="what the key is for, to tell keys apart (default: admin)")
    parser.add_argument("--tenant-name", help="the business's name for a new tenant (default: the tenant id)")
    args = parser.parse_args(argv)

    from local.environment import local_environment

    os.environ.update(local_environment())  # before the models read their table names
    from botocore.exceptions import BotoCoreError
    from pynamodb.exceptions import PynamoDBException

    from voiceline import api_keys, tenants

    try:
        tenants.check_tenant_id(args.tenant)
    except ValueError as error:
        parser.error(str(error))
    try:
        created = tenants.create_tenant(args.tenant, args.tenant_name or args.tenant)
        issued = api_keys.issue_key(args.tenant, args.name)
    except (PynamoDBException, BotoCoreError) as error:
        print(f"could not write to DynamoDB at {os.environ['AWS_ENDPOINT_URL_DYNAMODB']}: {error}\n"
              "Is the local stack running (make dev)?", file=sys.stderr)
        return 1
    print(f"{'created' if created else 'existing'} tenant {args.tenant}; new key {issued.name!r} "
          f"({issued.prefix}…). It is shown only this once:", file=sys.stderr)
    print(issued.key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
