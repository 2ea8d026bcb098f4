"""`python -m faregate.sim`: run the provider simulator."""

from __future__ import annotations

import argparse

from faregate.sim.server import run, tls_context


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m faregate.sim", description="Faregate provider simulator."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before headers")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between chunks")
    parser.add_argument(
        "--video-ms", type=float, default=200.0, help="how long a simulated video job takes"
    )
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate chain")
    parser.add_argument("--tls-key", help="the certificate's PEM private key")
    args = parser.parse_args(argv)
    if args.tls_key and not args.tls_cert:
        parser.error("--tls-key needs --tls-cert")
    tls = tls_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    run(args.host, args.port, args.latency_ms, args.chunk_delay_ms, tls, args.video_ms)


if __name__ == "__main__":
    main()
