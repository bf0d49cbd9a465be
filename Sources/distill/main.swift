import Foundation
import TensorCore
import NeuralNet
import Optimizers

// Temporary speed probe.
ComputeThreads.set(Int(CommandLine.arguments.dropFirst().first ?? "2") ?? 2)
var rng = RandomGenerator(seed: 0)
let hidden = Int(CommandLine.arguments.dropFirst(2).first ?? "800") ?? 800
let model = Sequential(specifications: [.linear(inputCount: 784, outputCount: hidden), .relu, .linear(inputCount: hidden, outputCount: hidden), .relu, .linear(inputCount: hidden, outputCount: 10)], generator: &rng)
let x = Tensor.uniform([60000, 784], low: 0, high: 1, generator: &rng)
let labels = (0..<60000).map { _ in rng.next(below: 10) }
let opt = SGD(learningRate: 0.05, momentum: 0.9)
var ctx = ForwardContext(training: true)
let params = model.parameters
for epoch in 0..<2 {
    let start = Date()
    var b = 0
    while b + 128 <= (ProcessInfo.processInfo.environment["PROBE_BATCHES"].flatMap { Int($0) }.map { $0 * 128 } ?? 60000) {
        let idx = Array(b..<(b + 128))
        let xb = x.rows(b..<(b + 128))
        model.zeroGradients()
        let loss = crossEntropy(logits: model(Variable(xb), context: &ctx), labels: idx.map { labels[$0] })
        loss.backward()
        opt.step(params)
        b += 128
    }
    print("epoch \(epoch): \(Date().timeIntervalSince(start)) s")
}
