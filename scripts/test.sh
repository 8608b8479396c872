#!/usr/bin/env bash
# Runs every test of masq: unit, core, control-language and end-to-end lab tests.
# The end-to-end tests build network namespaces and need root; without root they are
# skipped (and say so). Usage: sudo scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
    scripts/install-deps.sh
else
    echo "test.sh: not root: the end-to-end lab tests will be skipped" >&2
fi
# The end-to-end tests drive the real binaries; build them first.
cargo build --workspace --bins
cargo test --workspace -- --test-threads=2
