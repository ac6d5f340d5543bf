"""The ``reconcile`` executable's entry point (and ``python -m reconciler``).

``reconcile --version`` is answered before anything else is imported, so it takes
no longer than the interpreter's own start; every other command goes to
``reconciler.cli.main``.
"""

import sys


def main() -> int:
    if sys.argv[1:] == ["--version"]:
        from reconciler import __version__

        print(f"reconcile {__version__}")
        return 0
    from reconciler.cli import main as cli_main

    return cli_main()
