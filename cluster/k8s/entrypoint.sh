#!/usr/bin/env bash
# Entry point of the FedKit container image (cluster/Dockerfile).
#
#   fedkit-entrypoint server [FED-SERVER FLAGS...]
#   fedkit-entrypoint client [FED-CLIENT FLAGS...]
#
# Both read the TOML file $FEDKIT_CONFIG (--config) and keep their state in
# $FEDKIT_STATE_DIR; extra flags override the file.
#
# A client works out who it is from its StatefulSet ordinal (the number at the end
# of the pod's host name, fed-client-3 -> 3, or $FEDKIT_ORDINAL): with domains
# D = $FEDKIT_DOMAINS and N = $FEDKIT_CLIENTS replicas, client i trains on domain
# D[i mod |D|], shard i div |D| of the clients sharing that domain, under the name
# DOMAIN-SHARD, with the certificate $FEDKIT_TLS_DIR/DOMAIN-SHARD.crt/.key.
# With $FEDKIT_DATA_ROOT set, it reads FOLDER:DOMAIN from there instead of
# generating the built-in digits5 domain.
#
# When the daemon finishes the federation (exit 0) the container stays up, idle,
# so that Kubernetes does not restart it into an already finished run and its
# state and metrics can still be copied out; set FEDKIT_IDLE_AFTER_FINISH=0 to
# exit instead. A daemon that fails exits non-zero and is restarted; it resumes
# from its state directory. FEDKIT_DRY_RUN=1 prints the command instead.
set -euo pipefail

role="${1:-}"; shift || true
config="${FEDKIT_CONFIG:-/etc/fedkit/federation.toml}"
tls="${FEDKIT_TLS_DIR:-/etc/fedkit/tls}"
state="${FEDKIT_STATE_DIR:-/var/lib/fedkit}"
bin="${FEDKIT_BIN:-/usr/local/bin}"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

cfg=(); [ ! -f "$config" ] || cfg=(--config "$config")
case "$role" in
    server)
        cmd=("$bin/fed-server" "${cfg[@]}" --state-dir "$state"
             --cert "$tls/server.crt" --key "$tls/server.key" --ca "$tls/ca.crt" "$@")
        ;;
    client)
        IFS=, read -r -a domains <<< "${FEDKIT_DOMAINS:-mnist,usps,svhn,synth,mnistm}"
        d=${#domains[@]}
        n="${FEDKIT_CLIENTS:-$d}"
        i="${FEDKIT_ORDINAL:-${HOSTNAME##*-}}"
        [[ "$i" =~ ^[0-9]+$ ]] || { echo "fedkit-entrypoint: cannot read an ordinal from host name \"$HOSTNAME\"; set FEDKIT_ORDINAL" >&2; exit 2; }
        [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] || { echo "fedkit-entrypoint: FEDKIT_CLIENTS ($n) must be a positive number" >&2; exit 2; }
        [ "$d" -ge 1 ] || { echo "fedkit-entrypoint: FEDKIT_DOMAINS is empty" >&2; exit 2; }
        [ "$i" -lt "$n" ] || { echo "fedkit-entrypoint: ordinal $i is not below FEDKIT_CLIENTS ($n); scale the StatefulSet and FEDKIT_CLIENTS together" >&2; exit 2; }
        domain="${domains[$(( i % d ))]}"
        shard=$(( i / d ))
        shards=$(( (n - 1 - i % d) / d + 1 ))   # clients j < n with j mod d = i mod d
        name="$domain-$shard"
        if [ -n "${FEDKIT_DATA_ROOT:-}" ]; then data="$FEDKIT_DATA_ROOT:$domain"; else data="digits5:$domain"; fi
        cmd=("$bin/fed-client" "${cfg[@]}" --state-dir "$state" --data "$data" --partition "$shard/$shards"
             --cert "$tls/$name.crt" --key "$tls/$name.key" --ca "$tls/ca.crt" "$@")
        ;;
    *)
        echo "usage: fedkit-entrypoint server|client [FLAGS...]" >&2; exit 2 ;;
esac

if [ "${FEDKIT_DRY_RUN:-0}" = 1 ]; then printf '%s\n' "${cmd[*]}"; exit 0; fi
echo "fedkit-entrypoint: ${cmd[*]}" >&2

"${cmd[@]}" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
status=0
while kill -0 "$child" 2>/dev/null; do
    if wait "$child"; then status=0; else status=$?; fi
done
trap - TERM INT
[ "$status" -eq 0 ] || exit "$status"
[ "${FEDKIT_IDLE_AFTER_FINISH:-1}" = 1 ] || exit 0
echo "fedkit-entrypoint: $role finished; idling (state in $state)" >&2
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $! || true; done
