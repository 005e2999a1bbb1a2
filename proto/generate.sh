#!/usr/bin/env bash
# Regenerates Sources/Wire/fed.pb.swift from proto/fed.proto.
#
# Needs `protoc` (Debian: protobuf-compiler) and `protoc-gen-swift` built from
# swift-protobuf at the version Package.swift uses, e.g.
#   git clone https://github.com/apple/swift-protobuf.git /tmp/swift-protobuf
#   (cd /tmp/swift-protobuf && git checkout 1.39.0 && swift build -c release --product protoc-gen-swift)
#   PROTOC_GEN_SWIFT=/tmp/swift-protobuf/.build/release/protoc-gen-swift proto/generate.sh
# Builds never run this: the generated file is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
plugin="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}"
[ -x "$plugin" ] || { echo "generate.sh: set PROTOC_GEN_SWIFT to the protoc-gen-swift binary" >&2; exit 1; }
command -v protoc >/dev/null || { echo "generate.sh: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
protoc --plugin=protoc-gen-swift="$plugin" \
    --swift_opt=Visibility=Public \
    --swift_opt=FileNaming=DropPath \
    --swift_out=Sources/Wire \
    -I proto proto/fed.proto
echo "generate.sh: wrote Sources/Wire/fed.pb.swift"
