#!/usr/bin/env bash
# The toy2d zoo (issue 4): every loss and trick on the ring of 8 with seed 0 and the same steps;
# prints the table and updates docs/results.md. Arguments go to scripts/zoo.py (e.g. --steps 300).
set -euo pipefail
exec python "$(dirname "$0")/zoo.py" toy2d "$@"
