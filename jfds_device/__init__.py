"""jfds-device: a Matter node with the Joint Fabric Datastore cluster and an embedded reconciler.

The public surface is small: run a node from a ``NodeConfig`` (``Device``, or ``run_until_signalled`` as the CLI
does) and catch ``MatterError``. Everything else is internal and may move.
"""

from jfds_device.errors import MatterError
from jfds_device.node.config import ConfigError, NodeConfig

__all__ = ["ConfigError", "MatterError", "NodeConfig", "__version__"]

__version__ = "0.1.0"
