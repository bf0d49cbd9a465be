import Experiments
import Datasets
import Distillation
import Foundation
import NeuralNet
import Optimizers
import TensorCore
import XCTest

/// The pieces the paper reproduction adds: the momentum ramp, the training-health measurement, the ensemble
/// experiment's arithmetic and the presets' plans.
final class ReproductionPiecesTests: XCTestCase {
    func testMomentumRampRisesLinearlyThenHolds() {
        let ramp = MomentumRamp(epochs: 4, start: 0.5)
        let values = (0..<7).map { ramp.momentum(epoch: $0, final: 0.9) }
        let expected: [Float] = [0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9]
        for (v, e) in zip(values, expected) { XCTAssertEqual(v, e, accuracy: 1e-6) }
        var c = TrainingConfiguration()
        c.optimizer.momentum = 0.99
        XCTAssertEqual(c.momentum(epoch: 3), 0.99)
        c.optimizer.momentumRamp = MomentumRamp(epochs: 10, start: 0.5)
        XCTAssertEqual(c.momentum(epoch: 0), 0.5)
        XCTAssertEqual(c.momentum(epoch: 5), 0.745, accuracy: 1e-6)
        XCTAssertEqual(c.momentum(epoch: 50), 0.99, accuracy: 1e-6)
    }

    func testMomentumRampValidation() {
        var c = TrainingConfiguration()
        c.optimizer.momentum = 0.9
        c.optimizer.momentumRamp = MomentumRamp(epochs: 0, start: 0.5)
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("epochs must be >= 1"), "\($0)") }
        c.optimizer.momentumRamp = MomentumRamp(epochs: 5, start: 0.95)
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("starting momentum"), "\($0)") }
        c.optimizer.momentumRamp = MomentumRamp(epochs: 5, start: .nan)
        XCTAssertThrowsError(try c.validate())
        c.optimizer.momentumRamp = MomentumRamp(epochs: 5, start: 0.5)
        c.optimizer.kind = .adam
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("optimizer.momentumRamp needs the SGD optimizer"), "\($0)") }
        c.optimizer.kind = .sgd
        XCTAssertNoThrow(try c.validate())
    }

    /// A small labelled problem (4 features, 3 classes).
    func problem(_ n: Int = 96) throws -> LabeledDataset {
        var g = RandomGenerator(seed: 11)
        let x = Tensor.normal([n, 4], standardDeviation: 1, generator: &g)
        let labels = (0..<n).map { i in x[i, 0] > 0.3 ? 0 : (x[i, 1] > 0 ? 1 : 2) }
        return try LabeledDataset(inputs: x, labels: labels, classCount: 3)
    }

    func train(_ c: TrainingConfiguration, _ data: LabeledDataset) throws -> [Float] {
        let trainer = try Trainer(configuration: c, train: data, validation: nil, objective: LabelObjective())
        try trainer.run()
        return trainer.model.parameters.flatMap(\.value.scalars)
    }

    /// The trainer uses the ramp: a ramp that starts at the final momentum is no ramp at all (same bits), and a real
    /// ramp changes the weights.
    func testTrainerAppliesTheRamp() throws {
        let data = try problem()
        var c = TrainingConfiguration()
        c.model = .mlp(hidden: [8])
        c.epochs = 3
        c.data.batchSize = 16
        c.optimizer.learningRate = 0.05
        c.optimizer.momentum = 0.9
        c.runtime.threads = 1
        let plain = try train(c, data)
        c.optimizer.momentumRamp = MomentumRamp(epochs: 2, start: 0.9)
        XCTAssertEqual(try train(c, data), plain)
        c.optimizer.momentumRamp = MomentumRamp(epochs: 2, start: 0.5)
        XCTAssertNotEqual(try train(c, data), plain)
    }

    func testHealthCountsDeadUnitsAndNorms() throws {
        var g = RandomGenerator(seed: 3)
        let model = Sequential(specifications: [.linear(inputCount: 2, outputCount: 3), .relu, .linear(inputCount: 3, outputCount: 2)],
                               generator: &g)
        let linears = model.flattenedLayers.compactMap { $0 as? Linear }
        let first = linears[0], last = linears[1]
        // Unit 0 follows x0, unit 1 is dead (negative weights and bias on non-negative inputs), unit 2 follows x1.
        first.weight.value = Tensor(shape: [3, 2], scalars: [1, 0, -1, -1, 0, 2])
        first.bias.value = Tensor([0, -1, 0])
        last.weight.value = Tensor(shape: [2, 3], scalars: [3, 0, 0, 0, 0, 4])
        last.bias.value = Tensor([0, 0])
        let inputs = Tensor(shape: [4, 2], scalars: [1, 0, 0, 1, 2, 2, 0, 0])
        let health = TrainingHealth.measure(model: model, inputs: inputs)
        XCTAssertEqual(health.sampleCount, 4)
        XCTAssertEqual(health.layers.count, 2)
        XCTAssertEqual(health.layers[0].deadUnits, 1)
        XCTAssertNil(health.layers[1].deadUnits, "no ReLU after the output layer")
        // Nonzero ReLU outputs: unit 0 on rows 0 and 2, unit 2 on rows 1 and 2: 4 of 12.
        XCTAssertEqual(try XCTUnwrap(health.layers[0].activeFraction), 4.0 / 12, accuracy: 1e-12)
        XCTAssertEqual(health.layers[0].weightNorm, (1.0 + 1 + 1 + 4).squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(health.layers[0].maxUnitNorm, 2, accuracy: 1e-9)
        XCTAssertEqual(health.layers[1].weightNorm, 5, accuracy: 1e-9)
        XCTAssertEqual(health.deadFraction, 1.0 / 3, accuracy: 1e-12)
        XCTAssertFalse(health.healthy, "a third of the hidden units dead is over the limit")
        first.bias.value = Tensor([0, 1, 0])
        let revived = TrainingHealth.measure(model: model, inputs: inputs)
        XCTAssertEqual(revived.deadFraction, 0)
        XCTAssertTrue(revived.healthy)
        // The JSON form carries the derived figures and decodes back to the measured ones.
        let object = revived.jsonObject()
        XCTAssertEqual(object["healthy"] as? Bool, true)
        XCTAssertEqual(object["dead_fraction"] as? Double, 0)
        let decoded = try JSONDecoder().decode(TrainingHealth.self, from: JSONEncoder().encode(revived))
        XCTAssertEqual(decoded, revived)
    }

    func testGainAndGapArithmetic() {
        XCTAssertEqual(EnsembleDistillation.gainKept(single: 150, ensemble: 130, distilled: 135), 0.75, accuracy: 1e-12)
        XCTAssertTrue(EnsembleDistillation.gainKept(single: 130, ensemble: 130, distilled: 120).isNaN)
        XCTAssertEqual(HintonMNIST.gapRecovered(teacher: 67, student: 146, distilled: 74), 72.0 / 79, accuracy: 1e-12)
        XCTAssertTrue(HintonMNIST.gapRecovered(teacher: 150, student: 146, distilled: 74).isNaN)
        // Member seeds are distinct across members and experiment seeds.
        let seeds = (0..<3).flatMap { s in (0..<10).map { EnsembleDistillation.memberSeed(experimentSeed: UInt64(s), member: $0) } }
        XCTAssertEqual(Set(seeds).count, seeds.count)
    }

    /// The paper preset trains on everything and reports final models; the quick one is a subset; all validate.
    func testPresetPlans() throws {
        let paper = HintonMNIST.plan(.paper)
        XCTAssertNil(paper.trainingSubset)
        XCTAssertEqual(paper.teacher.data.validationCount, 0)
        XCTAssertEqual(paper.distilled.data.validationCount, 0)
        XCTAssertEqual(paper.teacher.model.mlp?.hidden, [1200, 1200])
        XCTAssertEqual(paper.student.model.mlp?.hidden, [800, 800])
        XCTAssertEqual(paper.distilled.model.mlp?.hidden, [800, 800])
        XCTAssertEqual(paper.student.data.jitter, 0, "the label-only student is unregularised, as in the paper")
        XCTAssertEqual(paper.distilled.data.jitter, 0, "the distilled student's transfer set is the plain training images")
        XCTAssertEqual(paper.loss.temperature, 20)
        XCTAssertEqual(paper.augmentedDistilled.data.jitter, paper.augmentedTransfer)
        XCTAssertEqual(paper.augmentedStudent.epochs, paper.distilled.epochs)
        let quick = HintonMNIST.plan(.quick)
        XCTAssertEqual(quick.trainingSubset, 10_000)
        for plan in [paper, quick, HintonMNIST.plan(.full)] {
            for c in [plan.teacher, plan.student, plan.distilled, plan.augmentedStudent, plan.augmentedDistilled] {
                XCTAssertNoThrow(try c.validate())
            }
        }
        for preset in EnsembleDistillation.Preset.allCases {
            let plan = EnsembleDistillation.plan(preset)
            XCTAssertNoThrow(try plan.member.validate())
            XCTAssertNoThrow(try plan.distilled.validate())
            XCTAssertEqual(plan.member.model.mlp?.hidden, plan.distilled.model.mlp?.hidden, "the distilled model has the members' size")
        }
    }
}
