#!/usr/bin/env bash
# Helpers for scripts that run tunfilter between network namespaces.
# Source it: `. "$(dirname "$0")/netns-lib.sh"`. Everything created through these helpers is
# recorded and removed by `tf_cleanup`, which `tf_init` installs as an EXIT/INT/TERM trap, so a
# failing or interrupted script leaves no namespace, process or file behind.
#
# Only documentation prefixes are used (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
# 2001:db8::/32), and only inside namespaces these helpers create.

TF_NAMESPACES=()
TF_PIDS=()
TF_TMPDIRS=()

tf_log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
tf_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

tf_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid ns d
    # Processes first (tunfilter removes its devices on SIGTERM), newest first.
    for ((i = ${#TF_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${TF_PIDS[i]}
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    for ns in "${TF_NAMESPACES[@]}"; do
        # Processes still inside the namespace (servers started with `ip netns exec`).
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    for d in "${TF_TMPDIRS[@]}"; do rm -rf -- "$d"; done
    exit "$rc"
}

tf_init() {
    trap tf_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

tf_require_root() {
    [ "$(id -u)" = 0 ] || tf_die "run as root (creates network namespaces and TUN/TAP devices)"
    [ -c /dev/net/tun ] || tf_die "/dev/net/tun is missing (modprobe tun)"
}

# tf_netns NAME: creates a namespace (fails if it exists: never reuse someone else's).
tf_netns() {
    ip netns add "$1" || tf_die "cannot create namespace $1 (left over from an earlier run? ip netns del $1)"
    TF_NAMESPACES+=("$1")
    ip -n "$1" link set lo up
}

# tf_tmpdir VAR: a temporary folder removed at exit, stored in VAR. Readable by all, and so
# are the files written after it: tunfilter reads its rule files as `nobody` once it has
# dropped its privileges (mktemp makes the folder 0700).
tf_tmpdir() {
    local d
    d=$(mktemp -d /tmp/tunfilter.XXXXXX)
    chmod 0755 "$d"
    umask 022
    TF_TMPDIRS+=("$d")
    printf -v "$1" '%s' "$d"
}

# tf_bg CMD...: runs CMD in the background, killed at exit; its pid is in TF_LAST_PID.
tf_bg() {
    "$@" &
    TF_LAST_PID=$!
    TF_PIDS+=("$TF_LAST_PID")
}

# tf_wait_for SECONDS CMD...: retries CMD until it succeeds or SECONDS pass.
tf_wait_for() {
    local secs=$1; shift
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.1
    done
}

# tf_wait_link NS DEV SECONDS: waits until DEV exists and is up in NS (tunfilter configured it).
tf_wait_link() {
    tf_wait_for "$3" sh -c "ip -n '$1' -o link show dev '$2' | grep -q ',UP'"
}
