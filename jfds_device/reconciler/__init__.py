"""The embedded reconciler: converges the fabric's peer nodes to the Joint Fabric Datastore.

* ``plan``: the sans-IO planner (decision table, status transitions, retry classes, backoff, drift budget);
* ``facets`` / ``facets_groups`` / ``facets_lists`` / ``facet_registry`` / ``lists``: how each band of entries
  reaches a peer (key sets, group key map, group membership, ACL, bindings) and the read-merge-write of whole lists;
* ``execute``: runs a plan band by band against one peer;
* ``refresh``: RefreshNode, mirroring a node into the datastore;
* ``peer``: the IM client bound to one session, the peer's capacities, who we are on the fabric;
* ``runner``: the asyncio shell (per-node queues, triggers, status write-back); ``config``: its settings, counters
  and pass reports;
* ``ports``: the Protocols it needs of the node (``PeerSessions``; time is ``jfds_device.clock.Clock``), which
  ``node/stack.py`` adapts to when it builds the reconciler.
"""

from jfds_device.reconciler.peer import OwnIdentity
from jfds_device.reconciler.plan import Mode, Op, Plan, RetryPolicy, plan_node
from jfds_device.reconciler.ports import PeerId, PeerSessions, PeerState, PeerUnreachableError
from jfds_device.reconciler.runner import PassReport, Reconciler, ReconcilerConfig, ReconcilerStats

__all__ = [
    "Mode",
    "Op",
    "OwnIdentity",
    "PassReport",
    "PeerId",
    "PeerSessions",
    "PeerState",
    "PeerUnreachableError",
    "Plan",
    "Reconciler",
    "ReconcilerConfig",
    "ReconcilerStats",
    "RetryPolicy",
    "plan_node",
]
