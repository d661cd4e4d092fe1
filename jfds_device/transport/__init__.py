"""Message transport below the Interaction Model: sessions, counters, MRP and exchanges (Core spec §4).

Everything re-exported here is sans-IO. The asyncio edge lives in ``jfds_device.transport.udp`` and is not
imported by this package, so protocol code can use the transport without pulling in asyncio.
"""

from jfds_device.transport.counters import CounterExhaustedError, MessageCounter, ReceiveWindow
from jfds_device.transport.exchange import (
    CloseReason,
    Event,
    ExchangeClosed,
    ExchangeManager,
    ExchangeRef,
    MessageReceived,
    SessionClosed,
)
from jfds_device.transport.mrp import MrpParameters
from jfds_device.transport.sessions import (
    Address,
    SecureSession,
    Session,
    SessionAuthMode,
    SessionTable,
    UnsecuredSession,
)

__all__ = [
    "Address",
    "CloseReason",
    "CounterExhaustedError",
    "Event",
    "ExchangeClosed",
    "ExchangeManager",
    "ExchangeRef",
    "MessageCounter",
    "MessageReceived",
    "MrpParameters",
    "ReceiveWindow",
    "SecureSession",
    "Session",
    "SessionAuthMode",
    "SessionClosed",
    "SessionTable",
    "UnsecuredSession",
]
