#!/usr/bin/env bash
# Builds the integration test binaries (debug) and prints their paths, one
# per line: what ci/test.sh runs unprivileged and ci/kernels.sh runs in
# each guest.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --tests --no-run --message-format=json 2>/dev/null | python3 ci/cargo-executables.py --tests
