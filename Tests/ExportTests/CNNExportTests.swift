import Checkpoints
import DataFormats
import Export
import Foundation
import NeuralNet
import ONNXProto
import SwiftProtobuf
import TensorCore
import TensorIO
import XCTest

/// The ONNX export of convolutional networks against ONNX Runtime (fixtures from Scripts/make_onnx_fixtures.py:
/// lenet5, resnet8 and a model with every layer kind, random weights and running statistics from training-mode
/// passes, each exported, checked by onnx.checker, and run by ORT 1.32 on 16 MNIST test images).
final class CNNExportTests: XCTestCase {
    static let names = ["lenet5", "resnet8", "kinds"]

    func fixture(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"))
    }

    func export(_ name: String) throws -> Data {
        let checkpoint = try ModelCheckpoint.read(url: try fixture("\(name).safetensors"))
        return try ONNXExporter.export(checkpoint, source: "\(name).safetensors")
    }

    func graph(_ name: String) throws -> Onnx_GraphProto {
        try Onnx_ModelProto(serializedBytes: try export(name)).graph
    }

    /// The op types of a graph's nodes with their counts.
    func opCounts(_ graph: Onnx_GraphProto) -> [String: Int] {
        graph.node.reduce(into: [:]) { $0[$1.opType, default: 0] += 1 }
    }

    func attribute(_ node: Onnx_NodeProto, _ name: String) -> Onnx_AttributeProto? { node.attribute.first { $0.name == name } }

    /// The fixture files hold the presets as `ModelPresets` builds them.
    func testFixturesAreThePresets() throws {
        for name in ["lenet5", "resnet8"] {
            let checkpoint = try ModelCheckpoint.read(url: try fixture("\(name).safetensors"))
            XCTAssertEqual(checkpoint.description, try ModelPresets.description(named: name, inputShape: [1, 28, 28], classCount: 10), name)
        }
        let resnet = try ModelCheckpoint.read(url: try fixture("resnet8.safetensors"))
        let tracked = resnet.model.namedBuffers.filter { $0.name.hasSuffix("num_batches_tracked") }
        XCTAssertEqual(tracked.count, 9)
        XCTAssertTrue(tracked.allSatisfy { $0.buffer.value.scalar == 3 })
        let means = resnet.model.namedBuffers.filter { $0.name.hasSuffix("running_mean") }.flatMap { $0.buffer.value.scalars }
        XCTAssertGreaterThan(means.map(abs).max() ?? 0, 0.05, "the running means are not the initial zeros")
    }

    /// The exporter writes exactly the files ONNX Runtime ran (the export is deterministic).
    func testExportsAreTheFilesORTRan() throws {
        for name in Self.names {
            XCTAssertEqual(try export(name), try Data(contentsOf: try fixture("\(name).onnx")), name)
        }
    }

    /// Our logits on the raw images (standardised as the model file says) are ORT's to 1e-5 relative: every
    /// |ours - ORT| at most 1e-5 times the largest |ORT logit| of its row; and PyTorch's (float64) to 1e-4.
    func testOurLogitsMatchONNXRuntime() throws {
        for name in Self.names {
            let checkpoint = try ModelCheckpoint.read(url: try fixture("\(name).safetensors"))
            let ort = try SafeTensors.read(url: try fixture("ort_\(name).safetensors"))
            let input = try ort.tensor(named: "input"), expected = try ort.tensor(named: "logits")
            let torch = try ort.tensor(named: "torch_logits")
            XCTAssertEqual(input.shape, [16, 1, 28, 28])
            var x = input
            if let standardization = try DataSpecification.from(metadata: checkpoint.metadata)?.standardization {
                let f = 784
                x = Tensor(shape: input.shape) { out in
                    for i in 0..<input.count { out[i] = (input[flat: i] - standardization.mean[i % f]) / standardization.std[i % f] }
                }
            }
            let logits = checkpoint.model.infer(x)
            XCTAssertEqual(logits.shape, expected.shape, name)
            let rows = expected.shape[0], classes = expected.shape[1]
            var worst: Float = 0, worstTorch: Float = 0
            for r in 0..<rows {
                var scale: Float = 0
                for c in 0..<classes { scale = max(scale, abs(expected[flat: r * classes + c])) }
                for c in 0..<classes {
                    let k = r * classes + c
                    worst = max(worst, abs(logits[flat: k] - expected[flat: k]) / scale)
                    worstTorch = max(worstTorch, abs(logits[flat: k] - torch[flat: k]) / scale)
                }
            }
            print("\(name): largest |ours - ORT| / row max |ORT| over \(logits.count) logits: \(worst); against PyTorch float64: \(worstTorch)")
            XCTAssertLessThanOrEqual(worst, 1e-5, name)
            XCTAssertLessThanOrEqual(worstTorch, 1e-4, name)
        }
    }

    func testLeNet5Graph() throws {
        let g = try graph("lenet5")
        XCTAssertEqual(opCounts(g), ["Sub": 1, "Div": 1, "Conv": 2, "Relu": 4, "MaxPool": 2, "Flatten": 1, "Gemm": 3])
        XCTAssertEqual(g.node.map(\.opType), ["Sub", "Div", "Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Flatten",
                                              "Gemm", "Relu", "Gemm", "Relu", "Gemm"])
        let input = try XCTUnwrap(g.input.first)
        XCTAssertEqual(input.name, "input")
        XCTAssertEqual(input.type.tensorType.shape.dim.map(\.dimParam), ["batch", "", "", ""])
        XCTAssertEqual(input.type.tensorType.shape.dim.dropFirst().map(\.dimValue), [1, 28, 28])
        XCTAssertEqual(g.output.map(\.name), ["logits"])
        let mean = try XCTUnwrap(g.initializer.first { $0.name == "standardize.mean" })
        XCTAssertEqual(mean.dims, [1, 28, 28])
        let conv = try XCTUnwrap(g.node.first { $0.opType == "Conv" })
        XCTAssertEqual(conv.input.count, 3, "lenet5's convolutions have a bias")
        XCTAssertEqual(attribute(conv, "pads")?.ints, [2, 2, 2, 2])
        XCTAssertEqual(attribute(conv, "kernel_shape")?.ints, [5, 5])
        let pool = try XCTUnwrap(g.node.first { $0.opType == "MaxPool" })
        XCTAssertEqual(attribute(pool, "strides")?.ints, [2, 2])
    }

    func testResNet8Graph() throws {
        let g = try graph("resnet8")
        XCTAssertEqual(opCounts(g), ["Conv": 9, "BatchNormalization": 9, "Relu": 7, "Add": 3, "GlobalAveragePool": 1, "Flatten": 1, "Gemm": 1])
        XCTAssertEqual(Array(g.node.suffix(3).map(\.opType)), ["GlobalAveragePool", "Flatten", "Gemm"])
        for conv in g.node where conv.opType == "Conv" { XCTAssertEqual(conv.input.count, 2, "no bias before a batch norm") }
        for norm in g.node where norm.opType == "BatchNormalization" {
            XCTAssertEqual(norm.input.count, 5)
            XCTAssertEqual(attribute(norm, "epsilon")?.f, 1e-5)
            XCTAssertNil(attribute(norm, "training_mode"), "inference mode (the default)")
        }
        XCTAssertTrue(g.initializer.contains { $0.name == "5.shortcut.1.running_var" })
        XCTAssertTrue(g.initializer.contains { $0.name == "3.body.4.running_mean" })
        // The first block's shortcut is the identity: its Add takes the block's input (the stem's ReLU).
        let firstAdd = try XCTUnwrap(g.node.first { $0.opType == "Add" })
        let stemRelu = try XCTUnwrap(g.node.first { $0.opType == "Relu" })
        XCTAssertEqual(firstAdd.input[1], stemRelu.output[0])
        XCTAssertEqual(g.input.first?.type.tensorType.shape.dim.dropFirst().map(\.dimValue), [1, 28, 28])
    }

    func testEveryKindGraph() throws {
        let g = try graph("kinds")
        XCTAssertEqual(opCounts(g), ["Conv": 4, "BatchNormalization": 3, "Relu": 3, "MaxPool": 1, "Add": 1, "AveragePool": 2,
                                     "Flatten": 1, "Gemm": 2])
        let convs = g.node.filter { $0.opType == "Conv" }
        XCTAssertEqual(attribute(convs[1], "kernel_shape")?.ints, [3, 5])
        XCTAssertEqual(attribute(convs[1], "strides")?.ints, [2, 2])
        XCTAssertEqual(attribute(convs[1], "pads")?.ints, [1, 2, 1, 2])
        XCTAssertEqual(attribute(convs[1], "dilations")?.ints, [1, 2])
        XCTAssertEqual(attribute(convs[1], "group")?.i, 2)
        XCTAssertEqual(convs.map(\.input.count), [3, 3, 2, 3])
        let pool = try XCTUnwrap(g.node.first { $0.opType == "MaxPool" })
        XCTAssertEqual(attribute(pool, "dilations")?.ints, [2, 2])
        XCTAssertEqual(attribute(pool, "pads")?.ints, [1, 1, 1, 1])
        let averages = g.node.filter { $0.opType == "AveragePool" }
        XCTAssertEqual(averages.compactMap { attribute($0, "count_include_pad")?.i }, [0, 1])
        // A batch norm without affine parameters: scale 1, shift 0.
        let norm = try XCTUnwrap(g.node.first { $0.opType == "BatchNormalization" })
        let scale = try XCTUnwrap(g.initializer.first { $0.name == norm.input[1] })
        XCTAssertEqual(scale.rawData.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }, [1, 1, 1, 1])
        XCTAssertTrue(g.initializer.contains { $0.name == "9.1.running_mean" }, "nested sequence: state-dict names")
    }

    /// A layer without an ONNX form is one error naming it (the command then writes nothing).
    func testUnexportableLayerIsOneError() throws {
        final class Mystery: Layer {
            func forward(_ input: Variable, context: inout ForwardContext) -> Variable { input }
            func infer(_ input: Tensor) -> Tensor { input }
            var layerDescription: LayerDescription { LayerDescription(kind: "mystery") }
        }
        var generator = RandomGenerator(seed: 1)
        let model = Sequential([Linear(inputCount: 4, outputCount: 3, generator: &generator), Mystery()], inputShape: [4])
        let checkpoint = try ModelCheckpoint(model: model)
        XCTAssertThrowsError(try ONNXExporter.export(checkpoint, source: "m.safetensors")) { error in
            let message = String(describing: error)
            XCTAssertEqual(message, "m.safetensors: layer 'mystery' (1) has no ONNX export")
            XCTAssertFalse(message.contains("\n"))
        }
    }
}
