import Datasets
import Distillation
import Foundation
import NeuralNet
import TensorCore
import XCTest

/// A teacher that records the example indices it is asked for and returns uniform soft targets.
final class RecordingTeacher: Teacher {
    var requests: [[Int]] = []
    let classCount: Int
    var identity: String { "recording" }
    init(classCount: Int) { self.classCount = classCount }
    func softTargets(batch images: Tensor, indices: [Int], temperature: Float) throws -> Tensor {
        requests.append(indices)
        return Tensor(shape: [indices.count, classCount], repeating: 1 / Float(classCount))
    }
    func logits(batch images: Tensor, indices: [Int]) throws -> Tensor {
        requests.append(indices)
        return Tensor(shape: [indices.count, classCount], repeating: 0)
    }
}

/// `DistillationObjective(exampleIndices:)` maps batch positions (in the training subset) to rows of the teacher
/// (the full dataset a store was written for).
final class DistillObjectiveIndexTests: XCTestCase {
    let loss = DistillationLossConfiguration(temperature: 3, hardWeight: 0.5, softWeight: 0.5)

    func split(_ data: LabeledDataset) throws -> (train: LabeledDataset, indices: [Int]) {
        var configuration = TrainingConfiguration()
        configuration.data.validationCount = 7
        configuration.seed = 3
        let (train, _, indices) = try TrainingJob.split(data, configuration: configuration)
        return (train, try XCTUnwrap(indices))
    }

    func testObjectiveMapsBatchIndicesThroughTheMap() throws {
        let data = try oneHotDataset(count: 24, classes: 4, seed: 1)
        let (train, map) = try split(data)
        let teacher = RecordingTeacher(classCount: 4)
        let objective = try DistillationObjective(teacher: teacher, loss: loss, exampleIndices: map)
        var iterator = BatchIterator(dataset: train, batchSize: 5, shuffle: true, dropLast: false,
                                     generator: RandomGenerator(seed: 9))
        var seen: [Int] = []
        while let batch = iterator.next() {
            let student = Variable(randomLogits(batch.count, 4, seed: UInt64(seen.count)), requiresGrad: true)
            _ = try objective.loss(studentLogits: student, batch: batch, inputs: batch.inputs)
            let asked = try XCTUnwrap(teacher.requests.last)
            XCTAssertEqual(asked, batch.indices.map { map[$0] })
            XCTAssertEqual(asked.map { data.labels[$0] }, batch.labels, "the mapped rows are the batch's examples")
            seen += asked
        }
        XCTAssertEqual(Set(seen), Set(map), "one epoch asks for every training example's row once")
        XCTAssertEqual(seen.count, map.count)
        // Without a map the batch positions are passed through unchanged.
        let plain = try DistillationObjective(teacher: teacher, loss: loss)
        var firstBatches = BatchIterator(dataset: train, batchSize: 6, shuffle: false, dropLast: false, generator: RandomGenerator(seed: 0))
        let batch = try XCTUnwrap(firstBatches.next())
        _ = try plain.loss(studentLogits: Variable(randomLogits(6, 4, seed: 5)), batch: batch, inputs: batch.inputs)
        XCTAssertEqual(teacher.requests.last, Array(0..<6))
    }

    /// A store written over the full dataset, used on a subset with the map, gives exactly the loss of the model
    /// teacher run online on the subset's images; without the map it gives other (wrong) rows.
    func testStoredLogitsThroughTheMapMatchTheOnlineTeacher() throws {
        let data = try oneHotDataset(count: 24, classes: 4, seed: 2)
        let modelTeacher = ModelTeacher(model: oneLayerModel(inputs: 24, classes: 4, seed: 4))
        let url = try temporaryDirectory(self).appendingPathComponent("store.safetensors")
        try TeacherLogitStore.write(teacher: modelTeacher, dataset: data, to: url, overwrite: false)
        let stored = StoredLogitsTeacher(store: try TeacherLogitStore.read(url: url))
        let (train, map) = try split(data)
        let online = try DistillationObjective(teacher: modelTeacher, loss: loss)
        let mapped = try DistillationObjective(teacher: stored, loss: loss, exampleIndices: map)
        let unmapped = try DistillationObjective(teacher: stored, loss: loss)
        var iterator = BatchIterator(dataset: train, batchSize: 8, shuffle: true, dropLast: false,
                                     generator: RandomGenerator(seed: 11))
        var differs = false
        while let batch = iterator.next() {
            let logits = randomLogits(batch.count, 4, seed: 6)
            let expected = try online.loss(studentLogits: Variable(logits), batch: batch, inputs: batch.inputs)
            let got = try mapped.loss(studentLogits: Variable(logits), batch: batch, inputs: batch.inputs)
            XCTAssertEqual(got.loss.value.scalars[0], expected.loss.value.scalars[0], accuracy: 1e-5)
            for key in expected.parts.keys { XCTAssertEqual(got.parts[key]!, expected.parts[key]!, accuracy: 1e-5, key) }
            let wrong = try unmapped.loss(studentLogits: Variable(logits), batch: batch, inputs: batch.inputs)
            if abs(wrong.loss.value.scalars[0] - expected.loss.value.scalars[0]) > 1e-3 { differs = true }
        }
        XCTAssertTrue(differs, "without the map the store's rows are the wrong examples")
        // A map pointing past the store is an error naming the store, not a trap.
        let bad = try DistillationObjective(teacher: stored, loss: loss, exampleIndices: map.map { $0 + 100 })
        var firstBatches = BatchIterator(dataset: train, batchSize: 4, shuffle: false, dropLast: false, generator: RandomGenerator(seed: 0))
        let batch = try XCTUnwrap(firstBatches.next())
        let message = thrownMessage { _ = try bad.loss(studentLogits: Variable(randomLogits(4, 4, seed: 1)), batch: batch, inputs: batch.inputs) }
        XCTAssertTrue(message?.contains("store.safetensors") ?? false, message ?? "did not throw")
    }
}
