#!/usr/bin/env bash
# Live gateway throughput: tunfilter against the device's ceiling and against Linux, in one run.
#
# Three forwarders move traffic from a "lan" namespace (192.0.2.2, 2001:db8:1::2) to a "wan"
# namespace (198.51.100.2, 2001:db8:2::2):
#   bare     router/examples/tun_copy.rs: two TUN devices, set up by tunfilter's own device code,
#            packets copied between them with the driver's poll + batch-read model and no
#            processing (the ceiling of the TUN I/O path).
#   tunfilter  the same two TUN devices, with conntrack + MASQUERADE on the WAN side (v4 and v6)
#            and a generated 100-rule FORWARD chain: ESTABLISHED first, the rule that accepts a new
#            LAN->WAN flow at position 99.
#   tunfilter-offload  the same, with `offload = true` on both TUNs (IFF_VNET_HDR: the
#            endpoints' kernels hand over TCP super-packets of up to 64 KiB with partial checksums).
#   tunfilter-1w  `tunfilter` with one worker (one shard, one queue per device), whatever WORKERS
#            says: beside `tunfilter` with PARALLEL > 1 it shows how the shards scale.
#   linux    kernel forwarding in a router namespace between two veth pairs, nftables conntrack
#            + masquerade (the kernel path with GRO/GSO offloads).
# For each: iperf3 TCP over IPv4 and IPv6 (one flow, or PARALLEL), and UDP with 64-byte payloads at full
# speed (packets received by the server per second). Each measurement runs REPS times,
# interleaved across forwarders so that background load hits all of them alike; the table
# shows medians and the ratio to the bare loop.
#
# Run as root: sudo scripts/bench-live.sh. Environment: DURATION (seconds per iperf3 run,
# default 10), REPS (default 3), WORKERS (tunfilter/tun_copy workers, default: one per core),
# FORWARDERS (default "bare tunfilter tunfilter-offload linux"), TESTS (default "tcp4 tcp6 udp4"),
# PARALLEL (iperf3 -P: flows per test, default 1; more flows spread over the workers' shards),
# TUNFILTER / TUN_COPY (prebuilt binaries instead of a release build).
# Namespaces tfbl-*, devices tfbl-*; everything is removed on exit, also on failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/netns-lib.sh
. "$ROOT/scripts/netns-lib.sh"

DURATION=${DURATION:-10}
REPS=${REPS:-3}
WORKERS=${WORKERS:-0}

tf_require_root
tf_init

need=()
for pair in ip:iproute2 iperf3:iperf3 nft:nftables jq:jq; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    tf_log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${TUNFILTER:-}" ] || [ -z "${TUN_COPY:-}" ]; then
    command -v cargo >/dev/null || tf_die "cargo is needed to build the binaries"
    tf_log "building tunfilter and the tun_copy example (release)"
    cargo build --release -p router --quiet --bin tunfilter --example tun_copy
fi
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/release"
TF=${TUNFILTER:-$OUT/tunfilter}
COPY=${TUN_COPY:-$OUT/examples/tun_copy}
[ -x "$TF" ] && [ -x "$COPY" ] || tf_die "binaries not found ($TF, $COPY)"

LAN=tfbl-lan WAN=tfbl-wan          # TUN forwarders (bare loop, tunfilter)
KLAN=tfbl-klan KRTR=tfbl-krtr KWAN=tfbl-kwan # Linux forwarding
LANDEV=tfbl-lan0 WANDEV=tfbl-wan0
for ns in $LAN $WAN $KLAN $KRTR $KWAN; do
    ! ip netns list | grep -qw "$ns" || tf_die "namespace $ns exists (left over? ip netns del $ns)"
done
tf_tmpdir DIR
SOCK=$DIR/tunfilter.sock

# ---- configuration shared by the bare loop and tunfilter -------------------------------------
cat >"$DIR/gateway.toml" <<EOF
[[interface]]
name = "$LANDEV"
kind = "tun"
mtu = 1500
addresses = ["192.0.2.1/24", "2001:db8:1::1/64"]
netns = "$LAN"
peer_addresses = ["192.0.2.2/24", "2001:db8:1::2/64"]
peer_routes = ["default"]

[[interface]]
name = "$WANDEV"
kind = "tun"
mtu = 1500
addresses = ["198.51.100.1/24", "2001:db8:2::1/64"]
netns = "$WAN"
peer_addresses = ["198.51.100.2/24", "2001:db8:2::2/64"]
peer_routes = ["default"]

[rules]
ipv4 = "bench.rules"
ipv6 = "bench6.rules"

[conntrack]
max = 262144
EOF

# The 100-rule FORWARD chain: rule 1 accepts ESTABLISHED/RELATED, rule 2 drops INVALID, rules
# 3..98 are plausible rules that never match the benchmark traffic (blocked sources, closed
# ports, other interfaces), rule 99 accepts new LAN->WAN flows, rule 100 lets WAN pings in.
# $1: 4 or 6.
forward_rules() {
    local v=$1 i
    echo "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    echo "-A FORWARD -m conntrack --ctstate INVALID -j DROP"
    for i in $(seq 3 98); do
        case $((i % 4)) in
            0) if [ "$v" = 4 ]; then echo "-A FORWARD -s 203.0.113.$i/32 -j DROP"
               else echo "-A FORWARD -s 2001:db8:ff::$i/128 -j DROP"; fi ;;
            1) echo "-A FORWARD -i $LANDEV -o $WANDEV -p tcp -m tcp --dport $((20000 + i)) -j DROP" ;;
            2) echo "-A FORWARD -i $LANDEV -o $WANDEV -p udp -m udp --dport $((30000 + i)) -j DROP" ;;
            3) if [ "$v" = 4 ]; then echo "-A FORWARD -d 203.0.113.$i/32 -p tcp -m tcp --dport 443 -j REJECT --reject-with icmp-port-unreachable"
               else echo "-A FORWARD -d 2001:db8:ff::$i/128 -p tcp -m tcp --dport 443 -j REJECT --reject-with icmp6-port-unreachable"; fi ;;
        esac
    done
    echo "-A FORWARD -i $LANDEV -o $WANDEV -m conntrack --ctstate NEW -j ACCEPT"
    if [ "$v" = 4 ]; then echo "-A FORWARD -i $WANDEV -p icmp -m icmp --icmp-type 8 -j ACCEPT"
    else echo "-A FORWARD -i $WANDEV -p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT"; fi
}
for v in 4 6; do
    f=$DIR/bench.rules
    [ "$v" = 6 ] && f=$DIR/bench6.rules
    {
        echo "*nat"
        echo ":PREROUTING ACCEPT [0:0]"
        echo ":INPUT ACCEPT [0:0]"
        echo ":OUTPUT ACCEPT [0:0]"
        echo ":POSTROUTING ACCEPT [0:0]"
        echo "-A POSTROUTING -o $WANDEV -j MASQUERADE"
        echo "COMMIT"
        echo "*filter"
        echo ":INPUT ACCEPT [0:0]"
        echo ":FORWARD DROP [0:0]"
        echo ":OUTPUT ACCEPT [0:0]"
        forward_rules "$v"
        echo "COMMIT"
    } >"$f"
done
[ "$(grep -c '^-A FORWARD' "$DIR/bench.rules")" = 100 ] || tf_die "generated IPv4 ruleset is not 100 rules"
[ "$(grep -c '^-A FORWARD' "$DIR/bench6.rules")" = 100 ] || tf_die "generated IPv6 ruleset is not 100 rules"
"$TF" check --config "$DIR/gateway.toml" >/dev/null || tf_die "tunfilter refuses the benchmark config"
sed 's/^peer_routes = \["default"\]$/peer_routes = ["default"]\noffload = true/' "$DIR/gateway.toml" >"$DIR/gateway-offload.toml"
[ "$(grep -c '^offload = true' "$DIR/gateway-offload.toml")" = 2 ] || tf_die "offload config not generated"
"$TF" check --config "$DIR/gateway-offload.toml" >/dev/null || tf_die "tunfilter refuses the offload config"

# ---- namespaces ---------------------------------------------------------------------------------
tf_log "creating namespaces"
tf_netns "$LAN"
tf_netns "$WAN"
tf_netns "$KLAN"
tf_netns "$KRTR"
tf_netns "$KWAN"

# Linux: klan --veth-- krtr --veth-- kwan, same addresses as the TUN setup.
ip link add tfbl-kl0 netns "$KLAN" type veth peer name tfbl-kl1 netns "$KRTR"
ip link add tfbl-kw0 netns "$KWAN" type veth peer name tfbl-kw1 netns "$KRTR"
ip -n "$KLAN" addr add 192.0.2.2/24 dev tfbl-kl0
ip -n "$KLAN" addr add 2001:db8:1::2/64 dev tfbl-kl0 nodad
ip -n "$KRTR" addr add 192.0.2.1/24 dev tfbl-kl1
ip -n "$KRTR" addr add 2001:db8:1::1/64 dev tfbl-kl1 nodad
ip -n "$KRTR" addr add 198.51.100.1/24 dev tfbl-kw1
ip -n "$KRTR" addr add 2001:db8:2::1/64 dev tfbl-kw1 nodad
ip -n "$KWAN" addr add 198.51.100.2/24 dev tfbl-kw0
ip -n "$KWAN" addr add 2001:db8:2::2/64 dev tfbl-kw0 nodad
for l in "$KLAN tfbl-kl0" "$KRTR tfbl-kl1" "$KRTR tfbl-kw1" "$KWAN tfbl-kw0"; do
    set -- $l
    ip -n "$1" link set "$2" up
done
ip -n "$KLAN" route add default via 192.0.2.1
ip -n "$KLAN" -6 route add default via 2001:db8:1::1
ip -n "$KWAN" route add default via 198.51.100.1
ip -n "$KWAN" -6 route add default via 2001:db8:2::1
ip netns exec "$KRTR" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip netns exec "$KRTR" nft -f - <<EOF
table inet tfbl {
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ct state invalid drop
        iifname "tfbl-kl1" oifname "tfbl-kw1" ct state new accept
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "tfbl-kw1" masquerade
    }
}
EOF

# ---- forwarders ----------------------------------------------------------------------------------
FWD_PID=
start_forwarder() { # bare | tunfilter | tunfilter-offload | tunfilter-1w | linux
    FWD_PID=
    case $1 in
        bare)
            tf_bg "$COPY" --config "$DIR/gateway.toml" --workers "$WORKERS" 2>>"$DIR/copy.log"
            FWD_PID=$TF_LAST_PID ;;
        tunfilter)
            rm -f "$SOCK"
            RUST_LOG=warn tf_bg "$TF" run --config "$DIR/gateway.toml" --socket "$SOCK" --workers "$WORKERS" 2>>"$DIR/tunfilter.log"
            FWD_PID=$TF_LAST_PID ;;
        tunfilter-offload)
            rm -f "$SOCK"
            RUST_LOG=warn tf_bg "$TF" run --config "$DIR/gateway-offload.toml" --socket "$SOCK" --workers "$WORKERS" 2>>"$DIR/tunfilter.log"
            FWD_PID=$TF_LAST_PID ;;
        tunfilter-1w)
            rm -f "$SOCK"
            RUST_LOG=warn tf_bg "$TF" run --config "$DIR/gateway.toml" --socket "$SOCK" --workers 1 2>>"$DIR/tunfilter.log"
            FWD_PID=$TF_LAST_PID ;;
        linux) return 0 ;;
    esac
    tf_wait_link "$LAN" "$LANDEV" 10 || tf_die "$1: $LANDEV did not come up"
    tf_wait_link "$WAN" "$WANDEV" 10 || tf_die "$1: $WANDEV did not come up"
    tf_wait_for 5 ip netns exec "$LAN" ping -c 1 -W 1 198.51.100.2 || tf_die "$1: no IPv4 path"
    tf_wait_for 5 ip netns exec "$LAN" ping -c 1 -W 1 2001:db8:2::2 || tf_die "$1: no IPv6 path"
}
stop_forwarder() {
    [ -n "$FWD_PID" ] || return 0
    kill -TERM "$FWD_PID" 2>/dev/null || true
    wait "$FWD_PID" 2>/dev/null || true
    # The devices disappear with the process; wait for it so the next forwarder can create them.
    tf_wait_for 10 sh -c "! ip -n $LAN link show $LANDEV" || tf_die "$LANDEV not removed"
    FWD_PID=
}

# ---- measurements --------------------------------------------------------------------------------
# measure FWD TEST: prints one number (TCP: bit/s received; UDP: packets/s received by the server).
measure() {
    local fwd=$1 test=$2 cns sns dst json
    if [ "$fwd" = linux ]; then cns=$KLAN sns=$KWAN; else cns=$LAN sns=$WAN; fi
    case $test in
        tcp4 | udp4) dst=198.51.100.2 ;;
        tcp6) dst=2001:db8:2::2 ;;
    esac
    ip netns exec "$sns" iperf3 -s -1 -B "$dst" >/dev/null 2>&1 &
    local spid=$!
    tf_wait_for 5 sh -c "ip netns exec $sns ss -ltn | grep -q ':5201'" || tf_die "iperf3 server did not start"
    case $test in
        tcp*) json=$(ip netns exec "$cns" iperf3 -c "$dst" -t "$DURATION" -P "${PARALLEL:-1}" -J) ;;
        udp4) json=$(ip netns exec "$cns" iperf3 -c "$dst" -t "$DURATION" -P "${PARALLEL:-1}" -u -l 64 -b 0 -J) ;;
    esac
    wait "$spid" 2>/dev/null || true
    case $test in
        tcp*) jq -r '.end.sum_received.bits_per_second' <<<"$json" ;;
        # sum_received is the server's report: datagrams it got (highest sequence - gaps).
        udp4) jq -r '(.end.sum_received.packets - .end.sum_received.lost_packets) / .end.sum_received.seconds' <<<"$json" ;;
    esac
}

# FORWARDERS / TESTS narrow a run (e.g. for profiling); the bare loop is the reference for ratios.
read -r -a FWDS <<<"${FORWARDERS:-bare tunfilter tunfilter-offload linux}"
read -r -a TESTS <<<"${TESTS:-tcp4 tcp6 udp4}"
declare -A RES
for rep in $(seq "$REPS"); do
    for fwd in "${FWDS[@]}"; do
        tf_log "run $rep/$REPS: $fwd"
        start_forwarder "$fwd"
        for t in "${TESTS[@]}"; do
            v=$(measure "$fwd" "$t")
            RES[$fwd,$t]="${RES[$fwd,$t]:-} $v"
            printf '   %-5s %s\n' "$t" "$v" >&2
        done
        stop_forwarder
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
spread() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.0f%%", (hi - lo) * 100 / (hi ? hi : 1)}'; }
fmt() { # test value
    case $1 in
        tcp*) awk -v x="$2" 'BEGIN {printf "%.2f Gbit/s", x / 1e9}' ;;
        udp*) awk -v x="$2" 'BEGIN {printf "%.0f kpps", x / 1e3}' ;;
    esac
}
echo
echo "live gateway throughput, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, ${DURATION}s per run, median of $REPS, workers=$WORKERS (0: one per core), ${PARALLEL:-1} flow(s) per test"
printf '%-18s' ""
for t in "${TESTS[@]}"; do printf ' | %-30s' "$t"; done
echo
for fwd in "${FWDS[@]}"; do
    printf '%-18s' "$fwd"
    for t in "${TESTS[@]}"; do
        m=$(median <<<"${RES[$fwd,$t]}")
        b=$(median <<<"${RES[bare,$t]:-0}")
        r=$(awk -v m="$m" -v b="$b" 'BEGIN {printf "%.2f", b ? m / b : 0}')
        s=$(spread <<<"${RES[$fwd,$t]}")
        printf ' | %-30s' "$(fmt "$t" "$m") ${r}x (±$s)"
    done
    echo
done
echo "(ratio to the bare TUN copy loop; ± is the spread max-min of the $REPS runs relative to the max)"
echo "raw: $(for k in "${!RES[@]}"; do printf '%s=[%s ] ' "$k" "${RES[$k]}"; done)"
