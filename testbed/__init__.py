"""Test bed for reconciler: locally built images and throwaway Debian test hosts.

Not installed; tests import it through pytest's ``pythonpath = ["."]``. Imports run one way:
``util`` <- ``images`` <- ``hosts`` <- ``wheelhouse``/``servqr`` <- ``demo``.
See README.md ("Test bed") and the modules:

* :mod:`testbed.images`     -- build/cache the host, busybox and postgres images
* :mod:`testbed.hosts`      -- ``start_host``/``start_hosts``/``TestHost``/``HostFactory``
* :mod:`testbed.wheelhouse` -- ``install_reconciler(host)``, offline
* :mod:`testbed.engine`     -- ``ensure_docker()``
* :mod:`testbed.demo`       -- ``python -m testbed.demo`` (scripts/demo.sh)
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy re-exports: `python -m testbed.images` must not import the package's other modules first.
_EXPORTS = {
    "ensure_docker": "testbed.engine",
    "HostFactory": "testbed.hosts",
    "TestHost": "testbed.hosts",
    "install_reconciler": "testbed.wheelhouse",
    "session_id": "testbed.hosts",
    "start_host": "testbed.hosts",
    "start_hosts": "testbed.hosts",
    "Images": "testbed.images",
    "ensure_image": "testbed.images",
    "ensure_images": "testbed.images",
    "TestbedError": "testbed.util",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'testbed' has no attribute {name!r}")
