#!/usr/bin/env bash
# Prints the federation's certificates as two Kubernetes Secrets, ready for
# `kubectl apply -f -`:
#
#   fedkit-server-tls   ca.crt, server.crt, server.key           (mounted by fed-server)
#   fedkit-client-tls   ca.crt and NAME.crt, NAME.key per client  (mounted by fed-client)
#
#   cluster/k8s/secrets.sh CERTS_DIR [NAMESPACE] | kubectl apply -f -
#
# CERTS_DIR comes from cluster/certs.sh with the Service's names, and client names
# DOMAIN-SHARD as cluster/k8s/entrypoint.sh expects them, e.g.
#   cluster/certs.sh --server-name fed-server.fedkit.svc --server-name fed-server \
#       --server-name fed-server.fedkit.svc.cluster.local certs \
#       mnist-0 usps-0 svhn-0 synth-0 mnistm-0
# The CA's key (ca.key) never goes into a Secret.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: secrets.sh CERTS_DIR [NAMESPACE]" >&2; exit 2; }
dir="$1" namespace="${2:-fedkit}"
for f in ca.crt server.crt server.key; do
    [ -f "$dir/$f" ] || { echo "secrets.sh: $dir/$f is missing (create it with cluster/certs.sh)" >&2; exit 1; }
done

# secret NAME FILE...: one Secret whose keys are the files' base names.
secret() {
    local name="$1"; shift
    printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n' "$name" "$namespace"
    printf '  labels:\n    app.kubernetes.io/part-of: fedkit\ntype: Opaque\ndata:\n'
    local f
    for f in "$@"; do printf '  %s: %s\n' "$(basename "$f")" "$(base64 -w0 < "$f")"; done
}

clients=()
for crt in "$dir"/*.crt; do
    name="$(basename "$crt" .crt)"
    [ "$name" != ca ] && [ "$name" != server ] || continue
    [ -f "$dir/$name.key" ] || { echo "secrets.sh: $dir/$name.key is missing" >&2; exit 1; }
    clients+=("$crt" "$dir/$name.key")
done
[ ${#clients[@]} -gt 0 ] || echo "secrets.sh: no client certificates in $dir" >&2
secret fedkit-server-tls "$dir/ca.crt" "$dir/server.crt" "$dir/server.key"
secret fedkit-client-tls "$dir/ca.crt" "${clients[@]}"
