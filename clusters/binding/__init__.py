"""Binding cluster: schema only (the node does not serve it; the reconciler writes it on peers)."""
