#!/usr/bin/env bash
# The README's main job: set up, start a throwaway test host, and run reconcile
# against it (see testbed/demo.py). The host is removed at the end, also on Ctrl-C.
# Extra arguments go to the demo (e.g. --keep to leave the host running).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

bash scripts/setup.sh
exec .venv/bin/python -m testbed.demo "$@"
