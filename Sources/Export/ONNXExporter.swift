import Foundation
import SwiftProtobuf
import TensorCore
import NeuralNet
import Checkpoints
import ONNXProto

/// A model file as an ONNX graph that ONNX Runtime (and the converters built on ONNX) run as it is.
///
/// - One input, `input`, float32 with a dynamic batch dimension: `[batch, ...sample shape]` for a model on rows
///   (MLPs; the data's sample shape, flattened in the graph), `[batch, ...the model's input shape]` for a model on
///   images or sequences (`[batch, 1, 28, 28]` for lenet5 on MNIST). One output, `logits` `[batch, classes]` at
///   T = 1, and with `probabilities` also their softmax.
/// - The input standardisation a model was trained with (its data description) comes first in the graph, as `Sub`
///   and `Div` by constant tensors, so the graph takes the raw features.
/// - Layers: Linear as `Gemm` (transB = 1, the `[out, in]` weight as stored), ReLU as `Relu`, Flatten as `Flatten`,
///   Identity as `Identity`; dropout is the identity at inference and leaves no node; an input whose sample shape is
///   not the first layer's (images into an MLP) is flattened first. Conv2d as `Conv` (kernel_shape, strides, pads,
///   dilations, group; the bias input only when the layer has one), MaxPool2d as `MaxPool` (with dilations),
///   AvgPool2d as `AveragePool` (count_include_pad as the layer's setting), global average pooling as
///   `GlobalAveragePool` then `Flatten`, BatchNorm1d/2d as `BatchNormalization` in inference mode with the running
///   statistics (not folded into a preceding convolution, so the graph computes what the layer computes; ONNX
///   Runtime folds it itself when it optimises the graph; a layer without affine parameters gets scale 1 and
///   shift 0), a residual block as its body and its shortcut (the input itself when there is none) joined by `Add`,
///   nested sequences as their layers. Initialisers carry the state-dict names (`3.body.1.running_mean`).
/// - A layer kind without an ONNX form is an ``ExportError`` naming the kind and the layer, and nothing is written.
/// - `metadata_props`: producer, the model description, the classes and their names, the data, and the training
///   and distillation settings and test figures the model file records.
///
/// Opset 17 (ai.onnx), IR version 8: read by ONNX Runtime 1.13 and later.
public enum ONNXExporter {
    public static let opset: Int64 = 17
    public static let irVersion: Int64 = 8

    public struct Options: Sendable {
        /// Also output `probabilities` (softmax of the logits).
        public var probabilities = false
        public init() {}
    }

    /// The data description a model file records (only what the graph needs).
    struct DataDescription: Decodable {
        struct Standardization: Decodable { var mean: [Float]; var std: [Float] }
        var sample_shape: [Int]?
        var class_names: [String]?
        var standardization: Standardization?
        var format: String?
        var source: String?
    }

    public static func export(_ checkpoint: ModelCheckpoint, source: String, options: Options = Options()) throws -> Data {
        var graph = Onnx_GraphProto()
        graph.name = "distill"
        let description = checkpoint.description
        let data = try checkpoint.metadata["data"].map { text -> DataDescription in
            do { return try JSONDecoder().decode(DataDescription.self, from: Data(text.utf8)) } catch {
                throw ExportError("\(source): metadata 'data' is not a data description: \(error)")
            }
        }
        let sampleShape = data?.sample_shape ?? description.inputShape
        guard sampleShape.reduce(1, *) == description.inputShape.reduce(1, *) else {
            throw ExportError("\(source): the data's sample shape \(sampleShape) does not match the model's input \(description.inputShape)")
        }
        let classes = checkpoint.classCount
        // A model on rows takes the data's samples (flattened in the graph); a model on images or sequences takes
        // its own per-example shape.
        let inputShape = description.inputShape.count > 1 ? description.inputShape : sampleShape
        graph.input = [valueInfo("input", dims: ["batch"] + inputShape.map { .fixed($0) })]
        var current = "input"
        var counter = 0
        func fresh(_ base: String) -> String { counter += 1; return "\(base)_\(counter)" }
        func add(_ op: String, _ inputs: [String], output: String? = nil, attributes: [Onnx_AttributeProto] = []) -> String {
            var node = Onnx_NodeProto()
            node.opType = op
            node.name = fresh(op.lowercased())
            node.input = inputs
            let out = output ?? fresh(op.lowercased() + "_out")
            node.output = [out]
            node.attribute = attributes
            graph.node.append(node)
            return out
        }
        func constant(_ name: String, _ values: [Float], dims: [Int]) -> String {
            var t = Onnx_TensorProto()
            t.name = name
            t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            t.dims = dims.map(Int64.init)
            t.rawData = values.withUnsafeBufferPointer { Data(buffer: $0) }
            graph.initializer.append(t)
            return name
        }
        if let s = data?.standardization {
            guard s.mean.count == sampleShape.reduce(1, *), s.std.count == s.mean.count else {
                throw ExportError("\(source): the standardisation has \(s.mean.count) features, the model takes \(sampleShape.reduce(1, *))")
            }
            let mean = constant("standardize.mean", s.mean, dims: inputShape)
            let std = constant("standardize.std", s.std, dims: inputShape)
            current = add("Div", [add("Sub", [current, mean]), std])
        }
        if inputShape != description.inputShape {
            current = add("Flatten", [current], attributes: [intAttribute("axis", 1)])
        }
        /// Appends the nodes of `layers` (state-dict names under `prefix`) to the graph, from the tensor `input`;
        /// returns the name of their output.
        func emit(_ layers: [Layer], prefix: String, from input: String, top: Bool) throws -> String {
            var current = input
            for (position, layer) in layers.enumerated() {
                let name = "\(prefix)\(position)"
                switch layer {
                case let linear as Linear:
                    let w = constant("\(name).weight", linear.weight.value.scalars, dims: [linear.outputCount, linear.inputCount])
                    let b = constant("\(name).bias", linear.bias.value.scalars, dims: [linear.outputCount])
                    current = add("Gemm", [current, w, b], attributes: [intAttribute("transB", 1)])
                case is ReLU:
                    current = add("Relu", [current])
                case is Flatten:
                    current = add("Flatten", [current], attributes: [intAttribute("axis", 1)])
                case is Dropout, is Identity:
                    if top, position == layers.count - 1 { current = add("Identity", [current]) }
                case let inner as Sequential:
                    current = try emit(inner.layers, prefix: "\(name).", from: current, top: false)
                case let conv as Conv2d:
                    let g = conv.geometry
                    var inputs = [current, constant("\(name).weight", conv.weight.value.scalars, dims: g.weightShape)]
                    if let bias = conv.bias { inputs.append(constant("\(name).bias", bias.value.scalars, dims: [g.outChannels])) }
                    current = add("Conv", inputs, attributes: [
                        intsAttribute("kernel_shape", [g.kernelHeight, g.kernelWidth]),
                        intsAttribute("strides", [g.strideHeight, g.strideWidth]),
                        intsAttribute("pads", [g.paddingHeight, g.paddingWidth, g.paddingHeight, g.paddingWidth]),
                        intsAttribute("dilations", [g.dilationHeight, g.dilationWidth]),
                        intAttribute("group", g.groups),
                    ])
                case let pool as MaxPool2d:
                    let g = pool.geometry
                    current = add("MaxPool", [current], attributes: poolingAttributes(g) + [
                        intsAttribute("dilations", [g.dilationHeight, g.dilationWidth]),
                    ])
                case let pool as AvgPool2d:
                    current = add("AveragePool", [current], attributes: poolingAttributes(pool.geometry) + [
                        intAttribute("count_include_pad", pool.countIncludePad ? 1 : 0),
                    ])
                case is GlobalAvgPool:
                    current = add("Flatten", [add("GlobalAveragePool", [current])], attributes: [intAttribute("axis", 1)])
                case let norm as BatchNormalization:
                    let c = norm.featureCount
                    let scale = constant("\(name).weight", norm.weight?.value.scalars ?? [Float](repeating: 1, count: c), dims: [c])
                    let shift = constant("\(name).bias", norm.bias?.value.scalars ?? [Float](repeating: 0, count: c), dims: [c])
                    let mean = constant("\(name).running_mean", norm.runningMean.value.scalars, dims: [c])
                    let variance = constant("\(name).running_var", norm.runningVariance.value.scalars, dims: [c])
                    current = add("BatchNormalization", [current, scale, shift, mean, variance], attributes: [
                        floatAttribute("epsilon", norm.epsilon), floatAttribute("momentum", 1 - norm.momentum),
                    ])
                case let block as Residual:
                    let main = try emit(block.body.layers, prefix: "\(name).body.", from: current, top: false)
                    let side = try block.shortcut.map { try emit($0.layers, prefix: "\(name).shortcut.", from: current, top: false) } ?? current
                    current = add("Add", [main, side])
                default:
                    throw ExportError("\(source): layer '\(layer.layerDescription.kind)' (\(name)) has no ONNX export")
                }
            }
            return current
        }
        current = try emit(checkpoint.model.layers, prefix: "", from: current, top: true)
        // The last node's output is renamed `logits`.
        if let last = graph.node.indices.last, graph.node[last].output == [current] {
            graph.node[last].output = ["logits"]
        } else {
            current = add("Identity", [current], output: "logits")
        }
        graph.output = [valueInfo("logits", dims: ["batch", .fixed(classes)])]
        if options.probabilities {
            _ = add("Softmax", ["logits"], output: "probabilities", attributes: [intAttribute("axis", 1)])
            graph.output.append(valueInfo("probabilities", dims: ["batch", .fixed(classes)]))
        }
        var model = Onnx_ModelProto()
        model.irVersion = irVersion
        model.producerName = "SwiftDistill"
        model.producerVersion = "1"
        model.domain = "swiftdistill"
        model.modelVersion = 1
        model.docString = "exported by distill export from \(URL(fileURLWithPath: source).lastPathComponent)"
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = opset_
        model.opsetImport = [opset]
        model.graph = graph
        var props: [(String, String)] = []
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        props.append(("model_description", String(decoding: try encoder.encode(description), as: UTF8.self)))
        props.append(("classes", String(classes)))
        if let names = data?.class_names { props.append(("class_names", String(decoding: try encoder.encode(names), as: UTF8.self))) }
        for key in ["data", "training", "distillation", "teacher_identity", "test_errors", "role", "blas", "input_kernels"] {
            if let value = checkpoint.metadata[key] { props.append((key, value)) }
        }
        model.metadataProps = props.map { key, value in
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = value
            return entry
        }
        return try model.serializedData()
    }

    static let opset_ = opset

    enum Dimension: ExpressibleByStringLiteral {
        case fixed(Int)
        case named(String)
        init(stringLiteral value: String) { self = .named(value) }
    }

    static func valueInfo(_ name: String, dims: [Dimension]) -> Onnx_ValueInfoProto {
        var info = Onnx_ValueInfoProto()
        info.name = name
        var tensor = Onnx_TypeProto.Tensor()
        tensor.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            switch d {
            case let .fixed(v): dim.dimValue = Int64(v)
            case let .named(n): dim.dimParam = n
            }
            return dim
        }
        tensor.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensor
        info.type = type
        return info
    }

    /// `kernel_shape`, `strides` and `pads` of a pooling window (`ceil_mode` 0, ONNX's default and PyTorch's).
    static func poolingAttributes(_ g: PoolingGeometry) -> [Onnx_AttributeProto] {
        [intsAttribute("kernel_shape", [g.kernelHeight, g.kernelWidth]), intsAttribute("strides", [g.strideHeight, g.strideWidth]),
         intsAttribute("pads", [g.paddingHeight, g.paddingWidth, g.paddingHeight, g.paddingWidth])]
    }

    static func intsAttribute(_ name: String, _ values: [Int]) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .ints
        a.ints = values.map(Int64.init)
        return a
    }

    static func floatAttribute(_ name: String, _ value: Float) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .float
        a.f = value
        return a
    }

    static func intAttribute(_ name: String, _ value: Int) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        a.type = .int
        a.i = Int64(value)
        return a
    }
}

public struct ExportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
