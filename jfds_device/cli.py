"""``jfds-device``: parse the command line into a NodeConfig and run the node. No logic lives here."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jfds_device.node.config import ConfigError, NodeConfig
from jfds_device.node.log_format import LOG_FORMATS, make_formatter

EXIT_USAGE = 2


def _int(text: str) -> int:
    return int(text, 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jfds-device", description="Joint Fabric Datastore Matter node")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the node until SIGINT/SIGTERM")
    defaults = NodeConfig()
    run.add_argument("--storage", type=Path, default=defaults.storage, help="state directory (default %(default)s)")
    run.add_argument("--passcode", type=_int, default=defaults.passcode)
    run.add_argument("--discriminator", type=_int, default=defaults.discriminator)
    run.add_argument("--port", type=_int, default=defaults.port)
    run.add_argument("--interface", default=None, help="network interface to use (default: all)")
    run.add_argument("--vendor-id", type=_int, default=defaults.vendor_id)
    run.add_argument("--product-id", type=_int, default=defaults.product_id)
    run.add_argument("--friendly-name", default=None, help="the datastore's FriendlyName")
    run.add_argument("--certs", type=Path, default=None, help="attestation material directory")
    run.add_argument("--log-level", default=defaults.log_level, type=str.lower,
                     choices=["debug", "info", "warning", "error"])
    run.add_argument("--log-format", default="text", choices=LOG_FORMATS,
                     help="text (default) or json: one object per line (time, level, logger, message)")
    run.add_argument("--http", default=None, metavar="HOST:PORT",
                     help="serve /metrics, the dashboard and its actions (default off; see README)")
    status = commands.add_parser(
        "status", help="which managed nodes are out of step and why (exit 0 in step, 1 pending or failed)"
    )
    status.add_argument("--storage", type=Path, default=defaults.storage, help="state directory (default %(default)s)")
    status.add_argument("--json", action="store_true", help="one JSON document (its schema: jfds_device.status)")
    status.add_argument("--token", action="store_true", help="print the --http token the node made, and nothing else")
    for name, value in (("--passcode", defaults.passcode), ("--discriminator", defaults.discriminator),
                        ("--vendor-id", defaults.vendor_id), ("--product-id", defaults.product_id)):
        status.add_argument(name, type=_int, default=value, help="as given to run: for the pairing code")
    return parser


def status_main(args: argparse.Namespace) -> int:
    """``jfds-device status``: read-only, also while the node runs; one error line and exit 2 if unreadable."""
    from jfds_device.status import StatusError, build_report, exit_code, render_text

    if args.token:
        from jfds_device.web import TokenError, read_token

        try:
            print(read_token(args.storage))
        except TokenError as exc:
            print(f"jfds-device: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        return 0
    try:
        report = build_report(args.storage, passcode=args.passcode, discriminator=args.discriminator,
                              vendor_id=args.vendor_id, product_id=args.product_id)
    except StatusError as exc:
        print(f"jfds-device: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(report, indent=2) if args.json else render_text(report))
    return exit_code(report)


def main(argv: Sequence[str] | None = None, *, on_started: Callable[[Any], None] | None = None) -> int:
    """The ``jfds-device`` command. ``on_started(device)``: called once the node runs (a seam for test-support
    launchers, e.g. to hold the reconciler or the task engine at a point of a test's choosing)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "status":
        return status_main(args)
    try:
        config = NodeConfig(
            storage=args.storage,
            passcode=args.passcode,
            discriminator=args.discriminator,
            port=args.port,
            interface=args.interface,
            vendor_id=args.vendor_id,
            product_id=args.product_id,
            friendly_name=args.friendly_name,
            certs_dir=args.certs,
            log_level=args.log_level,
        )
        listen = None if args.http is None else _parse_http(args.http)
    except (ConfigError, ValueError) as exc:
        print(f"jfds-device: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(args.log_format))
    logging.basicConfig(level=config.log_level.upper(), handlers=[handler])
    from jfds_device.node.app import StartupError, run_until_signalled

    try:
        def started(device: Any) -> None:
            _start_web(device, listen)
            if on_started is not None:
                on_started(device)

        return asyncio.run(run_until_signalled(config, on_started=started))
    except (StartupError, OSError) as exc:
        print(f"jfds-device: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _parse_http(text: str) -> tuple[str, int]:
    from jfds_device.web import parse_listen

    return parse_listen(text)


def _start_web(device: object, listen: tuple[str, int] | None) -> None:
    """The token exists from the first start on (``status --token`` prints it); the server only with --http."""
    from jfds_device.web import LiveNode, TokenError, bind, build_app, is_loopback, load_or_create_token, serve

    node = LiveNode.of_device(device)
    try:
        token = load_or_create_token(node.storage)
    except TokenError as exc:
        raise OSError(str(exc)) from exc
    if listen is None:
        return
    host, port = listen
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise OSError(f"--http {host}:{port}: {(exc.strerror or str(exc)).lower()}") from exc
    app = build_app(node, token, loopback=is_loopback(host))
    task = asyncio.get_running_loop().create_task(serve(app, sock))
    _web_tasks.add(task)
    logging.getLogger("jfds_device").info("HTTP view on %s:%d (/metrics, /, /events)", host, sock.getsockname()[1])


_web_tasks: set[asyncio.Task[object]] = set()  # keeps the server's start-up task alive


if __name__ == "__main__":
    sys.exit(main())
