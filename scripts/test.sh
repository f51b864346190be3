#!/usr/bin/env bash
# `make test`: the test suite, then the linter. Without DATABASE_URL the tests use SQLite and
# the tests marked `postgres` are skipped (pytest lists them with the reason); .ci/run sets
# DATABASE_URL and CELERY_BROKER_URL to the machine's PostgreSQL and Redis.
set -uo pipefail
cd "$(dirname "$0")/.." || exit
VENV="${VENV:-.venv}"
DATABASE_URL="${DATABASE_URL:-sqlite}"
CELERY_BROKER_URL="${CELERY_BROKER_URL:-filesystem}"

echo "==> pytest (database: ${DATABASE_URL%%:*}, broker: ${CELERY_BROKER_URL%%:*})"
"$VENV/bin/pytest" "$@"
status=$?
echo "==> ruff check"
"$VENV/bin/ruff" check . || { [ "$status" -ne 0 ] || status=1; }
[ -n "${FLYWHEEL_TEST_STATUS_FILE:-}" ] && echo "$status" >"$FLYWHEEL_TEST_STATUS_FILE"
exit "$status"
