#!/usr/bin/env bash
# Try the action locally: installs what it needs when missing (as the test command does), builds
# examples/offline with Nix, pushes it to a Distribution registry started for the run, checks it with skopeo.
set -euo pipefail
cd "$(dirname "$0")/.."
NIA_SETUP_ONLY=1 bash scripts/test.sh
exec node scripts/run-ts.mjs scripts/try.ts
