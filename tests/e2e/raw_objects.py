"""Deliberately wrong CHIP cluster objects, to send what the controller's own types would never encode.

They live in an importable module so they pickle across to the controller process (tests/e2e/chip_rpc.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from chip import ChipUtility
from chip.clusters.ClusterObjects import ClusterAttributeDescriptor, ClusterObjectFieldDescriptor
from chip.tlv import uint


@dataclass
class NodeLabelAsUnsignedInt(ClusterAttributeDescriptor):
    """BasicInformation.NodeLabel (a string) written as an unsigned integer."""

    @ChipUtility.classproperty
    def cluster_id(cls) -> int:
        return 0x0028

    @ChipUtility.classproperty
    def attribute_id(cls) -> int:
        return 0x0005

    @ChipUtility.classproperty
    def attribute_type(cls) -> ClusterObjectFieldDescriptor:
        return ClusterObjectFieldDescriptor(Type=uint)

    @ChipUtility.classproperty
    def standard_attribute(cls) -> bool:
        return False

    value: uint = 0
