"""Test bed for reconciler: local Docker images and throwaway Debian test hosts."""
