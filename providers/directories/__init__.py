"""Directories with owner, group and mode."""

from .provider import DirectoriesProvider

__all__ = ["DirectoriesProvider"]
