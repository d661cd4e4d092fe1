"""Groups cluster: schema only (the node does not serve it; the reconciler invokes it on peers)."""
