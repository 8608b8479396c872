#!/usr/bin/env bash
# Runs every test of masq: unit, core, control-language and end-to-end lab tests.
#
# The end-to-end tests build network namespaces, so they need root: they are #[ignore]d
# (a plain `cargo test` lists them as ignored) and run here, as root, with
# --include-ignored. Without root only the other tests run, and this says so at the start
# and at the end. Under CI=true not being root fails the run; as root, a tool the tests
# need that is still missing after scripts/install-deps.sh always does.
# Usage: sudo scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# What the end-to-end tests run, from the packages scripts/install-deps.sh installs.
programs=(ip nft curl tcpdump iperf3 ethtool sysctl tshark chromium hping3
    dpkg-deb dpkg-shlibdeps strip lintian systemd-analyze man groff setpriv unshare nsenter fish zsh)
# Debian's python3, which the tests run by its path, whatever python3 is first on PATH.
python_modules=(scapy prometheus_client)

not_run="the end-to-end tests (network namespaces, root) were NOT run: cargo lists them as ignored; run sudo scripts/test.sh for all of them"

if [ "$(id -u)" -ne 0 ]; then
    if [ "${CI:-}" = true ]; then
        echo "test.sh: not root: CI must run the end-to-end tests, which need root (network namespaces)" >&2
        exit 1
    fi
    echo "test.sh: not root: $not_run" >&2
    status=0
    cargo test --workspace -- --test-threads=2 || status=$?
    echo "test.sh: not root: $not_run" >&2
    exit "$status"
fi

scripts/install-deps.sh
missing=()
for p in "${programs[@]}"; do
    command -v "$p" >/dev/null 2>&1 || missing+=("$p")
done
for m in "${python_modules[@]}"; do
    /usr/bin/python3 -c "import $m" >/dev/null 2>&1 || missing+=("/usr/bin/python3's $m")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: still missing after scripts/install-deps.sh: ${missing[*]}" >&2
    exit 1
fi
# The end-to-end tests drive the real binaries; build them first.
cargo build --workspace --bins
# --no-fail-fast: one failing test target must not hide the others' results.
cargo test --workspace --no-fail-fast -- --include-ignored --test-threads=2
