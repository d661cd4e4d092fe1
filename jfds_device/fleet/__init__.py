"""The fleet simulator: many lightweight Matter peer nodes in one process (``python -m jfds_device.fleet``)."""

from jfds_device.fleet.fleet import Fleet, FleetConfig
from jfds_device.fleet.provision import FabricCA, IssuedChain, provision
from jfds_device.fleet.sim_node import COMMISSIONING, FAST_PROVISIONING, NodeCapacities, SimulatedNode

__all__ = ["COMMISSIONING", "FAST_PROVISIONING", "FabricCA", "Fleet", "FleetConfig", "IssuedChain",
           "NodeCapacities", "SimulatedNode", "provision"]
