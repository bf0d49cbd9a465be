import Foundation
import XCTest
import TensorCore
import NeuralNet
import TensorIO

/// Residual blocks and whole presets (lenet5, resnet8 on 4 images 1x28x28) against PyTorch
/// (Scripts/make_cnn_fixtures.py): state-dict names, training- and evaluation-mode logits, the gradient of the
/// cross-entropy with respect to every parameter, and resnet8's running statistics after the training forward.
///
/// Tolerances (relative to the expected tensor's largest magnitude): outputs 1e-5, gradients 1e-4.
final class CNNModelParityTests: XCTestCase {
    override func setUpWithError() throws { try BLASLibrary.select(try BLASLibrary.choiceFromEnvironment() ?? .openblas) }
    override func tearDown() {
        _ = try? BLASLibrary.select(.openblas)
        ComputeThreads.set(1)
    }

    /// The fixture's state names under `prefix` (without it), sorted.
    func stateNames(_ prefix: String) throws -> [String] {
        try CNNFixture.file().names.filter { $0.hasPrefix(prefix + ".") }.map { String($0.dropFirst(prefix.count + 1)) }.sorted()
    }

    func testResidualBlocksMatchPyTorch() throws {
        var worst = (y: 0.0, grad: 0.0)
        for tag in try CNNFixture.tags("res_tags") {
            let p = "res.\(tag)"
            let xv = try CNNFixture.tensor("\(p).x")
            let block = try CNNFixture.build(p, inputShape: Array(xv.shape.dropFirst()), statePrefix: "\(p).state")
            XCTAssertEqual(block.namedState.map(\.name).sorted(), try stateNames("\(p).state"), "\(tag): state-dict names")
            let x = Variable(xv, requiresGrad: true)
            var context = ForwardContext(training: true)
            let y = block.forward(x, context: &context)
            worst.y = max(worst.y, assertClose(y.value, try CNNFixture.tensor("\(p).y"), 1e-5, "\(tag) output"))
            weightedSum(y, try CNNFixture.tensor("\(p).upstream")).backward()
            worst.grad = max(worst.grad, assertClose(x.grad, try CNNFixture.tensor("\(p).grad.x"), 1e-4, "\(tag) grad x"))
            for (name, parameter) in block.namedParameters {
                worst.grad = max(worst.grad, assertClose(parameter.grad, try CNNFixture.tensor("\(p).grad.\(name)"), 1e-4, "\(tag) grad \(name)"))
            }
        }
        print("residual parity (relative to max): output \(worst.y), gradients \(worst.grad)")
    }

    func checkModel(_ name: String, threads: Int) throws {
        ComputeThreads.set(threads)
        let p = "model.\(name)"
        let description = try CNNFixture.model(p)
        XCTAssertEqual(description, try ModelPresets.description(named: name, inputShape: [1, 28, 28], classCount: 10),
                       "\(name): the fixture's description is not the preset's")
        var generator = RandomGenerator(seed: 1)
        let model = try description.build(generator: &generator)
        XCTAssertEqual(model.namedState.map(\.name).sorted(), try stateNames("\(p).state"), "\(name): state-dict names")
        for (stateName, variable) in model.namedState {
            let value = try CNNFixture.tensor("\(p).state.\(stateName)")
            XCTAssertEqual(value.shape, variable.shape, "\(name) \(stateName)")
            variable.value = value
        }
        // PyTorch's parameter count (the gradients' elements) and the documented one.
        var torchCount = 0
        for (parameterName, _) in model.namedParameters { torchCount += try CNNFixture.tensor("\(p).grad.\(parameterName)").count }
        XCTAssertEqual(model.parameterCount, torchCount, "\(name) parameter count")
        XCTAssertEqual(model.parameterCount, ["lenet5": 61_706, "resnet8": 77_754][name], "\(name) parameter count (ModelPresets documentation)")
        let xv = try CNNFixture.tensor("\(p).x")
        let labels = try CNNFixture.file().integers(named: "\(p).labels")

        let evalExpected = try CNNFixture.tensor("\(p).eval.logits")
        let evalError = assertClose(model.infer(xv), evalExpected, 1e-5, "\(name) eval logits (infer)")
        var evaluation = ForwardContext(training: false)
        assertClose(model.forward(Variable(xv), context: &evaluation).value, evalExpected, 1e-5, "\(name) eval logits (forward)")

        var training = ForwardContext(training: true)
        let logits = model.forward(Variable(xv), context: &training)
        let trainError = assertClose(logits.value, try CNNFixture.tensor("\(p).train.logits"), 1e-5, "\(name) train logits")
        let loss = crossEntropy(logits: logits, labels: labels)
        let expectedLoss = try CNNFixture.tensor("\(p).train.loss").scalars[0]
        XCTAssertEqual(loss.value.scalar, expectedLoss, accuracy: 1e-5 * max(1, abs(expectedLoss)), "\(name) loss")
        loss.backward()
        var gradError = 0.0
        for (parameterName, parameter) in model.namedParameters {
            gradError = max(gradError, assertClose(parameter.grad, try CNNFixture.tensor("\(p).grad.\(parameterName)"), 1e-4,
                                                   "\(name) grad \(parameterName)"))
        }
        var bufferError = 0.0
        for (bufferName, buffer) in model.namedBuffers where !bufferName.hasSuffix("num_batches_tracked") {
            bufferError = max(bufferError, assertClose(buffer.value, try CNNFixture.tensor("\(p).after.\(bufferName)"), 1e-5,
                                                       "\(name) \(bufferName) after the training forward"))
        }
        for (bufferName, buffer) in model.namedBuffers where bufferName.hasSuffix("num_batches_tracked") {
            XCTAssertEqual(buffer.value.scalar, 8, "\(name) \(bufferName): 7 + 1")
        }
        print("\(name) parity (\(threads) threads, relative to max): eval logits \(evalError), train logits \(trainError), loss \(abs(loss.value.scalar - expectedLoss)), parameter gradients \(gradError), running statistics \(bufferError)")
    }

    func testLeNet5MatchesPyTorch() throws {
        try checkModel("lenet5", threads: 1)
        try checkModel("lenet5", threads: 2)
    }

    func testResNet8MatchesPyTorch() throws {
        try checkModel("resnet8", threads: 1)
        try checkModel("resnet8", threads: 2)
    }

    /// One description using every layer kind (nested sequences, a residual block, batch norms with and without
    /// affine parameters): its state-dict names are the ones `Scripts/torch_models.py`'s `build` gives the same
    /// description in PyTorch (listed here as `state_dict().keys()` printed them).
    func testStateNamesOfEveryKindMatchTorchModules() throws {
        let json = """
        {"inputShape": [2, 8, 8], "layers": [
          {"kind": "identity"}, {"kind": "conv2d", "inChannels": 2, "outChannels": 4, "kernelSize": 3, "padding": 1, "groups": 2},
          {"kind": "batchNorm2d", "numFeatures": 4, "momentum": 0.2, "eps": 0.001}, {"kind": "dropout", "probability": 0.1},
          {"kind": "sequential", "layers": [{"kind": "relu"}, {"kind": "avgPool2d", "kernelSize": 2, "countIncludePad": false},
            {"kind": "residual", "body": [{"kind": "conv2d", "inChannels": 4, "outChannels": 4, "kernelSize": 1, "bias": false},
                                          {"kind": "batchNorm2d", "numFeatures": 4, "affine": false}]}]},
          {"kind": "maxPool2d", "kernelSize": 2}, {"kind": "flatten"}, {"kind": "batchNorm1d", "numFeatures": 16},
          {"kind": "linear", "inputCount": 16, "outputCount": 3},
          {"kind": "sequential", "layers": [{"kind": "identity"}, {"kind": "linear", "inputCount": 3, "outputCount": 2}]},
          {"kind": "globalAvgPool"}]}
        """
        // The final globalAvgPool (it needs [channels, ...] input, the model ends in rows) only completes the kinds; it
        // is removed before planning.
        var description = try JSONDecoder().decode(ModelDescription.self, from: Data(json.utf8))
        func kinds(_ layers: [LayerDescription]) -> Set<String> {
            layers.reduce(into: Set<String>()) { result, layer in
                result.insert(layer.kind)
                for value in layer.settings.values { if case let .layers(inner) = value { result.formUnion(kinds(inner)) } }
            }
        }
        XCTAssertEqual(kinds(description.layers), Set(LayerKinds.names), "the description should use every layer kind")
        description.layers.removeLast()
        let torchNames = ["1.weight", "1.bias", "2.weight", "2.bias", "2.running_mean", "2.running_var", "2.num_batches_tracked",
                          "4.2.body.0.weight", "4.2.body.1.running_mean", "4.2.body.1.running_var", "4.2.body.1.num_batches_tracked",
                          "7.weight", "7.bias", "7.running_mean", "7.running_var", "7.num_batches_tracked", "8.weight", "8.bias",
                          "9.1.weight", "9.1.bias"]
        let plan = try description.plan()
        XCTAssertEqual(plan.outputShape, [2])
        XCTAssertEqual((plan.parameterShapes + plan.bufferShapes).map(\.name).sorted(), torchNames.sorted())
        var generator = RandomGenerator(seed: 3)
        let model = try description.build(generator: &generator)
        XCTAssertEqual(model.namedState.map(\.name).sorted(), torchNames.sorted())
        var context = ForwardContext(training: true)
        XCTAssertEqual(model.forward(Variable(Tensor(shape: [3, 2, 8, 8], repeating: 0.5)), context: &context).shape, [3, 2])
    }
}
