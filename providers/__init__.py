"""The built-in kinds, one package each, installed as ``reconciler_providers``.

Each package holds its kind's model, rendering, host side and provider, and exports
the provider class that ``pyproject.toml`` registers under the ``reconciler.providers``
entry-point group. Inside this folder imports are relative, so the code does not
depend on the name it is installed under. ``common`` holds helpers the kinds share.
"""
