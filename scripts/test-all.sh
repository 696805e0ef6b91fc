#!/usr/bin/env bash
# Runs tunfilter's whole test suite on a Debian machine, as root.
# Installs what the tests need first (Debian packages, Python packages).
# Network-namespace and TUN tests need root; under CI=true they fail loudly
# instead of skipping when something is missing.
# Fuzzing is not run here (nightly, and CPU time CI does not have): the suite replays the
# committed fuzz inputs (tests/tests/fuzz_replay.rs); run `scripts/fuzz.sh [seconds]` to
# fuzz every target (see FUZZING.md).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for pair in tshark:tshark ip:iproute2 socat:socat curl:curl ping:iputils-ping \
            tracepath:iputils-tracepath traceroute:traceroute dumpcap:tshark \
            python3:python3 iptables-restore:iptables ip6tables-restore:iptables \
            vsftpd:vsftpd lftp:lftp in.tftpd:tftpd-hpa tftp:tftp-hpa talk:talk \
            in.ntalkd:talkd inetd:openbsd-inetd tmux:tmux; do
    cmd=${pair%%:*}; pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
# The helper tests' second FTP server; Debian's package serves /usr/bin/python3, which the
# tests fall back to when the first python3 on PATH lacks it.
python3 -c 'import pyftpdlib' 2>/dev/null || /usr/bin/python3 -c 'import pyftpdlib' 2>/dev/null \
    || need_pkgs+=(python3-pyftpdlib)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "installing: ${need_pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# Python packages: scapy (with cryptography for its AES-GCM) is the independent ESP peer of
# ipsec-hooks/tests/scapy.rs.
if ! python3 -c 'import scapy.layers.ipsec, cryptography' 2>/dev/null; then
    echo "installing: scapy cryptography (pip)"
    python3 -m pip install -q scapy cryptography \
        || python3 -m pip install -q --break-system-packages scapy cryptography
fi
# The H.323 differential test reads messages pycrate (an independent ASN.1 PER codec) encodes.
if ! python3 -c 'import pycrate_asn1dir.H225' >/dev/null 2>&1; then
    echo "installing: pycrate (pip)"
    python3 -m pip install --quiet pycrate 2>/dev/null \
        || python3 -m pip install --quiet --break-system-packages pycrate
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
if command -v cargo-nextest >/dev/null 2>&1; then
    # Live tests create namespaces and devices: two at a time is plenty on 2 cores.
    cargo nextest run --workspace --no-fail-fast --test-threads 2
    cargo test --workspace --doc --quiet
else
    cargo test --workspace --no-fail-fast -- --test-threads 2
fi
