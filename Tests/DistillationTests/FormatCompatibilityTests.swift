import Checkpoints
import Distillation
import Foundation
import NeuralNet
import Optimizers
import XCTest

/// Files written before the model description and the configuration by concern still load: format-1 model files
/// (the committed `swift_student.safetensors`, written by that code) and the flat training configuration that
/// format-1 model files and state files carry.
final class FormatCompatibilityTests: XCTestCase {
    func fixture(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures"))
    }

    func testFormat1ModelFileLoadsWithItsDescriptionAndConfiguration() throws {
        let checkpoint = try ModelCheckpoint.read(url: try fixture("swift_student"))
        XCTAssertEqual(checkpoint.metadata["format"], ModelCheckpoint.formatVersion1)
        XCTAssertEqual(checkpoint.description, ModelDescription(inputShape: [784], specifications: [
            .dropout(probability: 0.2), .linear(inputCount: 784, outputCount: 32), .relu, .dropout(probability: 0.5),
            .linear(inputCount: 32, outputCount: 10),
        ]))
        let training = try XCTUnwrap(checkpoint.training, "the flat configuration decodes")
        XCTAssertEqual(training.model, .mlp(hidden: [32], inputDropout: 0.2, hiddenDropout: 0.5))
        XCTAssertEqual(training.optimizer.schedule, .constant)
        XCTAssertEqual(training.optimizer.learningRate, 0.05)
        XCTAssertEqual(training.data.batchSize, 16)
        XCTAssertEqual(training.runtime.threads, 1)
        XCTAssertEqual(training.runtime.inputKernels, .dense, "no inputKernels in the flat form: BLAS products")
        XCTAssertEqual(training.seed, 5)
        // Written again, it is a format-2 file with the same description and weights.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("format2-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try checkpoint.write(to: url, overwrite: false)
        let again = try ModelCheckpoint.read(url: url)
        XCTAssertEqual(again.metadata["format"], ModelCheckpoint.format)
        XCTAssertEqual(again.description, checkpoint.description)
        XCTAssertEqual(again.model.parameters.map(\.value), checkpoint.model.parameters.map(\.value))
    }

    /// The flat JSON of a state file's `training` (with the settings added later: kernels, BLAS, overlap, clipping)
    /// decodes to the configuration by concern, and that one round-trips in its own form.
    func testFlatConfigurationDecodes() throws {
        let flat = #"{"batchSize":128,"blas":"mkl","epochs":60,"gradientClip":5,"hidden":[1200,1200],"hiddenDropout":0.5,"inputDropout":0.2,"inputKernels":"sparse","jitter":2,"learningRate":0.1,"maxNorm":3.5,"momentum":0.9,"momentumRamp":{"epochs":10,"start":0.5},"nesterov":false,"optimizer":"sgd","overlapTeacher":false,"schedule":{"cosine":{"minimum":0,"totalEpochs":60}},"seed":3,"threads":2,"validationCount":5000,"weightDecay":0}"#
        let c = try JSONDecoder().decode(TrainingConfiguration.self, from: Data(flat.utf8))
        XCTAssertEqual(c.model, .mlp(hidden: [1200, 1200], inputDropout: 0.2, hiddenDropout: 0.5))
        XCTAssertEqual(c.optimizer.kind, .sgd)
        XCTAssertEqual(c.optimizer.maxNorm, 3.5)
        XCTAssertEqual(c.optimizer.gradientClip, 5)
        XCTAssertEqual(c.optimizer.momentumRamp, MomentumRamp(epochs: 10, start: 0.5))
        XCTAssertEqual(c.optimizer.schedule, .cosine(totalEpochs: 60, minimum: 0))
        XCTAssertEqual(c.data.jitter, 2)
        XCTAssertEqual(c.data.validationCount, 5000)
        XCTAssertEqual(c.runtime.blas, .mkl)
        XCTAssertEqual(c.runtime.inputKernels, .sparse)
        XCTAssertFalse(c.runtime.overlapTeacher)
        XCTAssertEqual(c.epochs, 60)
        XCTAssertEqual(c.seed, 3)
        let again = try JSONDecoder().decode(TrainingConfiguration.self, from: JSONEncoder().encode(c))
        XCTAssertEqual(again, c)
        // A flat form missing a required field is an error, not a silent default.
        let broken = flat.replacingOccurrences(of: #""learningRate":0.1,"#, with: "")
        XCTAssertThrowsError(try JSONDecoder().decode(TrainingConfiguration.self, from: Data(broken.utf8)))
    }
}
