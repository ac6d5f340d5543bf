"""Transports: how the reconciler reaches a host (local subprocess or SSH).

The SSH transport is imported on first use: paramiko and cryptography cost a
noticeable part of a local run's start-up, and a local run never needs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.transport.base import CommandResult, HostLock, Transport
from reconciler.transport.local import LocalTransport

if TYPE_CHECKING:
    from reconciler.transport.ssh import SSHTarget, SSHTransport

__all__ = ["CommandResult", "HostLock", "LocalTransport", "SSHTarget", "SSHTransport", "Transport"]


def __getattr__(name: str) -> Any:
    if name in ("SSHTarget", "SSHTransport"):
        from reconciler.transport import ssh

        return getattr(ssh, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
