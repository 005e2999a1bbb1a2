#!/usr/bin/env bash
# Creates a federation's TLS credentials with the openssl CLI: one CA, one server
# certificate, one client certificate per client name (the client's identity is
# its certificate's common name). Keys are EC P-256.
#
#   cluster/certs.sh [options] OUT_DIR [CLIENT_NAME...]
#
# Options:
#   --server-name NAME   DNS name of the coordinator (repeatable; default: localhost)
#   --server-ip IP       IP address of the coordinator (repeatable; default: 127.0.0.1)
#   --days N             validity of new certificates in days (default: 825)
#   --ca-name NAME       common name of a new CA (default: "FedKit federation CA")
#
# Writes OUT_DIR/ca.crt, ca.key, server.crt, server.key, and NAME.crt, NAME.key per
# client. An existing CA in OUT_DIR is reused, so clients can be added later:
#   cluster/certs.sh --server-name coordinator.lan --server-ip 10.0.0.5 certs mnist-0 svhn-0
#   cluster/certs.sh certs usps-0            # adds one client, same CA
# Keep ca.key offline; hand each client only ca.crt, NAME.crt and NAME.key.
set -euo pipefail

server_names=() server_ips=() days=825 ca_name="FedKit federation CA"
while [ $# -gt 0 ]; do
    case "$1" in
        --server-name) server_names+=("$2"); shift 2 ;;
        --server-ip) server_ips+=("$2"); shift 2 ;;
        --days) days="$2"; shift 2 ;;
        --ca-name) ca_name="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        --) shift; break ;;
        -*) echo "certs.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { echo "usage: certs.sh [options] OUT_DIR [CLIENT_NAME...]" >&2; exit 2; }
out="$1"; shift
command -v openssl >/dev/null || { echo "certs.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }
[ ${#server_names[@]} -gt 0 ] || server_names=(localhost)
[ ${#server_ips[@]} -gt 0 ] || server_ips=(127.0.0.1)
mkdir -p "$out"
umask 077
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign NAME SUBJECT EXTFILE: issues $out/NAME.crt for $out/NAME.key, signed by the CA.
sign() {
    openssl req -new -key "$out/$1.key" -subj "$2" -out "$tmp/$1.csr"
    openssl x509 -req -in "$tmp/$1.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
        -extfile "$3" -out "$out/$1.crt" 2>/dev/null
    rm -f "$tmp/$1.csr"
}

if [ ! -f "$out/ca.crt" ] || [ ! -f "$out/ca.key" ]; then
    newkey "$out/ca.key"
    openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" -subj "/CN=$ca_name" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$out/ca.crt"
    echo "certs.sh: new CA $out/ca.crt" >&2
fi

if [ ! -f "$out/server.crt" ]; then
    san=""
    for n in "${server_names[@]}"; do san+="${san:+,}DNS:$n"; done
    for ip in "${server_ips[@]}"; do san+="${san:+,}IP:$ip"; done
    cat > "$tmp/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
EXT
    newkey "$out/server.key"
    sign server "/CN=${server_names[0]}" "$tmp/server.ext"
    echo "certs.sh: server $out/server.crt ($san)" >&2
fi

cat > "$tmp/client.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EXT
for name in "$@"; do
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "certs.sh: client name \"$name\" must match [A-Za-z0-9._-]+" >&2; exit 2; }
    [[ "$name" != ca && "$name" != server ]] || { echo "certs.sh: \"$name\" is reserved" >&2; exit 2; }
    newkey "$out/$name.key"
    sign "$name" "/CN=$name" "$tmp/client.ext"
    echo "certs.sh: client $out/$name.crt (CN=$name)" >&2
done
chmod 644 "$out"/*.crt
