import Distillation
import Foundation
import NeuralNet
import TensorCore
import TensorIO
import XCTest

/// Parity with PyTorch 2.13 (Fixtures/distillation_loss.safetensors, written by Scripts/make_distillation_fixtures.py
/// on branch helper-torch). Torch's loss uses kl_div (batchmean) * T^2; ours uses the soft cross-entropy, which
/// differs by the teacher entropy (no gradient), so values are compared through `parts.softKL` and gradients directly.
final class TorchParityTests: XCTestCase {
    // `DISTILL_BLAS=mkl swift test --filter ...` runs these on MKL (`.ci/run` does when MKL is installed).
    override func setUpWithError() throws { try BLASLibrary.select(try BLASLibrary.choiceFromEnvironment() ?? .openblas) }
    override func tearDown() { _ = try? BLASLibrary.select(.openblas) }

    struct Case: Decodable {
        let name: String, classes: Int, batch: Int, temperature: Float
        let hard_weight: Float, soft_weight: Float
    }

    func testMatchesPyTorch() throws {
        guard let url = Bundle.module.url(forResource: "distillation_loss", withExtension: "safetensors", subdirectory: "Fixtures") else {
            throw XCTSkip("Fixtures/distillation_loss.safetensors missing (produced on branch helper-torch)")
        }
        let file = try SafeTensors.read(url: url)
        let cases = try JSONDecoder().decode([Case].self, from: Data(file.metadata["cases"]!.utf8))
        XCTAssertEqual(cases.count, 6)
        var maxRelValue = 0.0, maxRelGrad = 0.0
        func scalar(_ name: String) throws -> Double { Double(try file.tensor(named: name).scalars[0]) }
        for c in cases {
            let z = try file.tensor(named: "\(c.name).student"), zt = try file.tensor(named: "\(c.name).teacher")
            let y = try file.integers(named: "\(c.name).labels")
            let t = Double(c.temperature)
            let config = DistillationLossConfiguration(temperature: c.temperature, hardWeight: c.hard_weight, softWeight: c.soft_weight)
            let student = Variable(z, requiresGrad: true)
            let (loss, parts) = distillationLoss(studentLogits: student, teacherLogits: zt, labels: y, configuration: config)
            loss.backward()
            // F64 expected values are read as Float by TensorIO; still ~1e-7 relative.
            let torchLoss = try scalar("\(c.name).loss")
            let ours = Double(c.hard_weight) * parts.hard + Double(c.soft_weight) * t * t * parts.softKL
            for (mine, theirs, what) in [(parts.hard, try scalar("\(c.name).hard"), "hard"),
                                         (parts.softKL, try scalar("\(c.name).soft_kl"), "soft_kl"),
                                         (parts.softCrossEntropy, try scalar("\(c.name).soft_ce"), "soft_ce"),
                                         (ours, torchLoss, "loss")] {
                let rel = abs(mine - theirs) / max(abs(theirs), 1e-6)
                maxRelValue = max(maxRelValue, rel)
                XCTAssertLessThan(rel, 1e-5, "\(c.name).\(what): \(mine) vs torch \(theirs)")
            }
            let expectedGrad = try file.tensor(named: "\(c.name).grad").scalars.map(Double.init)
            let grad = student.grad!.scalars.map(Double.init)
            let gradScale = expectedGrad.map(abs).max()!
            let diff = assertClose(grad, expectedGrad, absolute: 1e-5 * gradScale, "\(c.name).grad")
            maxRelGrad = max(maxRelGrad, diff / gradScale)

            // Soft-only gradient with T^2 (hard weight 0, soft weight 1).
            let softOnly = Variable(z, requiresGrad: true)
            distillationLoss(studentLogits: softOnly, teacherLogits: zt, labels: y,
                             configuration: DistillationLossConfiguration(temperature: c.temperature, hardWeight: 0, softWeight: 1)).loss.backward()
            let expectedSoft = try file.tensor(named: "\(c.name).grad_soft_scaled").scalars.map(Double.init)
            let softScale = expectedSoft.map(abs).max()!
            let softDiff = assertClose(softOnly.grad!.scalars.map(Double.init), expectedSoft, absolute: 1e-5 * softScale, "\(c.name).grad_soft_scaled")
            maxRelGrad = max(maxRelGrad, softDiff / softScale)
        }
        print("PyTorch parity: \(cases.count) cases, max relative value difference \(maxRelValue), max gradient difference / max |grad| \(maxRelGrad)")
    }
}
