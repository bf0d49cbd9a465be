import XCTest
import TensorCore
import NeuralNet

/// A steady-state training step must not allocate from the system: every tensor comes from the buffer pool.
final class BufferReuseTests: XCTestCase {
    func testSteadyStateStepDoesNotAllocate() {
        var rng = RandomGenerator(seed: 31)
        let model = Sequential(specifications: [.dropout(probability: 0.2), .linear(inputCount: 64, outputCount: 96), .relu,
                                                .dropout(probability: 0.5), .linear(inputCount: 96, outputCount: 96), .relu,
                                                .linear(inputCount: 96, outputCount: 10)], generator: &rng)
        let x = Tensor.normal([32, 64], generator: &rng)
        let labels = (0..<32).map { $0 % 10 }
        var context = ForwardContext(training: true, generator: RandomGenerator(seed: 32))
        var momentum: [Tensor] = model.parameters.map { Tensor(shape: $0.value.shape, repeating: 0) }
        func step() {
            model.zeroGradients()
            let loss = crossEntropy(logits: model(Variable(x), context: &context), labels: labels)
            loss.backward()
            for (i, p) in model.parameters.enumerated() {
                guard let g = p.grad else { continue }
                momentum[i] *= 0.9
                momentum[i].addScaled(g, by: 1)
                p.value.addScaled(momentum[i], by: -0.01)
            }
        }
        step()
        step()
        let before = BufferPool.shared.systemAllocations
        for _ in 0..<5 { step() }
        XCTAssertEqual(BufferPool.shared.systemAllocations, before, "steady-state steps allocated from the system")
    }
}
