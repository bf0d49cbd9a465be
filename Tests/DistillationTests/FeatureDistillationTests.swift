import XCTest
import Foundation
import TensorCore
import NeuralNet
import Datasets
import Distillation

/// Feature distillation and decoupled KD in training: layer capture, the objective's checks, and exact resume of a
/// convolutional student (batch-norm buffers and a FitNets regressor included).
final class FeatureDistillationTests: XCTestCase {
    /// A tiny CNN on 1x8x8 images: conv - BN - ReLU (3 ch, 8x8) - max pool (4x4) - residual block - ReLU - global
    /// pooling - linear.
    static func smallCNN(classes: Int = 4, width: Int = 3) -> ModelDescription {
        ModelDescription(inputShape: [1, 8, 8], layers: [
            Conv2d.description(inChannels: 1, outChannels: width, kernelSize: 3, padding: 1, bias: false),
            BatchNorm2d.description(numFeatures: width),
            LayerDescription(kind: ReLU.kind),
            MaxPool2d.description(kernelSize: 2),
            Residual.description(body: [
                Conv2d.description(inChannels: width, outChannels: width, kernelSize: 3, padding: 1, bias: false),
                BatchNorm2d.description(numFeatures: width),
            ]),
            LayerDescription(kind: ReLU.kind),
            LayerDescription(kind: GlobalAvgPool.kind),
            Linear.description(inputCount: width, outputCount: classes),
        ])
    }

    static func images(count: Int, classes: Int = 4, seed: UInt64 = 3) throws -> LabeledDataset {
        var g = RandomGenerator(seed: seed)
        var values: [Float] = []
        var labels: [Int] = []
        for _ in 0..<count {
            let label = Int(g.nextUInt64() % UInt64(classes))
            labels.append(label)
            for j in 0..<64 { values.append(g.uniform() * 0.5 + ((j / 8 + j % 8) % classes == label ? 0.6 : 0)) }
        }
        return try LabeledDataset(inputs: Tensor(shape: [count, 64], scalars: values), labels: labels, classCount: classes,
                                  sampleShape: [1, 8, 8])
    }

    func testCapturedOutputsEqualThePrefixes() throws {
        var g = RandomGenerator(seed: 5)
        let description = Self.smallCNN()
        let model = try description.build(generator: &g)
        let x = try Self.images(count: 5).inputs(rows: 0..<5).reshaped([5, 1, 8, 8])
        var context = ForwardContext(training: false)
        let plain = model.forward(Variable(x), context: &context).value
        let (output, captured) = model.forward(Variable(x), context: &context, capturing: [2, 5, 6])
        XCTAssertEqual(output.value, plain)
        let (inferred, inferredCaptured) = model.infer(x, capturing: [2, 5, 6])
        XCTAssertEqual(inferred, model.infer(x))
        for index in [2, 5, 6] {
            // The first index + 1 layers as a model of their own, same weights. Evaluation (`infer`) folds batch
            // norms into the convolutions before them, so it equals the graph's forward pass up to rounding.
            let prefix = Sequential(Array(model.layers[...index]), inputShape: [1, 8, 8])
            let expected = prefix.infer(x)
            XCTAssertEqual(inferredCaptured[index], expected, "layer \(index)")
            let graph = try XCTUnwrap(captured[index]?.value)
            XCTAssertEqual(graph.shape, expected.shape)
            for (a, b) in zip(graph.scalars, expected.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5, "layer \(index)") }
        }
        XCTAssertEqual(model.layerOutputShapes ?? [], try description.layerOutputShapes())
        XCTAssertEqual(try description.layerOutputShapes()[5], [3, 4, 4])
    }

    func testObjectiveRefusesPairingsThatDoNotFit() throws {
        var g = RandomGenerator(seed: 1)
        let teacher = ModelTeacher(model: try Self.smallCNN(width: 5).build(generator: &g))
        let student = Self.smallCNN()
        let loss = DistillationLossConfiguration(temperature: 4, hardWeight: 1, softWeight: 0)
        func message(_ terms: [FeatureTerm], teacher t: Teacher? = nil) -> String {
            do {
                _ = try FeatureDistillationObjective(teacher: t ?? teacher, loss: loss, terms: terms, studentDescription: student)
                return "accepted"
            } catch { return "\(error)" }
        }
        XCTAssertTrue(message([FeatureTerm(kind: .hint, studentLayer: 9, teacherLayer: 2, weight: 1)]).contains("the student has layers 0...7"))
        XCTAssertTrue(message([FeatureTerm(kind: .hint, studentLayer: 2, teacherLayer: 8, weight: 1)]).contains("the teacher has layers 0...7"))
        // 8x8 maps against 4x4 maps.
        XCTAssertTrue(message([FeatureTerm(kind: .attention, studentLayer: 2, teacherLayer: 5, weight: 1)]).contains("same height and width"))
        XCTAssertTrue(message([FeatureTerm(kind: .attention, studentLayer: 6, teacherLayer: 6, weight: 1)]).contains("same height and width"))
        XCTAssertEqual(message([FeatureTerm(kind: .attention, studentLayer: 2, teacherLayer: 2, weight: 1),
                                FeatureTerm(kind: .hint, studentLayer: 6, teacherLayer: 5, weight: 1)]), "accepted")
        let ensemble = try EnsembleTeacher(members: [teacher, teacher], combination: .meanProbabilities)
        XCTAssertTrue(message([FeatureTerm(kind: .hint, studentLayer: 2, teacherLayer: 2, weight: 1)], teacher: ensemble)
            .contains("needs one teacher model file"))
        // The regressors: a 1x1 convolution between maps of equal size (3 -> 5 channels), a linear layer from a flat
        // student layer.
        let objective = try FeatureDistillationObjective(
            teacher: teacher, loss: loss,
            terms: [FeatureTerm(kind: .hint, studentLayer: 2, teacherLayer: 2, weight: 1),
                    FeatureTerm(kind: .hint, studentLayer: 6, teacherLayer: 5, weight: 1)],
            studentDescription: student)
        XCTAssertEqual(objective.namedParameters.map(\.name), ["regressor0.weight", "regressor0.bias", "regressor1.weight", "regressor1.bias"])
        XCTAssertEqual(objective.namedParameters.map(\.parameter.shape), [[5, 3, 1, 1], [5], [80, 3], [80]])
    }

    func testFeatureDistillationTrainsAndResumesBitForBit() throws {
        let data = try Self.images(count: 45)
        var g = RandomGenerator(seed: 9)
        let teacher = ModelTeacher(model: try Self.smallCNN(width: 5).build(generator: &g))
        var configuration = TrainingConfiguration()
        configuration.model = ModelConfiguration(architecture: .described(Self.smallCNN()))
        configuration.epochs = 2
        configuration.data.batchSize = 8
        configuration.data.jitter = 1
        configuration.optimizer.learningRate = 0.05
        configuration.seed = 11
        configuration.runtime.threads = 1
        let terms = [FeatureTerm(kind: .hint, studentLayer: 2, teacherLayer: 2, weight: 1),
                     FeatureTerm(kind: .attention, studentLayer: 5, teacherLayer: 5, weight: 10),
                     FeatureTerm(kind: .similarity, studentLayer: 6, teacherLayer: 3, weight: 30)]
        let loss = DistillationLossConfiguration(temperature: 4, hardWeight: 1, softWeight: 0)
        func objective() throws -> FeatureDistillationObjective {
            try FeatureDistillationObjective(teacher: teacher, loss: loss, decoupled: DecoupledKDWeights(alpha: 1, beta: 2),
                                             terms: terms, studentDescription: Self.smallCNN(), seed: 11)
        }
        let quiet = ProgressReporter(enabled: false)
        let objectiveA = try objective()
        let initialRegressor = objectiveA.namedParameters[0].parameter.value
        let a = try Trainer(configuration: configuration, train: data, validation: nil, objective: objectiveA, progress: quiet)
        let report = try a.run()
        XCTAssertEqual(Set(report.epochs[0].lossParts.keys), ["hard", "tckd", "nckd", "hint0", "attention1", "similarity2"])
        XCTAssertNotEqual(objectiveA.namedParameters[0].parameter.value, initialRegressor, "the regressor is trained")
        XCTAssertNotEqual(a.model.namedBuffers.first { $0.name.hasSuffix("num_batches_tracked") }?.buffer.value.scalar, 0)

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("feature-resume-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let stateURL = dir.appendingPathComponent("student.safetensors.state")
        let b = try Trainer(configuration: configuration, train: data, validation: nil, objective: try objective(), progress: quiet)
        b.shouldStop = { [unowned b] in b.stepsTaken >= 4 }
        try b.run()
        XCTAssertTrue(b.stopped)
        try b.saveState(to: stateURL)
        let objectiveC = try objective()
        let c = try Trainer.resume(from: stateURL, configuration: configuration, train: data, validation: nil, objective: objectiveC,
                                   progress: quiet)
        try c.run()
        XCTAssertEqual(c.stepsTaken, a.stepsTaken - 4)
        for ((name, x), (_, y)) in zip(a.model.namedState, c.model.namedState) {
            XCTAssertEqual(x.value.scalars.map(\.bitPattern), y.value.scalars.map(\.bitPattern), name)
        }
        for ((name, x), (_, y)) in zip(objectiveA.namedParameters, objectiveC.namedParameters) {
            XCTAssertEqual(x.value.scalars.map(\.bitPattern), y.value.scalars.map(\.bitPattern), name)
        }
        // A state of another objective (no regressor) is refused, naming the objective.
        XCTAssertThrowsError(try Trainer.resume(from: stateURL, configuration: configuration, train: data, validation: nil,
                                                objective: LabelObjective(), progress: quiet)) { error in
            XCTAssertTrue("\(error)".contains("the objective differs"), "\(error)")
        }
    }

    /// DKD's warm-up (mdistiller's `min(epoch / warmup, 1)`, epochs from 1): the factor per epoch; in epoch e the loss
    /// equals the loss without warm-up at alpha and beta times the factor, bit for bit; the trainer sets the epoch,
    /// so a warmed-up run differs from one without, and resumes within an epoch of the warm-up bit for bit; files
    /// without the field read as no warm-up.
    func testDKDWarmUpScalesTheTermAndResumesBitForBit() throws {
        let weights = DecoupledKDWeights(alpha: 1, beta: 2, warmupEpochs: 3)
        XCTAssertEqual((0..<5).map { weights.warmupFactor(epoch: $0) }, [Float(1) / 3, Float(2) / 3, 1, 1, 1])
        XCTAssertEqual(DecoupledKDWeights(alpha: 1, beta: 2).warmupFactor(epoch: 0), 1)
        let old = try JSONDecoder().decode(DecoupledKDWeights.self, from: Data(#"{"alpha":1,"beta":8}"#.utf8))
        XCTAssertEqual(old, DecoupledKDWeights(alpha: 1, beta: 8, warmupEpochs: 0))

        let data = try Self.images(count: 45)
        var g = RandomGenerator(seed: 9)
        let teacher = ModelTeacher(model: try Self.smallCNN(width: 5).build(generator: &g))
        let loss = DistillationLossConfiguration(temperature: 4, hardWeight: 1, softWeight: 0)
        func objective(_ w: DecoupledKDWeights) throws -> FeatureDistillationObjective {
            try FeatureDistillationObjective(teacher: teacher, loss: loss, decoupled: w, studentDescription: Self.smallCNN(), seed: 11)
        }
        XCTAssertThrowsError(try objective(DecoupledKDWeights(alpha: 1, beta: 2, warmupEpochs: -1)))
        XCTAssertNotEqual(try objective(weights).identity, try objective(DecoupledKDWeights(alpha: 1, beta: 2)).identity)

        // The loss in each epoch against the unwarmed loss at scaled weights.
        let student = try Self.smallCNN().build(generator: &g)
        let inputs = Tensor(shape: [8, 1, 8, 8], scalars: Array(data.inputs.scalars[0..<(8 * 64)]))
        let batch = Batch(indices: Array(0..<8), inputs: inputs, labels: Array(data.labels[0..<8]))
        let warmed = try objective(weights)
        for epoch in 0..<4 {
            warmed.beginEpoch(epoch)
            let f = weights.warmupFactor(epoch: epoch)
            let plain = try objective(DecoupledKDWeights(alpha: 1 * f, beta: 2 * f))
            let logits = student.infer(inputs)
            let a = try warmed.loss(studentLogits: Variable(logits), batch: batch, inputs: inputs).loss.value.scalar
            let b = try plain.loss(studentLogits: Variable(logits), batch: batch, inputs: inputs).loss.value.scalar
            XCTAssertEqual(a.bitPattern, b.bitPattern, "epoch \(epoch)")
        }

        var configuration = TrainingConfiguration()
        configuration.model = ModelConfiguration(architecture: .described(Self.smallCNN()))
        configuration.epochs = 3
        configuration.data.batchSize = 8
        configuration.optimizer.learningRate = 0.05
        configuration.seed = 11
        configuration.runtime.threads = 1
        let quiet = ProgressReporter(enabled: false)
        let a = try Trainer(configuration: configuration, train: data, validation: nil, objective: try objective(weights), progress: quiet)
        try a.run()
        let none = try Trainer(configuration: configuration, train: data, validation: nil,
                               objective: try objective(DecoupledKDWeights(alpha: 1, beta: 2)), progress: quiet)
        try none.run()
        XCTAssertNotEqual(a.model.namedState.first?.variable.value.scalars, none.model.namedState.first?.variable.value.scalars,
                          "the warm-up changes training")

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dkd-warmup-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let stateURL = dir.appendingPathComponent("student.safetensors.state")
        let b = try Trainer(configuration: configuration, train: data, validation: nil, objective: try objective(weights), progress: quiet)
        b.shouldStop = { [unowned b] in b.stepsTaken >= 8 }   // within the second epoch (6 batches an epoch)
        try b.run()
        XCTAssertTrue(b.stopped)
        try b.saveState(to: stateURL)
        let c = try Trainer.resume(from: stateURL, configuration: configuration, train: data, validation: nil,
                                   objective: try objective(weights), progress: quiet)
        try c.run()
        for ((name, x), (_, y)) in zip(a.model.namedState, c.model.namedState) {
            XCTAssertEqual(x.value.scalars.map(\.bitPattern), y.value.scalars.map(\.bitPattern), name)
        }
    }
}

final class ChunkedInferenceTests: XCTestCase {
    /// A large batch of feature maps runs `spatialChunkRows` examples at a time: the result is the chunks' results
    /// stacked, bit for bit, and within rounding of the whole batch at once.
    func testLargeSpatialBatchesRunInChunks() throws {
        var g = RandomGenerator(seed: 4)
        let model = try FeatureDistillationTests.smallCNN().build(generator: &g)
        let x = try FeatureDistillationTests.images(count: 23).inputs(rows: 0..<23).reshaped([23, 1, 8, 8])
        let saved = Sequential.spatialChunkRows
        defer { Sequential.spatialChunkRows = saved }
        Sequential.spatialChunkRows = 1000
        let whole = model.infer(x)
        Sequential.spatialChunkRows = 10
        let chunked = model.infer(x)
        let stacked = Tensor(concatenatingRows: [model.infer(x.rows(0..<10)), model.infer(x.rows(10..<20)), model.infer(x.rows(20..<23))])
        XCTAssertEqual(chunked, stacked)
        XCTAssertEqual(chunked.shape, [23, 4])
        for (a, b) in zip(chunked.scalars, whole.scalars) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
    }
}
