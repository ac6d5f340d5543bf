"""Files from inline content or templates, written atomically."""

from .provider import FilesProvider

__all__ = ["FilesProvider"]
