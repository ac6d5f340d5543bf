"""apt repositories as deb822 .sources files (the ``apt_repositories`` kind)."""

from .provider import AptRepositoriesProvider, AptRepository

__all__ = ["AptRepositoriesProvider", "AptRepository"]
