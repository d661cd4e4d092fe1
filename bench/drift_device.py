"""jfds-device with a chosen reconciler configuration: the launcher of ``bench/drift_bench.py``.

``python -m bench.drift_device MODE run --storage DIR ...`` runs the node as ``jfds-device run`` does (its own
command line follows MODE) with the reconciler's configuration ``MODES[MODE]``:

* ``polling``: how the reconciler learnt about peers before issue 11, a verify pass (reading what the node's
  Committed entries cover) every 20 s per node, no subscriptions;
* ``subscriptions``: the default ``ReconcilerConfig()``, one live subscription per managed peer and an hourly
  safety sweep.

No command-line option of jfds-device selects this: the default is the one to run. Nothing here is imported by the
node itself.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from jfds_device.cli import EXIT_USAGE, build_parser
from jfds_device.node.config import ConfigError, NodeConfig
from jfds_device.reconciler import ReconcilerConfig

MODES = {
    "polling": ReconcilerConfig(live=False, verify_interval=20.0),
    "subscriptions": ReconcilerConfig(),
}

log = logging.getLogger("bench.drift_device")


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if not args_in or args_in[0] not in MODES:
        print(f"usage: python -m bench.drift_device {{{','.join(MODES)}}} run --storage DIR ...", file=sys.stderr)
        return EXIT_USAGE
    mode = args_in.pop(0)
    args = build_parser().parse_args(args_in)
    try:  # as jfds_device.cli.main does
        config = NodeConfig(storage=args.storage, passcode=args.passcode, discriminator=args.discriminator,
                            port=args.port, interface=args.interface, vendor_id=args.vendor_id,
                            product_id=args.product_id, friendly_name=args.friendly_name, certs_dir=args.certs,
                            log_level=args.log_level)
    except ConfigError as exc:
        print(f"jfds-device: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    from jfds_device.node.app import run_until_signalled

    log.info("reconciler mode %s: %s", mode, MODES[mode])
    return asyncio.run(run_until_signalled(config, reconciler_config=MODES[mode]))


if __name__ == "__main__":
    sys.exit(main())
