#!/usr/bin/env bash
# Flood behaviour of the live gateway (issue 13, item 4): an established TCP transfer through
# tunfilter while spoofed packets flood it, and what that costs in throughput, memory and drops.
#
# Topology (as scripts/bench-live.sh): a "lan" namespace (192.0.2.2) and a "wan" namespace
# (198.51.100.2), each holding one of tunfilter's TUN devices. tunfilter masquerades LAN->WAN and
# forwards 198.51.100.1:8080 to 192.0.2.99:80, a LAN address that never answers, so every
# flooded SYN becomes a connection that waits in SYN_SENT and the table fills up (MAX).
#
# The transfer is an iperf3 download: the client in lan, the server in wan, -R, so its data
# enters tunfilter on the WAN device, the one the flood is written to. The floods
# (router/examples/flood.rs, written with AF_PACKET into the WAN namespace's TUN device):
#   syn   TCP SYNs from random hosts of 203.0.113.0/24 and random ports to 198.51.100.1:8080
#   frag  first fragments (more-fragments set, random IDs) of UDP datagrams from the same hosts
#   junk  malformed packets: bad version, short header, bad checksum, lying length, cut TCP
#   syn-raw  the SYN flood again, with a raw-table rule dropping its sources before conntrack:
#         what the flood costs when no connection is set up (reloaded for that phase only)
# Each round is, for each flood kind, a quiet phase then a flood phase of PHASE seconds; an
# iperf3 run (-i 1) covers each phase, the flood starts one second before it. RSS is sampled
# every second, and `tunfilter ct stats` (drops per reason, link counters) after every phase.
#
# Run as root: sudo scripts/flood.sh. Environment: PHASE (seconds, default 10), RATE (flood
# packets/s, default 50000), KINDS (default "syn syn-raw frag junk"), ROUNDS (default 1), WORKERS
# (tunfilter workers, default one per core), MAX (conntrack max, default 8192), NEW_FLOWS
# ([conntrack] new_flows_per_batch; default: tunfilter's, 0: no limit), TUNFILTER /
# FLOOD (prebuilt binaries instead of a release build), KEEP (a folder to copy the logs to).
# Namespaces tffl-*, devices tffl-*; everything is removed on exit, also on failure or Ctrl-C.
# Not part of any test run: it takes minutes and its figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/netns-lib.sh
. "$ROOT/scripts/netns-lib.sh"

PHASE=${PHASE:-10}
RATE=${RATE:-50000}
ROUNDS=${ROUNDS:-1}
WORKERS=${WORKERS:-0}
MAX=${MAX:-8192}
read -r -a KINDS <<<"${KINDS:-syn syn-raw frag junk}"

tf_require_root
tf_init

need=()
for pair in ip:iproute2 iperf3:iperf3 jq:jq; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    tf_log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "${TUNFILTER:-}" ] || [ -z "${FLOOD:-}" ]; then
    command -v cargo >/dev/null || tf_die "cargo is needed to build the binaries"
    tf_log "building tunfilter and the flood example (release)"
    cargo build --release -p router --quiet --bin tunfilter --example flood
fi
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/release"
TF=${TUNFILTER:-$OUT/tunfilter}
FL=${FLOOD:-$OUT/examples/flood}
[ -x "$TF" ] && [ -x "$FL" ] || tf_die "binaries not found ($TF, $FL)"

LAN=tffl-lan WAN=tffl-wan
LANDEV=tffl-lan0 WANDEV=tffl-wan0
for ns in $LAN $WAN; do
    ! ip netns list | grep -qw "$ns" || tf_die "namespace $ns exists (left over? ip netns del $ns)"
done
tf_tmpdir DIR
SOCK=$DIR/tunfilter.sock

cat >"$DIR/gateway.toml" <<EOF
[[interface]]
name = "$LANDEV"
kind = "tun"
mtu = 1500
addresses = ["192.0.2.1/24"]
netns = "$LAN"
peer_addresses = ["192.0.2.2/24"]
peer_routes = ["default"]

[[interface]]
name = "$WANDEV"
kind = "tun"
mtu = 1500
addresses = ["198.51.100.1/24"]
netns = "$WAN"
peer_addresses = ["198.51.100.2/24"]
peer_routes = ["default"]

[rules]
ipv4 = "flood.rules"

[conntrack]
max = $MAX
EOF
[ -z "${NEW_FLOWS:-}" ] || echo "new_flows_per_batch = $NEW_FLOWS" >>"$DIR/gateway.toml"
cat >"$DIR/flood.rules" <<EOF
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i $WANDEV -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.99:80
-A POSTROUTING -o $WANDEV -j MASQUERADE
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -i $LANDEV -o $WANDEV -j ACCEPT
-A FORWARD -i $WANDEV -o $LANDEV -d 192.0.2.99/32 -p tcp -m tcp --dport 80 -j ACCEPT
COMMIT
EOF
"$TF" check --config "$DIR/gateway.toml" >/dev/null || tf_die "tunfilter refuses the flood config"

tf_log "creating namespaces, starting tunfilter"
tf_netns "$LAN"
tf_netns "$WAN"
RUST_LOG=warn tf_bg "$TF" run --config "$DIR/gateway.toml" --socket "$SOCK" --workers "$WORKERS" 2>>"$DIR/tunfilter.log"
TF_PID=$TF_LAST_PID
tf_wait_link "$LAN" "$LANDEV" 10 || tf_die "$LANDEV did not come up"
tf_wait_link "$WAN" "$WANDEV" 10 || tf_die "$WANDEV did not come up"
tf_wait_for 5 ip netns exec "$LAN" ping -c 1 -W 1 198.51.100.2 || tf_die "no path through tunfilter"

ip netns exec "$WAN" iperf3 -s -B 198.51.100.2 >/dev/null 2>&1 &
TF_PIDS+=("$!")
tf_wait_for 5 sh -c "ip netns exec $WAN ss -ltn | grep -q ':5201'" || tf_die "iperf3 server did not start"

# RSS (kB) of tunfilter every second, with the phase running at the time.
echo start >"$DIR/phase"
(
    while kill -0 "$TF_PID" 2>/dev/null; do
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$TF_PID/status" 2>/dev/null || true)
        printf '%s %s %s\n' "$SECONDS" "$(cat "$DIR/phase")" "${rss:-0}"
        sleep 1
    done
) >"$DIR/rss.log" &
TF_PIDS+=("$!")

# tunfilter's counters, then the kernel's side of each TUN device: what the kernel sent into the
# device's queue, and what it dropped because tunfilter did not read the queue fast enough.
stats() {
    "$TF" ct --socket "$SOCK" stats
    local ns dev
    for ns in "$LAN $LANDEV" "$WAN $WANDEV"; do
        set -- $ns
        ip -n "$1" -s -j link show dev "$2" |
            jq -r --arg d "$2" '.[0].stats64.tx | "link kernel:\($d) tx_packets=\(.packets) tx_dropped=\(.dropped)"'
    done
}

# The reference: the same ruleset plus a raw-table rule that drops the flood's sources before
# conntrack (phase "syn-raw": the SYN flood's cost without any connection setup).
{
    echo "*raw"
    echo ":PREROUTING ACCEPT [0:0]"
    echo ":OUTPUT ACCEPT [0:0]"
    echo "-A PREROUTING -s 203.0.113.0/24 -j DROP"
    echo "COMMIT"
    cat "$DIR/flood.rules"
} >"$DIR/raw.rules"
cp "$DIR/flood.rules" "$DIR/plain.rules"
use_rules() { # plain | raw
    cp "$DIR/$1.rules" "$DIR/flood.rules"
    "$TF" reload --socket "$SOCK" >/dev/null || tf_die "reload failed"
}

# phase NAME KIND(-|syn|frag|junk) ROUND: one iperf3 run of PHASE seconds, under KIND's flood.
RESULTS=()
# CPU time tunfilter has used, in clock ticks (user + system, all threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$TF_PID/stat"; }
HZ=$(getconf CLK_TCK)
phase() {
    local name=$1 kind=$2 round=$3 fpid="" json bps worst fl="-" c0 c1 t0 cpu
    echo "$name" >"$DIR/phase"
    stats >"$DIR/before.txt"
    c0=$(cpu_ticks) t0=$(date +%s.%N)
    [ "$name" = syn-raw ] && use_rules raw
    if [ "$kind" != - ]; then
        ip netns exec "$WAN" "$FL" --iface "$WANDEV" --kind "$kind" --rate "$RATE" \
            --seconds $((PHASE + 2)) --dst 198.51.100.1 --dport 8080 --seed "$round" \
            >"$DIR/flood-$kind-$round.txt" &
        fpid=$!
        TF_PIDS+=("$fpid")
        sleep 1
    fi
    json=$(ip netns exec "$LAN" iperf3 -c 198.51.100.2 -R -t "$PHASE" -i 1 -J) || json='{}'
    if [ -n "$fpid" ]; then
        wait "$fpid" || true
        fl=$(cat "$DIR/flood-$kind-$round.txt")
    fi
    c1=$(cpu_ticks)
    # tunfilter's CPU over the phase, in % of one core.
    cpu=$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$(date +%s.%N)" -v hz="$HZ" \
        'BEGIN {printf "%.0f", (b - a) / hz / (t1 - t0) * 100}')
    stats >"$DIR/after.txt"
    [ "$name" = syn-raw ] && use_rules plain
    bps=$(jq -r '.end.sum_received.bits_per_second // 0' <<<"$json")
    worst=$(jq -r '[.intervals[]?.sum.bits_per_second] | min // 0' <<<"$json")
    RESULTS+=("$name $round $bps $worst $cpu")
    printf '   %-7s round %s: %8.1f Mbit/s (worst second %8.1f), tunfilter CPU %s%%, flood: %s\n' \
        "$name" "$round" "$(awk -v x="$bps" 'BEGIN {print x / 1e6}')" \
        "$(awk -v x="$worst" 'BEGIN {print x / 1e6}')" "$cpu" "$fl" >&2
    # Counter changes over the phase: drops per reason, conntrack summary, link counters.
    {
        echo "## $name round $round (flood: $fl)"
        diff_stats "$DIR/before.txt" "$DIR/after.txt"
    } >>"$DIR/counters.txt"
}

# The counters that changed between two `ct stats` outputs, as differences.
diff_stats() {
    awk '
        function kv(line, out,   n, i, f, p) {
            n = split(line, f, " ")
            for (i = 1; i <= n; i++) if ((p = index(f[i], "=")) > 0) out[substr(f[i], 1, p - 1)] = substr(f[i], p + 1)
        }
        { file = (FILENAME == ARGV[1]) ? 1 : 2 }
        /^drop reason=/ {
            r = $0; sub(/^drop reason="/, "", r); sub(/" count=.*/, "", r)
            c = $NF; sub(/count=/, "", c)
            if (file == 1) a["drop " r] = c; else { b["drop " r] = c; keys["drop " r] = 1 }
            next
        }
        /^(entries=|link )/ {
            split("", m); kv($0, m)
            pre = ($1 == "link") ? "link " $2 " " : ""
            for (k in m) if (m[k] ~ /^[0-9]+$/) {
                if (file == 1) a[pre k] = m[k]; else { b[pre k] = m[k]; keys[pre k] = 1 }
            }
        }
        END {
            for (k in keys) {
                d = b[k] - a[k]
                if (k ~ /(entries|max)$/) printf "  %-60s %s\n", k, b[k]
                else if (d != 0) printf "  %-60s +%d\n", k, d
            }
        }' "$1" "$2" | sort
}

tf_log "rounds: $ROUNDS x (quiet, flood) for ${KINDS[*]}, ${PHASE}s each, $RATE packets/s"
for round in $(seq "$ROUNDS"); do
    for kind in "${KINDS[@]}"; do
        phase quiet - "$round"
        case $kind in
            syn-raw) phase syn-raw syn "$round" ;;
            *) phase "$kind" "$kind" "$round" ;;
        esac
    done
done
echo end >"$DIR/phase"
sleep 2
stats >"$DIR/final.txt"

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR == 0) print 0; else print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo
echo "flood test, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg)," \
    "workers=$WORKERS (0: one per core), conntrack max=$MAX, new_flows_per_batch=${NEW_FLOWS:-default}, flood rate=$RATE/s, ${PHASE}s phases, $ROUNDS round(s)"
quiet_all=$(printf '%s\n' "${RESULTS[@]}" | awk '$1 == "quiet" {print $3}' | tr '\n' ' ')
q=$(median <<<"$quiet_all")
printf '%-7s | %-20s | %-20s | %-7s | %-13s | %s\n' phase "throughput (median)" "worst second (min)" \
    "÷ quiet" "tunfilter CPU" "RSS kB min-max"
for name in quiet "${KINDS[@]}"; do
    all=$(printf '%s\n' "${RESULTS[@]}" | awk -v n="$name" '$1 == n {print $3}' | tr '\n' ' ')
    worst=$(printf '%s\n' "${RESULTS[@]}" | awk -v n="$name" '$1 == n {print $4}' | sort -g | head -1)
    cpu=$(printf '%s\n' "${RESULTS[@]}" | awk -v n="$name" '$1 == n {print $5}' | tr '\n' ' ' | median)
    m=$(median <<<"$all")
    rss=$(awk -v n="$name" '$2 == n && $3 > 0 {if (!lo || $3 < lo) lo = $3; if ($3 > hi) hi = $3} END {printf "%d-%d", lo, hi}' "$DIR/rss.log")
    printf '%-7s | %-20s | %-20s | %-7s | %-13s | %s\n' "$name" \
        "$(awk -v x="$m" 'BEGIN {printf "%.0f Mbit/s", x / 1e6}')" \
        "$(awk -v x="$worst" 'BEGIN {printf "%.0f Mbit/s", x / 1e6}')" \
        "$(awk -v x="$m" -v q="$q" 'BEGIN {printf "%.2f", q ? x / q : 0}')" "$cpu %" "$rss"
done
echo "(throughput and CPU: medians over the rounds; worst second: the lowest 1-second iperf3 interval;"
echo " tunfilter CPU in % of one core over the phase)"
echo "each run (phase round bits/s worst-second-bits/s cpu%): ${RESULTS[*]}"
echo "RSS over time (seconds since start, phase, kB):"
awk '{printf "%s:%s:%s ", $1, $2, $3} END {print ""}' "$DIR/rss.log"
echo
echo "counter changes per phase:"
cat "$DIR/counters.txt"
echo
echo "final ct stats:"
cat "$DIR/final.txt"
if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP" && cp "$DIR"/*.log "$DIR"/*.txt "$KEEP"/
fi
