"""python -m local.load_bench --calls 50,100,150 --seconds 20: the load section of `make bench` on its own.

With --soak-minutes M, a soak instead: --calls N callers kept up for M minutes (`make soak`).
With --relay bare, the load runs through a bare relay in the bridge's place: the floor to read the bridge against.
"""

from __future__ import annotations

import argparse

from local.bench import Section, load_calls, load_floor, render, soak


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.load_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="50,100,150", help="comma-separated call counts, one run each")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each call talks")
    parser.add_argument("--soak-minutes", type=float, help="a soak of this many minutes instead (one call count)")
    parser.add_argument("--relay", choices=("bridge", "bare"), default="bridge",
                        help="what relays the calls: the bridge, or the bare relay (the floor)")
    args = parser.parse_args()
    if args.soak_minutes:
        section: Section = soak(int(args.calls), args.soak_minutes, args.seconds)
    else:
        load = load_floor if args.relay == "bare" else load_calls
        section = load(argparse.Namespace(load_calls=args.calls, load_seconds=args.seconds))
    print(render(section))


if __name__ == "__main__":
    main()
