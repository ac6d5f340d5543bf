"""Local users and groups."""

from .provider import UsersProvider

__all__ = ["UsersProvider"]
