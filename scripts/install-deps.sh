#!/usr/bin/env bash
# Installs the Debian packages masq's lab and tests use. Needs root; safe to run again.
set -euo pipefail

packages=(iproute2 nftables curl tcpdump iperf3 ethtool procps tshark python3-prometheus-client chromium hping3 python3-scapy
    # The package, the unit, the manual pages and the completions (tests/package.rs,
    # tests/man_and_completions.rs, tests/service.rs).
    dpkg-dev binutils lintian systemd man-db groff-base adduser util-linux fish zsh)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps.sh: run as root (sudo $0)" >&2
    exit 1
fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
