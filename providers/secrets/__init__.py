"""Secrets generated once, kept on the host and never shown."""

from .provider import SecretsProvider

__all__ = ["SecretsProvider"]
