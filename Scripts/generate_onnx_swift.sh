#!/usr/bin/env bash
# Regenerates Sources/ONNXProto/onnx.pb.swift, the ONNX message types `distill export` writes with swift-protobuf.
# Generated once and committed: building swift-protobuf's protoc plugin is not part of the package build or of CI.
#
# Needs protoc (Debian's protobuf-compiler), the onnx package from PyPI (it ships onnx.proto; the committed file came
# from onnx 1.23.2, onnx.proto SHA-256 547214dd049486a4d5ecbae593e9c72d90b5e8d603944b722eff469e0b5a9cc9) and a
# checkout of apple/swift-protobuf at the version Package.swift names, whose protoc-gen-swift this builds.
#
#     Scripts/generate_onnx_swift.sh /path/to/swift-protobuf
set -euo pipefail
cd "$(dirname "$0")/.."
protobuf=${1:?usage: $0 /path/to/swift-protobuf-checkout}
(cd "$protobuf" && swift build -c release --product protoc-gen-swift)
proto_dir=$(python3 -c 'import onnx, os; print(os.path.dirname(onnx.__file__))')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$proto_dir/onnx.proto" "$work/"
protoc --plugin=protoc-gen-swift="$protobuf/.build/release/protoc-gen-swift" --proto_path="$work" \
    --swift_out=Sources/ONNXProto --swift_opt=Visibility=Public "$work/onnx.proto"
echo "wrote Sources/ONNXProto/onnx.pb.swift from onnx $(python3 -c 'import onnx; print(onnx.__version__)')"
