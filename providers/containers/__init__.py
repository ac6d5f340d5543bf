"""Docker containers over the host's own engine.

Modules: ``model`` (the spec), ``state`` (desired and observed state as data),
``docker_calls`` (the Docker API calls), ``provider`` (the provider)."""

from .provider import ContainersProvider

__all__ = ["ContainersProvider"]
