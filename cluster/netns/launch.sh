#!/usr/bin/env bash
# Runs a FedKit federation across Linux network namespaces on one machine: one
# namespace per host, so fed-server and every fed-client see their own network
# interface and address, and all traffic crosses veth links and a bridge.
#
#   cluster/netns/launch.sh [options] [-- ARGS FOR EVERY DAEMON]
#
# Topology (every link and address lives inside namespaces this script creates;
# the machine's own network is never touched):
#
#   PREFIX-sw   a "switch" namespace holding bridge br0
#   PREFIX-s    the server host, eth0 = SUBNET.1/24, runs fed-server on :PORT
#   PREFIX-cI   client host I (1..K), eth0 = SUBNET.(I+1)/24, runs fed-client
#
# Each host's eth0 is one end of a veth pair whose other end is a port of br0:
# p0 for the server, pI for client I. Disabling a port drops every packet of its
# host, while its links stay up and its TCP connections stay open at both ends:
#   bridge -n PREFIX-sw link set dev pI state 0     (state 3 forwards again)
#
# Certificates come from cluster/certs.sh (server SANs: DNS fed-server and IP
# SUBNET.1); each client dials SUBNET.1:PORT and checks the server's IP SAN.
#
# Options:
#   --clients K          client hosts (default 2)
#   --domains LIST       comma-separated digits5 domains; client I takes domain
#                        (I-1) mod D and a shard of it (default mnist,usps,svhn,synth,mnistm)
#   --rounds N           rounds (default 2)
#   --strategy NAME      fedavg, fedbn, fedwon or fedprox (default fedwon)
#   --config FILE        TOML file given to every daemon (--config); flags win
#   --server-arg ARG     extra argument for fed-server (repeatable)
#   --client-arg ARG     extra argument for every fed-client (repeatable)
#   --bin DIR            directory with fed-server and fed-client (default .build/debug)
#   --out DIR            logs, certificates and state (default runs/netns-TIMESTAMP)
#   --subnet A.B.C       the /24 used inside the namespaces (default 10.77.0)
#   --port N             server port (default 7443)
#   --prefix NAME        namespace name prefix (default fk$$; 2-8 of [a-z0-9])
#   --delay MS           add MS ms of one-way delay on every host's link (tc netem)
#   --timeout S          give up after S seconds (default 600)
#   --check              only check that namespaces can be created (exit 0 or 3)
#   --clean PREFIX       delete namespaces named PREFIX-* left by a killed run
#
# ARGS after `--` go to every daemon (e.g. -- --widths 4,4,8,16,8 --norm none);
# data flags such as --train-count are fed-client flags, pass them with --client-arg,
# training flags such as --batch-size are fed-server flags (--server-arg). These come
# last on each command line, so they override the launcher's own choices (the last
# value of a flag wins): --server-arg --min-fit-clients --server-arg 1 lets rounds
# go on when clients drop out (the launcher asks for all of them by default).
#
# Writes OUT/certs/, OUT/server/ (the server's --state-dir: metrics.jsonl, the
# checkpoint, final-model.fkt), OUT/clients/NAME/, OUT/server.log, OUT/NAME.log and
# OUT/network.txt (every namespace's addresses, then one line per port of br0:
# `port pI PREFIX-cI NAME ADDRESS`). On exit -- success, failure, Ctrl-C or
# SIGTERM -- it kills every process in its namespaces and deletes them (which
# deletes the links and bridge).
#
# Exit status: 0 the federation finished; 1 it failed; 2 bad usage; 3 network
# namespaces are not available here (needs root and iproute2's `ip netns`).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

clients=2 domains="mnist,usps,svhn,synth,mnistm" rounds=2 strategy=fedwon config=""
server_extra=() client_extra=() common_extra=()
bin="$repo/.build/debug" out="" subnet="10.77.0" port=7443 prefix="fk$$" delay="" timeout=600
mode=run clean_prefix=""

usage() { echo "usage: launch.sh [options] [-- ARGS FOR EVERY DAEMON] (see --help)" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) clients="$2"; shift 2 ;;
        --domains) domains="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --strategy) strategy="$2"; shift 2 ;;
        --config) config="$2"; shift 2 ;;
        --server-arg) server_extra+=("$2"); shift 2 ;;
        --client-arg) client_extra+=("$2"); shift 2 ;;
        --bin) bin="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --subnet) subnet="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --prefix) prefix="$2"; shift 2 ;;
        --delay) delay="$2"; shift 2 ;;
        --timeout) timeout="$2"; shift 2 ;;
        --check) mode=check; shift ;;
        --clean) mode=clean; clean_prefix="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo pipefail$/p' "$0" | sed '$d'; exit 0 ;;
        --) shift; common_extra=("$@"); break ;;
        *) echo "launch.sh: unknown option $1" >&2; usage ;;
    esac
done

say() { echo "launch.sh: $*" >&2; }
die() { say "$*"; exit 1; }

# --- can this machine do it? -------------------------------------------------
netns_unavailable() {
    if [ "$(id -u)" != 0 ]; then echo "network namespaces need root (running as uid $(id -u))"; return 0; fi
    if ! command -v ip >/dev/null 2>&1; then echo "iproute2's ip is not installed (apt-get install iproute2)"; return 0; fi
    local probe="fkprobe$$" err
    if ! err="$(ip netns add "$probe" 2>&1)"; then echo "ip netns add failed: $err"; return 0; fi
    if ! err="$(ip -n "$probe" link add name p0 type veth peer name p1 2>&1)"; then
        ip netns del "$probe" 2>/dev/null || true
        echo "cannot create veth links in a namespace: $err"; return 0
    fi
    if ! err="$(ip -n "$probe" link add name b0 type bridge 2>&1)"; then
        ip netns del "$probe" 2>/dev/null || true
        echo "cannot create a bridge in a namespace: $err"; return 0
    fi
    ip netns del "$probe"
    return 1
}

# Kills what runs in namespace $1 and deletes it.
remove_namespace() {
    local ns="$1" pids
    pids="$(ip netns pids "$ns" 2>/dev/null || true)"
    if [ -n "$pids" ]; then
        kill -TERM $pids 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            pids="$(ip netns pids "$ns" 2>/dev/null || true)"
            [ -z "$pids" ] && break
            sleep 0.2
        done
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
}

if [ "$mode" = check ]; then
    if reason="$(netns_unavailable)"; then say "$reason"; exit 3; fi
    say "network namespaces, veth links and bridges work here"
    exit 0
fi
if [ "$mode" = clean ]; then
    [[ "$clean_prefix" =~ ^[a-z0-9]{2,8}$ ]] || { say "--clean PREFIX must be 2-8 of [a-z0-9]"; exit 2; }
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${clean_prefix}-(sw|s|c[0-9]+)$" || true); do
        say "deleting namespace $ns"; remove_namespace "$ns"
    done
    exit 0
fi

# --- validate ----------------------------------------------------------------
[[ "$clients" =~ ^[0-9]+$ ]] && [ "$clients" -ge 1 ] && [ "$clients" -le 200 ] || { say "--clients ($clients) must be 1..200"; exit 2; }
[[ "$rounds" =~ ^[0-9]+$ ]] && [ "$rounds" -ge 1 ] || { say "--rounds ($rounds) must be at least 1"; exit 2; }
[[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] || { say "--port ($port) must be 1..65535"; exit 2; }
[[ "$timeout" =~ ^[0-9]+$ ]] && [ "$timeout" -ge 1 ] || { say "--timeout ($timeout) must be a whole number of seconds"; exit 2; }
[[ "$prefix" =~ ^[a-z0-9]{2,8}$ ]] || { say "--prefix ($prefix) must be 2-8 of [a-z0-9]"; exit 2; }
[[ "$subnet" =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || { say "--subnet ($subnet) must be the first three octets, e.g. 10.77.0"; exit 2; }
[ -z "$delay" ] || [[ "$delay" =~ ^[0-9]+$ ]] || { say "--delay ($delay) must be whole milliseconds"; exit 2; }
[ -z "$config" ] || [ -f "$config" ] || { say "--config $config: no such file"; exit 2; }
IFS=, read -r -a domain_list <<< "$domains"
[ ${#domain_list[@]} -ge 1 ] || { say "--domains is empty"; exit 2; }
for exe in fed-server fed-client; do
    [ -x "$bin/$exe" ] || { say "$bin/$exe not found (run swift build, or pass --bin)"; exit 2; }
done
if reason="$(netns_unavailable)"; then say "$reason"; exit 3; fi

[ -n "$out" ] || out="$repo/runs/netns-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
[ -z "$config" ] || config="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"

sw="$prefix-sw" server_ns="$prefix-s" server_ip="$subnet.1"
created=()        # namespaces to delete on exit
declare -A pid_of # daemon name -> pid (as seen from the root namespace)

cleanup() {
    local status=$?
    trap - EXIT INT TERM HUP
    for name in "${!pid_of[@]}"; do kill -TERM "${pid_of[$name]}" 2>/dev/null || true; done
    for ns in "${created[@]}"; do remove_namespace "$ns"; done
    for name in "${!pid_of[@]}"; do wait "${pid_of[$name]}" 2>/dev/null || true; done
    local left
    left="$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$prefix-(sw|s|c[0-9]+)$" || true)"
    [ -z "$left" ] || say "could not delete namespaces: $left"
    exit "$status"
}
trap cleanup EXIT
trap 'say "interrupted; stopping everything"; exit 130' INT
trap 'say "terminated; stopping everything"; exit 143' TERM HUP

# --- network -----------------------------------------------------------------
for ns in "$sw" "$server_ns" $(seq -f "$prefix-c%g" 1 "$clients"); do
    if ip netns list | awk '{print $1}' | grep -qx "$ns"; then
        die "namespace $ns already exists (another run with --prefix $prefix? remove it with --clean $prefix)"
    fi
done
ip netns add "$sw"; created+=("$sw")
ip -n "$sw" link add name br0 type bridge
ip -n "$sw" link set br0 up
ip -n "$sw" link set lo up

# add_host NS PORTNAME ADDRESS: a namespace with eth0 at ADDRESS/24, cabled to br0.
add_host() {
    local ns="$1" swport="$2" address="$3"
    ip netns add "$ns"; created+=("$ns")
    ip -n "$sw" link add name "$swport" type veth peer name eth0 netns "$ns"
    ip -n "$sw" link set "$swport" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$address/24" dev eth0
    ip -n "$ns" link set eth0 up
    if [ -n "$delay" ]; then
        ip netns exec "$ns" tc qdisc add dev eth0 root netem delay "${delay}ms" \
            || die "tc netem failed in $ns (is the sch_netem kernel module available?)"
    fi
}
add_host "$server_ns" p0 "$server_ip"
client_names=() client_ns=() client_data=() client_part=()
declare -A per_domain=() seen=()
for i in $(seq 1 "$clients"); do
    d="${domain_list[$(( (i - 1) % ${#domain_list[@]} ))]}"
    per_domain[$d]=$(( ${per_domain[$d]:-0} + 1 ))
done
for i in $(seq 1 "$clients"); do
    d="${domain_list[$(( (i - 1) % ${#domain_list[@]} ))]}"
    shard=${seen[$d]:-0}; seen[$d]=$(( shard + 1 ))
    client_names+=("$d-$shard"); client_ns+=("$prefix-c$i")
    client_data+=("digits5:$d"); client_part+=("$shard/${per_domain[$d]}")
    add_host "$prefix-c$i" "p$i" "$subnet.$(( i + 1 ))"
done
{
    echo "# namespaces of this run (prefix $prefix)"
    for ns in "${created[@]}"; do echo "== $ns"; ip -n "$ns" -brief addr; done
    echo "# ports of br0 in $sw: port NAME HOST-NAMESPACE DAEMON ADDRESS"
    echo "port p0 $server_ns fed-server $server_ip"
    for idx in "${!client_names[@]}"; do
        echo "port p$(( idx + 1 )) ${client_ns[$idx]} ${client_names[$idx]} $subnet.$(( idx + 2 ))"
    done
} > "$out/network.txt"
say "network: bridge in $sw; server $server_ns at $server_ip; ${#client_ns[@]} client namespaces at $subnet.2-$subnet.$(( clients + 1 ))"

# --- certificates ----------------------------------------------------------
rm -rf "$out/certs"
bash "$repo/cluster/certs.sh" --server-name fed-server --server-ip "$server_ip" "$out/certs" "${client_names[@]}" 2>"$out/certs.log" \
    || die "certs.sh failed; see $out/certs.log"

# --- daemons -----------------------------------------------------------------
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
cfg=(); [ -z "$config" ] || cfg=(--config "$config")
rm -rf "$out/server" "$out/clients"
mkdir -p "$out/server" "$out/clients"
ip netns exec "$server_ns" "$bin/fed-server" "${cfg[@]}" \
    --host "$server_ip" --port "$port" --strategy "$strategy" --rounds "$rounds" \
    --min-clients "$clients" --min-fit-clients "$clients" --state-dir "$out/server" \
    --cert "$out/certs/server.crt" --key "$out/certs/server.key" --ca "$out/certs/ca.crt" \
    "${common_extra[@]}" "${server_extra[@]}" </dev/null >"$out/server.log" 2>&1 &
pid_of[server]=$!

# The server prints "listening on HOST:PORT" once bound.
deadline=$(( SECONDS + 60 ))
until grep -q "listening on" "$out/server.log" 2>/dev/null; do
    kill -0 "${pid_of[server]}" 2>/dev/null || { tail -n 20 "$out/server.log" >&2; die "fed-server exited before listening; see $out/server.log"; }
    [ $SECONDS -lt $deadline ] || die "fed-server did not start listening within 60 s; see $out/server.log"
    sleep 0.2
done
say "fed-server listening on $server_ip:$port in $server_ns"

for idx in "${!client_names[@]}"; do
    name="${client_names[$idx]}"
    ip netns exec "${client_ns[$idx]}" "$bin/fed-client" "${cfg[@]}" \
        --server "$server_ip:$port" --strategy "$strategy" \
        --data "${client_data[$idx]}" --partition "${client_part[$idx]}" --state-dir "$out/clients/$name" \
        --cert "$out/certs/$name.crt" --key "$out/certs/$name.key" --ca "$out/certs/ca.crt" --max-attempts 20 \
        "${common_extra[@]}" "${client_extra[@]}" </dev/null >"$out/$name.log" 2>&1 &
    pid_of[$name]=$!
    say "fed-client $name (${client_data[$idx]}, shard ${client_part[$idx]}) in ${client_ns[$idx]}"
done

# --- wait --------------------------------------------------------------------
deadline=$(( SECONDS + timeout ))
reported=""
while kill -0 "${pid_of[server]}" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then die "the federation did not finish within $timeout s; logs in $out"; fi
    alive=0
    for name in "${client_names[@]}"; do
        if kill -0 "${pid_of[$name]}" 2>/dev/null; then alive=$(( alive + 1 ))
        elif [[ " $reported " != *" $name "* ]]; then
            reported+=" $name "
            say "fed-client $name exited before the federation finished; see $out/$name.log"
        fi
    done
    [ $alive -gt 0 ] || { sleep 1; kill -0 "${pid_of[server]}" 2>/dev/null || break; die "every client exited before the federation finished; logs in $out"; }
    sleep 0.5
done
server_status=0
wait "${pid_of[server]}" || server_status=$?
unset 'pid_of[server]'
grep -E "^(round |fed-server: finished|  )" "$out/server.log" >&2 || true
[ $server_status -eq 0 ] || { tail -n 20 "$out/server.log" >&2; die "fed-server failed with status $server_status; see $out/server.log"; }

# Clients leave after the server's Goodbye; give them a moment.
deadline=$(( SECONDS + 15 ))
for name in "${client_names[@]}"; do
    while kill -0 "${pid_of[$name]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    status=0
    if kill -0 "${pid_of[$name]}" 2>/dev/null; then say "fed-client $name still running after the federation ended; stopping it"
    else wait "${pid_of[$name]}" || status=$?; [ $status -eq 0 ] || say "fed-client $name exited with status $status"
    fi
done
say "done: metrics in $out/server/metrics.jsonl, logs in $out"
