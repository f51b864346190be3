#!/usr/bin/env bash
# `make run`: the embedded stack on one machine. SQLite (WAL) and kombu's filesystem broker
# under $FLYWHEEL_DATA_DIR (./var by default), a Celery worker in the background and Django's
# development server in the foreground. Ctrl-C stops both.
#
# Environment: PORT (8000), HOST (127.0.0.1), FLYWHEEL_DATA_DIR (./var), WORKER_CONCURRENCY (4),
# and every setting in the README's configuration table.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PORT="${PORT:-8000}"
HOST="${HOST:-127.0.0.1}"
WORKER_CONCURRENCY="${WORKER_CONCURRENCY:-4}"
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-config.settings.local}"
export FLYWHEEL_DATA_DIR="${FLYWHEEL_DATA_DIR:-$PWD/var}"
export PYTHONUNBUFFERED=1
PY="$VENV/bin/python"
LOG_DIR="$FLYWHEEL_DATA_DIR/logs"
mkdir -p "$LOG_DIR"

if [ ! -x "$PY" ]; then
    echo "No virtualenv at $VENV; run 'make run' (it creates one)." >&2
    exit 1
fi

echo "==> Migrating the database"
"$PY" manage.py migrate --noinput -v 0
# Only when our static files or the installed packages changed since the last collection.
STATIC_STAMP="$FLYWHEEL_DATA_DIR/.collectstatic-done"
if [ ! -f "$STATIC_STAMP" ] || [ -n "$(find static templates "$VENV/.flywheel-installed" \
        -newer "$STATIC_STAMP" -print -quit 2>/dev/null)" ]; then
    echo "==> Collecting static files"
    "$PY" manage.py collectstatic --noinput -v 0
    touch "$STATIC_STAMP"
fi
echo "==> Demo project and logins"
"$PY" manage.py demo_setup

WORKER_PID=""
SERVER_PID=""
# shellcheck disable=SC2317  # called through the traps below
stop() {
    trap - EXIT INT TERM
    if [ -n "$SERVER_PID" ]; then kill -TERM "$SERVER_PID" 2>/dev/null || true; fi
    if [ -n "$WORKER_PID" ] && kill -0 "$WORKER_PID" 2>/dev/null; then
        echo "==> Stopping the Celery worker (pid $WORKER_PID)"
        kill -TERM "$WORKER_PID" 2>/dev/null || true
        # Warm shutdown lets running tasks finish; after 30 s the worker is killed, and an
        # unfinished job keeps its committed progress (its cursor) for the next run.
        for _ in $(seq 30); do kill -0 "$WORKER_PID" 2>/dev/null || break; sleep 1; done
        kill -KILL "$WORKER_PID" 2>/dev/null || true
    fi
    wait 2>/dev/null || true
}
trap stop EXIT
trap 'echo; exit 130' INT
trap 'exit 143' TERM

# Threads, not prefork: one process keeps memory low on a laptop, and an import is not stuck
# behind a long training task. -B runs the periodic scheduler inside this worker.
echo "==> Starting the Celery worker (log: $LOG_DIR/worker.log)"
QUEUES="$(printf '%s\n' "${QUEUE_DEFAULT:-default}" "${QUEUE_IMPORT:-default}" \
    "${QUEUE_TRAIN:-train}" "${QUEUE_LLM:-llm}" "${QUEUE_EMBED:-embed}" | awk '!seen[$0]++' | paste -sd, -)"
"$VENV/bin/celery" -A config worker \
    -Q "$QUEUES" \
    --pool=threads --concurrency="$WORKER_CONCURRENCY" \
    -B -s "$FLYWHEEL_DATA_DIR/celerybeat-schedule" \
    -l info >>"$LOG_DIR/worker.log" 2>&1 &
WORKER_PID=$!

cat <<EOF

  Flywheel is running at  http://$HOST:$PORT/
  Admin:                  http://$HOST:$PORT/admin/
  API docs:               http://$HOST:$PORT/api/docs/
  Data:                   $FLYWHEEL_DATA_DIR
  Worker log:             tail -f $LOG_DIR/worker.log
  Logins are listed above. Press Ctrl-C to stop.

EOF

# --noreload: one process, so stopping it frees the port (the reloader's child would linger).
"$PY" manage.py runserver --noreload "$HOST:$PORT" &
SERVER_PID=$!
# Return when either process ends (or at once on Ctrl-C, through the traps above).
status=0
if ((BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1))); then
    wait -n "$SERVER_PID" "$WORKER_PID" || status=$?
else
    wait "$SERVER_PID" || status=$?  # bash < 5.1 (macOS): wait for the server only
fi
if ! kill -0 "$WORKER_PID" 2>/dev/null; then
    echo "The Celery worker stopped; see $LOG_DIR/worker.log" >&2
    exit 1
fi
exit "$status"
