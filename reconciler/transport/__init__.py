"""Transports: how the reconciler reaches a host (local subprocess or SSH)."""

from reconciler.transport.base import CommandResult, HostLock, Transport
from reconciler.transport.local import LocalTransport
from reconciler.transport.ssh import SSHTarget, SSHTransport

__all__ = ["CommandResult", "HostLock", "LocalTransport", "SSHTarget", "SSHTransport", "Transport"]
