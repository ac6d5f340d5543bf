"""reconciler: declarative host reconciler and GitOps controller."""

__version__ = "0.1.0"
