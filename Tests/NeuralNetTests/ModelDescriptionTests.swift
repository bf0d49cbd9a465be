import Foundation
import NeuralNet
import TensorCore
import XCTest

/// The model description: JSON form, shape inference, validation naming the layer, and building networks that are
/// not MLP-shaped.
final class ModelDescriptionTests: XCTestCase {
    func mlp() -> ModelDescription {
        ModelDescription(inputShape: [784], specifications: [.dropout(probability: 0.2), .linear(inputCount: 784, outputCount: 32), .relu,
                                                               .linear(inputCount: 32, outputCount: 10)])
    }

    func testJSONIsFlatAndRoundTrips() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(mlp()), as: UTF8.self)
        XCTAssertEqual(json, #"{"inputShape":[784],"layers":[{"kind":"dropout","probability":0.2},{"inputCount":784,"kind":"linear","outputCount":32},{"kind":"relu"},{"inputCount":32,"kind":"linear","outputCount":10}]}"#)
        XCTAssertEqual(try JSONDecoder().decode(ModelDescription.self, from: Data(json.utf8)), mlp())
    }

    func testPlanGivesShapesAndStateDictNames() throws {
        let plan = try mlp().plan()
        XCTAssertEqual(plan.outputShape, [10])
        XCTAssertEqual(plan.parameterShapes.map(\.name), ["1.weight", "1.bias", "3.weight", "3.bias"])
        XCTAssertEqual(plan.parameterShapes.map(\.shape), [[32, 784], [32], [10, 32], [10]])
        XCTAssertEqual(plan.parameterCount, 32 * 784 + 32 + 10 * 32 + 10)
    }

    /// Built from a description, the network is the one `Sequential(specifications:)` makes from the same seed:
    /// same parameters, same outputs.
    func testBuildMatchesTheSpecificationShorthand() throws {
        var a = RandomGenerator(seed: 5), b = RandomGenerator(seed: 5)
        let built = try mlp().build(generator: &a)
        let shorthand = Sequential(specifications: [.dropout(probability: 0.2), .linear(inputCount: 784, outputCount: 32), .relu,
                                                    .linear(inputCount: 32, outputCount: 10)], generator: &b)
        XCTAssertEqual(built.parameters.map(\.value), shorthand.parameters.map(\.value))
        XCTAssertEqual(built.modelDescription, mlp())
        XCTAssertEqual(shorthand.modelDescription, mlp(), "the input shape is inferred through the dropout layer")
    }

    /// A network the MLP path never made: images in, a Flatten, an Identity between blocks, a nested block.
    func testNonMLPDescriptionBuildsAndRuns() throws {
        let description = ModelDescription(inputShape: [1, 4, 4], layers: [
            LayerDescription(kind: "flatten"),
            Sequential.description(layers: [Linear.description(inputCount: 16, outputCount: 8), LayerDescription(kind: "relu")]),
            LayerDescription(kind: "identity"),
            Linear.description(inputCount: 8, outputCount: 3),
        ])
        let plan = try description.plan()
        XCTAssertEqual(plan.outputShape, [3])
        XCTAssertEqual(plan.parameterShapes.map(\.name), ["1.0.weight", "1.0.bias", "3.weight", "3.bias"])
        var g = RandomGenerator(seed: 1)
        let model = try description.build(generator: &g)
        XCTAssertEqual(model.inputShape, [1, 4, 4])
        XCTAssertEqual(model.outputShape, [3])
        XCTAssertEqual(model.namedParameters.map(\.name), plan.parameterShapes.map(\.name))
        XCTAssertTrue(model.flattenedLayers.contains { $0 is Identity })
        let x = Tensor.uniform([2, 1, 4, 4], low: 0, high: 1, generator: &g)
        let y = model.infer(x)
        XCTAssertEqual(y.shape, [2, 3])
        // The same numbers as the layers applied by hand.
        let linears = model.flattenedLayers.compactMap { $0 as? Linear }
        let hidden = linears[0].infer(x.reshaped([2, 16])).relu()
        let expected = linears[1].infer(hidden)
        for (a, b) in zip(y.scalars, expected.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        XCTAssertEqual(model.modelDescription, description)
        // A training forward pass and its gradient reach every parameter.
        var context = ForwardContext(training: true)
        let out = model(Variable(x), context: &context)
        sum(sum(out, axis: 1), axis: 0).backward()
        XCTAssertTrue(model.parameters.allSatisfy { $0.grad != nil })
    }

    func testInvalidDescriptionsNameTheLayerAndSetting() {
        func message(_ d: ModelDescription) -> String {
            do { _ = try d.plan(); return "no error" } catch { return "\(error)" }
        }
        let chain = ModelDescription(inputShape: [784], specifications: [.linear(inputCount: 784, outputCount: 32), .relu,
                                                                         .linear(inputCount: 30, outputCount: 10)])
        XCTAssertEqual(message(chain), "layer 2: layer 'linear' (30 -> 10) needs input shape [30], got [32]")
        let images = ModelDescription(inputShape: [1, 28, 28], specifications: [.linear(inputCount: 784, outputCount: 10)])
        XCTAssertTrue(message(images).contains("needs input shape [784], got [1, 28, 28]"), message(images))
        let dropout = ModelDescription(inputShape: [4], specifications: [.dropout(probability: 1)])
        XCTAssertTrue(message(dropout).contains("'probability' must be in [0, 1)"), message(dropout))
        let unknown = ModelDescription(inputShape: [4], layers: [LayerDescription(kind: "conv9d")])
        XCTAssertTrue(message(unknown).contains("unknown layer kind 'conv9d'"), message(unknown))
        let misspelt = ModelDescription(inputShape: [4], layers: [LayerDescription(kind: "linear", settings: ["inputCount": .integer(4), "outputs": .integer(2)])])
        XCTAssertTrue(message(misspelt).contains("unknown setting 'outputs'"), message(misspelt))
        let negative = ModelDescription(inputShape: [4], layers: [Linear.description(inputCount: 4, outputCount: -2)])
        XCTAssertTrue(message(negative).contains("'outputCount' must be >= 1"), message(negative))
        let huge = ModelDescription(inputShape: [1 << 20], layers: [Linear.description(inputCount: 1 << 20, outputCount: 1 << 20)])
        XCTAssertTrue(message(huge).contains("too large"), message(huge))
        XCTAssertTrue(message(ModelDescription(inputShape: [], layers: [])).contains("input shape"))
    }

    /// Every registered kind has a distinct name and plans its own description.
    func testRegistry() throws {
        XCTAssertEqual(Set(LayerKinds.names).count, LayerKinds.all.count)
        XCTAssertEqual(try LayerKinds.kind(named: "linear").kind, "linear")
        XCTAssertThrowsError(try LayerKinds.kind(named: "nope"))
    }

    /// A model on rows `[784]` takes image batches `[B, 1, 28, 28]` (the same values, reshaped), in training and in
    /// evaluation, with the same results as on rows.
    func testShapedBatchesReachARowModel() throws {
        var g = RandomGenerator(seed: 2)
        let model = try mlp().build(generator: &g)
        let images = Tensor.uniform([3, 1, 28, 28], low: 0, high: 1, generator: &g)
        let rows = images.reshaped([3, 784])
        XCTAssertEqual(model.infer(images), model.infer(rows))
        var c1 = ForwardContext(training: true, generator: RandomGenerator(seed: 1))
        var c2 = ForwardContext(training: true, generator: RandomGenerator(seed: 1))
        XCTAssertEqual(model(Variable(images), context: &c1).value, model(Variable(rows), context: &c2).value)
    }
}
