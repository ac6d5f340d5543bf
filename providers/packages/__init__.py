"""Debian packages with apt (the ``packages`` kind); ``apt`` holds the host commands
and parsers, shared with the ``apt_repositories`` kind."""

from .provider import Package, PackagesProvider

__all__ = ["Package", "PackagesProvider"]
