import XCTest
import Distributed
import Distillation
import NeuralNet
import Optimizers
import TensorCore
import Datasets

/// Replays a two-process step in one process: rank 1's step runs first with a communicator that records what it
/// would send; rank 0's step then runs with one that adds those recordings (what MPI_Allreduce gives rank 0).
final class Recorder: Communicator {
    var floats: [[Float]] = []
    var doubles: [[Double]] = []
    var rank: Int { 1 }
    var size: Int { 2 }
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) { floats.append(Array(buffer)) }
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) { doubles.append(Array(buffer)) }
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {}
    func barrier() {}
    func abort(code: Int32) -> Never { fatalError("abort \(code)") }
}

final class Adder: Communicator {
    var floats: [[Float]], doubles: [[Double]]
    init(_ recorder: Recorder) { floats = recorder.floats; doubles = recorder.doubles }
    var rank: Int { 0 }
    var size: Int { 2 }
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) {
        let other = floats.removeFirst()
        for i in buffer.indices { buffer[i] += other[i] }
    }
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) {
        let other = doubles.removeFirst()
        for i in buffer.indices { buffer[i] += other[i] }
    }
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) {}
    func barrier() {}
    func abort(code: Int32) -> Never { fatalError("abort \(code)") }
}

final class DataParallelStepTests: XCTestCase {
    func testSingleProcessCollectivesChangeNothing() {
        let world = SingleProcess()
        var values: [Float] = [1, 2, 3]
        world.allreduceSum(&values)
        XCTAssertEqual(values, [1, 2, 3])
        XCTAssertTrue(world.isRoot)
        XCTAssertFalse(world.isDistributed)
    }

    func testWithoutMPIRunTheWorldIsOneProcess() throws {
        guard World.launched == nil else { throw XCTSkip("running under mpirun") }
        XCTAssertTrue(try World.start() is SingleProcess)
    }

    func testSlicesCoverTheBatchContiguously() {
        for total in [1, 5, 127, 128] {
            for parts in 1...4 where parts <= total {
                let slices = (0..<parts).map { BatchSlice(part: $0, of: parts, total: total) }
                XCTAssertEqual(slices.first?.offset, 0)
                XCTAssertEqual(slices.map(\.count).reduce(0, +), total)
                for (a, b) in zip(slices, slices.dropFirst()) { XCTAssertEqual(a.offset + a.count, b.offset) }
                XCTAssertLessThanOrEqual(slices.map(\.count).max()! - slices.map(\.count).min()!, 1)
            }
        }
    }

    /// Dropout on a slice keeps the rows of the whole batch's mask and advances the generator as the whole batch does.
    func testDropoutOnASliceIsTheWholeBatchMaskSliced() {
        let dropout = Dropout(probability: 0.5)
        let input = Variable(Tensor(shape: [7, 9], repeating: 1))
        var whole = ForwardContext(training: true, generator: RandomGenerator(seed: 3))
        let full = dropout.forward(input, context: &whole).value
        for part in 0..<3 {
            let slice = BatchSlice(part: part, of: 3, total: 7)
            var context = ForwardContext(training: true, generator: RandomGenerator(seed: 3))
            context.batchSlice = slice
            let rows = dropout.forward(Variable(input.value.rows(slice.range)), context: &context).value
            XCTAssertEqual(rows.scalars, full.rows(slice.range).scalars)
            XCTAssertEqual(context.generator.nextUInt64(), { var g = whole.generator; return g.nextUInt64() }())
        }
    }

    func makeStep(seed: UInt64) -> TrainingStep {
        var generator = RandomGenerator(seed: seed)
        let model = Sequential([Linear(inputCount: 6, outputCount: 16, generator: &generator), ReLU(), Dropout(probability: 0.3),
                                Linear(inputCount: 16, outputCount: 4, generator: &generator)])
        return TrainingStep(model: model, objective: LabelObjective(), optimizer: SGD(learningRate: 0.1, momentum: 0.9),
                            maxNorm: 2, gradientClip: 5)
    }

    /// Two processes' step equals one process's step on the whole batch up to float summation order, with the
    /// gradients in one bucket or in one bucket per parameter (sent during the backward pass, in bucket order).
    func testTwoSlicesGiveTheWholeBatchStep() throws {
        for capacity in [nil, 64] { try twoSlicesGiveTheWholeBatchStep(capacity: capacity) }
    }

    func twoSlicesGiveTheWholeBatchStep(capacity: Int?) throws {
        var data = RandomGenerator(seed: 11)
        let rows = 10
        let inputs = Tensor(shape: [rows, 6], scalars: (0..<rows * 6).map { _ in data.uniform() * 2 - 1 })
        let labels = (0..<rows).map { $0 % 4 }
        let batch = Batch(indices: Array(0..<rows), inputs: inputs, labels: labels)

        let single = makeStep(seed: 1)
        var context = ForwardContext(training: true, generator: RandomGenerator(seed: 9))
        let whole = try single(batch: batch, inputs: inputs, prepared: nil, context: &context)

        func part(_ index: Int) -> (Batch, Tensor, BatchSlice) {
            let slice = BatchSlice(part: index, of: 2, total: rows)
            return (Batch(indices: Array(slice.range), inputs: inputs.rows(slice.range), labels: Array(labels[slice.range])),
                    inputs.rows(slice.range), slice)
        }
        let recorder = Recorder()
        let (b1, x1, s1) = part(1)
        var context1 = ForwardContext(training: true, generator: RandomGenerator(seed: 9))
        let rank1 = makeStep(seed: 1)
        rank1.gradientBucketCapacity = capacity
        _ = try rank1.shared(batch: b1, inputs: x1, prepared: nil, slice: s1, communicator: recorder,
                             stopRequested: true, context: &context1)
        // Parameters W1 (384 bytes), b1 (64), W2 (256), b2 (16): one bucket each at 64 bytes, output layer's first.
        XCTAssertEqual(recorder.floats.map(\.count), capacity == nil ? [96 + 16 + 64 + 4] : [4, 64, 16, 96])
        let rank0 = makeStep(seed: 1)
        rank0.gradientBucketCapacity = capacity
        let (b0, x0, s0) = part(0)
        var context0 = ForwardContext(training: true, generator: RandomGenerator(seed: 9))
        let outcome = try rank0.shared(batch: b0, inputs: x0, prepared: nil, slice: s0, communicator: Adder(recorder),
                                       stopRequested: false, context: &context0)
        XCTAssertTrue(outcome.stop, "a stop asked by any rank stops all")
        XCTAssertEqual(Double(outcome.loss), Double(whole.loss), accuracy: 1e-6)
        XCTAssertEqual(outcome.parts["hard"] ?? .nan, whole.parts["hard"] ?? .nan, accuracy: 1e-6)
        var largest: Float = 0
        for (a, b) in zip(rank0.model.parameters, single.model.parameters) {
            for (x, y) in zip(a.value.scalars, b.value.scalars) { largest = max(largest, abs(x - y)) }
        }
        XCTAssertLessThan(largest, 1e-6)
        XCTAssertEqual(context0.generator.nextUInt64(), context.generator.nextUInt64())
    }

    /// The backward pass hands each parameter over once, as soon as its gradient is complete (the output layer's
    /// first), and the gradients equal those of a pass without the hook bit for bit.
    func testLeavesAreHandedOverAsSoonAsTheirGradientIsComplete() {
        var generator = RandomGenerator(seed: 3)
        let model = Sequential([Linear(inputCount: 5, outputCount: 7, generator: &generator), ReLU(),
                                Linear(inputCount: 7, outputCount: 7, generator: &generator), ReLU(),
                                Linear(inputCount: 7, outputCount: 3, generator: &generator)])
        let x = Tensor(shape: [4, 5], scalars: (0..<20).map { Float($0 % 7) * 0.3 - 0.8 })
        func gradients(hook: ((Variable) -> Void)?) -> [[Float]] {
            for p in model.parameters { p.zeroGradient() }
            var context = ForwardContext(training: true, generator: RandomGenerator(seed: 1))
            let y = model(Variable(x), context: &context)
            let loss = NeuralNet.mean(y * y)
            loss.backward(onLeafReady: hook)
            return model.parameters.map { $0.grad?.scalars ?? [] }
        }
        let plain = gradients(hook: nil)
        var handed: [Int] = []
        var completeWhenHanded: [Bool] = []
        let hooked = gradients { leaf in
            let index = model.parameters.firstIndex { $0 === leaf }!
            handed.append(index)
            completeWhenHanded.append(leaf.grad?.scalars == plain[index])
        }
        XCTAssertEqual(hooked, plain)
        XCTAssertEqual(handed.sorted(), Array(model.parameters.indices))
        XCTAssertEqual(completeWhenHanded, [Bool](repeating: true, count: handed.count))
        // Layer by layer from the output: the last layer's weight and bias before the middle layer's, before the first's.
        let layerOf = handed.map { $0 / 2 }
        XCTAssertEqual(layerOf, layerOf.sorted(by: >), "handed over \(handed)")
    }

    /// Buckets fill and are sent during the backward pass, in bucket order; the sums are set after `finish()`.
    func testBucketsAreSentDuringTheBackwardPass() {
        var generator = RandomGenerator(seed: 4)
        let model = Sequential([Linear(inputCount: 6, outputCount: 16, generator: &generator), ReLU(),
                                Linear(inputCount: 16, outputCount: 4, generator: &generator)])
        let recorder = Recorder()
        let buckets = GradientBuckets(parameters: model.parameters, communicator: recorder, capacity: 64)
        XCTAssertTrue(buckets.overlaps)
        XCTAssertEqual(buckets.count, 4)
        buckets.begin()
        let x = Tensor(shape: [3, 6], scalars: (0..<18).map { Float($0) * 0.1 - 0.9 })
        var context = ForwardContext(training: true, generator: RandomGenerator(seed: 1))
        let y = model(Variable(x), context: &context)
        NeuralNet.mean(y * y).backward(onLeafReady: buckets.ready)
        XCTAssertEqual(buckets.sentDuringBackward, 4)
        buckets.finish()
        XCTAssertEqual(recorder.floats.map(\.count), [4, 64, 16, 96])
        XCTAssertEqual(recorder.floats[3], model.parameters[0].grad?.scalars)
    }
}
