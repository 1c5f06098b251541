"""python -m local.load_bench --calls 50,100,150 --seconds 20: the load section of `make bench` on its own."""

from __future__ import annotations

import argparse

from local.bench import Section, load_calls, render


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.load_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="50,100,150", help="comma-separated call counts, one run each")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each call talks")
    args = parser.parse_args()
    section: Section = load_calls(argparse.Namespace(load_calls=args.calls, load_seconds=args.seconds))
    print(render(section))


if __name__ == "__main__":
    main()
