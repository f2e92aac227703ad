#!/usr/bin/env bash
# The whole test suite on a fresh machine (Debian, Node, npm, root or sudo): installs what the tests
# need when it is missing (scripts/test-packages.txt), checks that dist/ matches the sources, type-checks,
# and runs every test. What libraries print to stdout during a test goes to <tmp>/nia-test-logs/<file>.log,
# which a failing test names (__tests__/support/tmp.ts).
set -euo pipefail
cd "$(dirname "$0")/.."

# scripts/test-packages.txt: one '<command> <Debian package>' a line; the package of every command missing.
need=()
while read -r cmd pkg _; do
  case "$cmd" in '' | '#'*) continue ;; esac
  command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done <scripts/test-packages.txt
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Nix builds as the nixbld users, as on a runner's multi-user install; a machine whose nix-bin came
# without them (no postinst run) gets them here, or every build fails on 'build-users-group'.
if ! getent group nixbld >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo groupadd --system nixbld
  for i in 1 2 3 4 5 6 7 8; do
    $sudo useradd --system --no-create-home --home-dir /var/empty --shell /usr/sbin/nologin -g nixbld -G nixbld "nixbld$i"
  done
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

[ "${NIA_SETUP_ONLY:-}" = 1 ] && exit 0

# dist/ is what runners execute: it must be exactly what the sources bundle to.
npm run -s build
if ! git diff --quiet -- dist 2>/dev/null || [ -n "$(git ls-files --others --exclude-standard -- dist 2>/dev/null)" ]; then
  echo "dist/ does not match the sources: run 'npm run build' and commit dist/" >&2
  git status --short -- dist >&2
  exit 1
fi

npm run -s typecheck

report="$(mktemp)"
trap 'rm -f "$report"' EXIT # the JSON report is read below, then goes
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const skipped = r.numPendingTests + (r.numTodoTests || 0);
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" || true
exit $status
