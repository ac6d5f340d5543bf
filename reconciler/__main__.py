"""``python -m reconciler`` is ``reconcile``."""

import sys

from reconciler.launch import main

sys.exit(main())
