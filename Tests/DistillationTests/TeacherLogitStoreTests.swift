import Datasets
import Distillation
import Foundation
import NeuralNet
import TensorCore
import TensorIO
import XCTest

final class TeacherLogitStoreTests: XCTestCase {
    let n = 37, classes = 5

    private func fixture() throws -> (dataset: LabeledDataset, teacher: ModelTeacher, directory: URL) {
        let dataset = try oneHotDataset(count: n, classes: classes, seed: 1)
        let teacher = ModelTeacher(model: oneLayerModel(inputs: n, classes: classes, seed: 2))
        return (dataset, teacher, try temporaryDirectory(self))
    }

    /// Shuffled batches: every example gets its own teacher row (row i of the store is example i, not batch row i).
    func testRoundTripAndLookupByExampleIndex() throws {
        let (dataset, teacher, dir) = try fixture()
        let url = dir.appendingPathComponent("teacher.safetensors")
        try TeacherLogitStore.write(teacher: teacher, dataset: dataset, to: url, batchSize: 8, overwrite: false)
        let store = try TeacherLogitStore.read(url: url)
        XCTAssertEqual(store.exampleCount, n)
        XCTAssertEqual(store.classCount, classes)
        XCTAssertEqual(store.teacherIdentity, teacher.identity)
        XCTAssertEqual(store.teacherIdentity, modelIdentity(teacher.model))
        XCTAssertNil(store.topK)
        try store.validate(against: dataset, jitter: 0, expectedTeacher: teacher.identity)

        let stored = StoredLogitsTeacher(store: store)
        var iterator = BatchIterator(dataset: dataset, batchSize: 8, shuffle: true, dropLast: false, generator: RandomGenerator(seed: 3))
        var seen = 0, shuffledAway = 0
        while let batch = iterator.next() {
            let online = try teacher.logits(batch: batch.inputs, indices: batch.indices)
            XCTAssertEqual(try stored.logits(batch: batch.inputs, indices: batch.indices), online)
            let soft = try stored.softTargets(batch: batch.inputs, indices: batch.indices, temperature: 4)
            let expected = try teacher.softTargets(batch: batch.inputs, indices: batch.indices, temperature: 4)
            assertClose(soft.scalars.map(Double.init), expected.scalars.map(Double.init), absolute: 1e-6)
            let byPosition = store.logits(indices: Array(seen..<(seen + batch.count)))
            if byPosition != online { shuffledAway += 1 }
            seen += batch.count
        }
        XCTAssertEqual(seen, n)
        XCTAssertGreaterThan(shuffledAway, 0, "the test data must make a lookup by batch position fail")
        XCTAssertThrowsError(try stored.logits(batch: Tensor.zeros([1, n]), indices: [n]))
        // No overwrite without permission.
        let message = thrownMessage { try TeacherLogitStore.write(teacher: teacher, dataset: dataset, to: url, overwrite: false) }
        XCTAssertTrue(message?.contains(url.path) ?? false, message ?? "no error")
    }

    func testRefusesOtherTeacherOtherDataAndJitter() throws {
        let (dataset, teacher, dir) = try fixture()
        let url = dir.appendingPathComponent("t.safetensors")
        try TeacherLogitStore.write(teacher: teacher, dataset: dataset, to: url, overwrite: false)
        let store = try TeacherLogitStore.read(url: url)
        let otherTeacher = ModelTeacher(model: oneLayerModel(inputs: n, classes: classes, seed: 99))
        XCTAssertNotEqual(otherTeacher.identity, teacher.identity)
        let m1 = thrownMessage { try store.validate(against: dataset, jitter: 0, expectedTeacher: otherTeacher.identity) }
        XCTAssertTrue(m1?.contains(url.path) == true && m1!.contains(otherTeacher.identity) && m1!.contains(teacher.identity), m1 ?? "accepted")

        var pixels = dataset.inputs
        pixels[flat: 0] = 0.5
        let otherData = try LabeledDataset(inputs: pixels, labels: dataset.labels, classCount: classes)
        let m2 = thrownMessage { try store.validate(against: otherData, jitter: 0, expectedTeacher: nil) }
        XCTAssertTrue(m2?.contains("fingerprint") == true && m2!.contains(otherData.fingerprint) && m2!.contains(url.path), m2 ?? "accepted")

        let m3 = thrownMessage { try store.validate(against: dataset, jitter: 2, expectedTeacher: nil) }
        XCTAssertTrue(m3?.contains("jitters its images by up to 2 px") == true && m3!.contains(url.path), m3 ?? "accepted")

        let fewer = dataset.subset(indices: Array(0..<10))
        let m4 = thrownMessage { try store.validate(against: fewer, jitter: 0, expectedTeacher: nil) }
        XCTAssertTrue(m4?.contains("expected 10 examples") == true && m4!.contains("found \(n)"), m4 ?? "accepted")

        let moreClasses = try LabeledDataset(inputs: dataset.inputs, labels: dataset.labels, classCount: classes + 1)
        let m5 = thrownMessage { try store.validate(against: moreClasses, jitter: 0, expectedTeacher: nil) }
        XCTAssertTrue(m5?.contains("expected \(classes + 1) classes") == true, m5 ?? "accepted")
    }

    func testFloat16RoundTrip() throws {
        let (dataset, teacher, dir) = try fixture()
        let url = dir.appendingPathComponent("f16.safetensors")
        try TeacherLogitStore.write(teacher: teacher, dataset: dataset, to: url, dtype: .float16, overwrite: false)
        let store = try TeacherLogitStore.read(url: url)
        XCTAssertEqual(store.storageType, .float16)
        let file = try SafeTensors.read(url: url)
        XCTAssertEqual(try file.info(named: "logits").dtype, .f16)
        let all = Array(0..<n)
        let exact = try teacher.logits(batch: dataset.inputs, indices: all).scalars.map(Double.init)
        let half = store.logits(indices: all).scalars.map(Double.init)
        assertClose(half, exact, absolute: 1e-3, relative: 1e-3, "float16 store")
    }

    func testTopKStore() throws {
        let (dataset, teacher, dir) = try fixture()
        let url = dir.appendingPathComponent("top2.safetensors")
        try TeacherLogitStore.write(teacher: teacher, dataset: dataset, to: url, topK: 2, overwrite: false)
        let store = try TeacherLogitStore.read(url: url)
        XCTAssertEqual(store.topK, 2)
        let all = Array(0..<n)
        let full = try teacher.logits(batch: dataset.inputs, indices: all)
        let soft = store.softTargets(indices: all, temperature: 2)
        for i in 0..<n {
            let row = (0..<classes).map { full[i, $0] }
            let top = (0..<classes).sorted { row[$0] > row[$1] }.prefix(2)
            let e = top.map { Foundation.exp(Double(row[$0]) / 2) }
            for j in 0..<classes {
                let expected = top.contains(j) ? Foundation.exp(Double(row[j]) / 2) / e.reduce(0, +) : 0
                XCTAssertEqual(Double(soft[i, j]), expected, accuracy: 1e-6, "example \(i) class \(j)")
            }
        }
        for k in [0, classes + 1] {
            let m = thrownMessage { try TeacherLogitStore.write(teacher: teacher, dataset: dataset, to: url, topK: k, overwrite: true) }
            XCTAssertTrue(m?.contains("store.topK must be in 1...\(classes) (the classes), got \(k)") ?? false, m ?? "accepted")
        }
    }

    func testCorruptedStoresNameTheFile() throws {
        let (dataset, teacher, dir) = try fixture()
        let url = dir.appendingPathComponent("good.safetensors")
        try TeacherLogitStore.write(teacher: teacher, dataset: dataset, to: url, overwrite: false)
        let bytes = try Data(contentsOf: url)

        let truncated = dir.appendingPathComponent("truncated.safetensors")
        try bytes.prefix(bytes.count - 7).write(to: truncated)
        let missing = dir.appendingPathComponent("missing.safetensors")
        let noStamp = dir.appendingPathComponent("nostamp.safetensors")
        try SafeTensors.write(tensors: [(name: "logits", tensor: Tensor.zeros([n, classes]), dtype: .f32)], to: noStamp, overwrite: false)
        let good = try SafeTensors.read(url: url).metadata
        let wrongShape = dir.appendingPathComponent("shape.safetensors")
        try SafeTensors.write(tensors: [(name: "logits", tensor: Tensor.zeros([n, classes + 1]), dtype: .f32)], metadata: good, to: wrongShape, overwrite: false)
        var topMeta = good
        topMeta["top_k"] = "2"
        let badIndex = dir.appendingPathComponent("index.safetensors")
        try SafeTensors.write([.tensor("topk_values", Tensor.zeros([n, 2])),
                               .integers("topk_indices", (0..<(2 * n - 1)).map { $0 % 2 } + [classes], shape: [n, 2])],
                              metadata: topMeta, to: badIndex, overwrite: false)
        var badCount = good
        badCount["example_count"] = "many"
        let badMeta = dir.appendingPathComponent("meta.safetensors")
        try SafeTensors.write(tensors: [(name: "logits", tensor: Tensor.zeros([n, classes]), dtype: .f32)], metadata: badCount, to: badMeta, overwrite: false)

        for (file, needle) in [(truncated, "data region"), (missing, "cannot read"), (noStamp, "format missing"), (wrongShape, "shape"),
                               (badIndex, "out of range"), (badMeta, "example_count")] {
            let m = thrownMessage { _ = try TeacherLogitStore.read(url: file) }
            XCTAssertNotNil(m, "\(file.lastPathComponent) accepted")
            XCTAssertTrue(m?.contains(file.path) ?? false, "\(file.lastPathComponent): \(m ?? "")")
            XCTAssertTrue(m?.contains(needle) ?? false, "\(file.lastPathComponent): \(m ?? "")")
            XCTAssertEqual(m?.contains("\n"), false)
        }
    }
}
