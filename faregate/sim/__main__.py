"""`python -m faregate.sim`: run the provider simulator."""

from __future__ import annotations

import argparse

from faregate.sim.server import run


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m faregate.sim", description="Faregate provider simulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before headers")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between chunks")
    args = parser.parse_args(argv)
    run(args.host, args.port, args.latency_ms, args.chunk_delay_ms)


if __name__ == "__main__":
    main()
