#!/usr/bin/env bash
# masq's main job in one command: install what is needed, build, bring up the classic
# LVS-NAT lab in network namespaces, walk through the seed demo, and tear it down.
# Usage: sudo scripts/quickstart.sh   (MASQ_LAB_KEEP=1 leaves the lab up afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --workspace --bins
export MASQ_BIN_DIR="$PWD/target/release"
if [ "${MASQ_LAB_KEEP:-0}" != 1 ]; then
    trap 'scripts/lab.sh down' EXIT
fi
scripts/lab.sh up
scripts/lab.sh demo
