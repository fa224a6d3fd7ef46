"""Test rig: real local servers (Kubernetes control plane, ...) that the test suite runs against."""

from rig.controlplane import Binaries, ControlPlane, ControlPlaneError, KubectlError, find_binaries

__all__ = ["Binaries", "ControlPlane", "ControlPlaneError", "KubectlError", "find_binaries"]
