import Datasets
import Distillation
import Foundation
import NeuralNet
import TensorCore
import XCTest

/// A model teacher that records which thread asked it and can fail on a given call.
final class ProbeTeacher: Teacher {
    let base: ModelTeacher
    let failOnCall: Int?
    private let lock = NSLock()
    private var calls: [(thread: String, rows: Int)] = []

    init(model: Sequential, failOnCall: Int? = nil) {
        base = ModelTeacher(model: model)
        self.failOnCall = failOnCall
    }

    var classCount: Int { base.classCount }
    var identity: String { base.identity }
    var computesPerBatch: Bool { true }
    var callThreads: [String] { lock.lock(); defer { lock.unlock() }; return calls.map(\.thread) }

    func softTargets(batch images: Tensor, indices: [Int], temperature: Float) throws -> Tensor {
        lock.lock()
        calls.append((Thread.isMainThread ? "main" : "other", indices.count))
        let n = calls.count
        lock.unlock()
        if let failOnCall, n == failOnCall { throw TrainingError("probe teacher: planned failure on call \(n)") }
        return try base.softTargets(batch: images, indices: indices, temperature: temperature)
    }

    func logits(batch images: Tensor, indices: [Int]) throws -> Tensor {
        try base.logits(batch: images, indices: indices)
    }
}

/// A model teacher that sleeps before answering: `delays` microseconds in turn (cycled), so the student's split
/// products meet the teacher busy or done at different points of each step.
final class DelayTeacher: Teacher {
    let base: ModelTeacher
    let delays: [UInt32]
    private var call = 0

    init(model: Sequential, delays: [UInt32]) {
        base = ModelTeacher(model: model)
        self.delays = delays
    }

    var classCount: Int { base.classCount }
    var identity: String { base.identity }
    var computesPerBatch: Bool { true }

    func softTargets(batch images: Tensor, indices: [Int], temperature: Float) throws -> Tensor {
        if !delays.isEmpty { usleep(delays[call % delays.count]) }
        call += 1
        return try base.softTargets(batch: images, indices: indices, temperature: temperature)
    }

    func logits(batch images: Tensor, indices: [Int]) throws -> Tensor {
        try base.logits(batch: images, indices: indices)
    }
}

/// The online teacher runs one batch ahead on a second thread (`TrainingConfiguration.overlapTeacher`): it must see
/// exactly the batches, in the order, that the student trains on, and leave resumes and errors as without overlap.
final class TeacherOverlapTests: XCTestCase {
    func teacherModel() -> Sequential {
        var g = RandomGenerator(seed: 11)
        return Sequential(specifications: [.linear(inputCount: 16, outputCount: 9), .relu,
                                           .linear(inputCount: 9, outputCount: 4)], generator: &g)
    }

    func configuration(overlap: Bool) -> TrainingConfiguration {
        var c = ResumeData.configuration()
        c.model.mlp?.inputDropout = 0
        c.data.jitter = 1
        c.runtime.threads = 2
        c.runtime.overlapTeacher = overlap
        return c
    }

    func objective(_ teacher: Teacher) throws -> DistillationObjective {
        try DistillationObjective(teacher: teacher, loss: DistillationLossConfiguration(temperature: 3, hardWeight: 0.3, softWeight: 0.7))
    }

    /// The products here are small enough to run on one BLAS thread in both modes, so overlapped and turn-taking
    /// runs must agree bit for bit: any batch or jitter mix-up in the pipeline would show.
    func testOverlappedRunMatchesTurnTakingBitForBit() throws {
        let data = try ResumeData.dataset(count: 61, imageSide: 4)
        let quiet = ProgressReporter(enabled: false)
        var results: [(bits: [[UInt32]], losses: [Double], threads: [String])] = []
        for overlap in [false, true] {
            let teacher = ProbeTeacher(model: teacherModel())
            let trainer = try Trainer(configuration: configuration(overlap: overlap), train: data, validation: nil,
                                      objective: try objective(teacher), progress: quiet)
            try trainer.run()
            results.append((ResumeData.bits(trainer.model), trainer.report.epochs.map(\.trainLoss), teacher.callThreads))
        }
        XCTAssertEqual(results[0].bits, results[1].bits, "overlap changed the trained weights")
        XCTAssertEqual(results[0].losses, results[1].losses)
        // 3 epochs x 9 batches; with overlap only each epoch's first batch is asked for on the training thread.
        XCTAssertEqual(results[0].threads, Array(repeating: "main", count: 27))
        XCTAssertEqual(results[1].threads.count, 27)
        XCTAssertEqual(results[1].threads.filter { $0 == "main" }.count, 3, "\(results[1].threads)")
        XCTAssertEqual(ComputeThreads.count, 2, "run() must restore the thread count")
    }

    /// With layers big enough to split (160 x 100 x 144 products, split by rows), the student's parts run in turn on one core while
    /// the teacher works and on both cores once it is done, at points that depend on timing. The parts never do, so
    /// a teacher that answers at once, one that is slower than the whole step, and one that varies give the same
    /// bits. (Checked to fail when the parts depend on whether the teacher is busy.) On OpenBLAS, and on MKL when
    /// installed.
    func testOverlapIsExactWhateverTheTeacherTiming() throws {
        defer { _ = try? BLASLibrary.select(.openblas) }
        for library in [BLASLibrary.Choice.openblas, .mkl] {
            if library == .mkl && (try? BLASLibrary.select(.mkl)) == nil { continue }
            try checkOverlapIsExact(on: library)
        }
    }

    func checkOverlapIsExact(on library: BLASLibrary.Choice) throws {
        try BLASLibrary.select(library)
        let data = try ResumeData.dataset(count: 480, features: 144, classes: 10, imageSide: 12)
        var g = RandomGenerator(seed: 5)
        let teacherModel = Sequential(specifications: [.linear(inputCount: 144, outputCount: 160), .relu,
                                                       .linear(inputCount: 160, outputCount: 10)], generator: &g)
        var c = configuration(overlap: true)
        c.model = .mlp(hidden: [100, 96])
        c.data.batchSize = 160
        c.epochs = 2
        var runs: [[[UInt32]]] = []
        for delays: [UInt32] in [[], [3000], [0, 1500, 200, 4000, 50]] {
            let trainer = try Trainer(configuration: c, train: data, validation: nil,
                                      objective: try objective(DelayTeacher(model: teacherModel, delays: delays)),
                                      progress: ProgressReporter(enabled: false))
            try trainer.run()
            runs.append(ResumeData.bits(trainer.model))
            XCTAssertEqual(ComputeThreads.lentCores, 0)
        }
        XCTAssertTrue(runs[0] == runs[1], "\(library): a slow teacher changed the student's bits")
        XCTAssertTrue(runs[0] == runs[2], "\(library): a teacher of varying speed changed the student's bits")
    }

    /// A stop (Ctrl-C) while the next batch's teacher pass is in flight saves the state of the batch just trained,
    /// and the resumed run matches the uninterrupted one exactly (jitter stream included).
    func testOverlappedRunResumesExactly() throws {
        let data = try ResumeData.dataset(count: 61, imageSide: 4)
        let quiet = ProgressReporter(enabled: false)
        let c = configuration(overlap: true)
        let a = try Trainer(configuration: c, train: data, validation: nil, objective: try objective(ProbeTeacher(model: teacherModel())), progress: quiet)
        try a.run()

        let dir = try ResumeData.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let stateURL = dir.appendingPathComponent("student.safetensors.state")
        var trainer = try Trainer(configuration: c, train: data, validation: nil, objective: try objective(ProbeTeacher(model: teacherModel())), progress: quiet)
        for stop in [4, 9, 5] {
            var steps = 0
            trainer.shouldStop = { steps += 1; return steps >= stop }
            try trainer.run()
            XCTAssertTrue(trainer.stopped)
            try trainer.saveState(to: stateURL)
            trainer = try Trainer.resume(from: stateURL, configuration: c, train: data, validation: nil,
                                         objective: try objective(ProbeTeacher(model: teacherModel())), progress: quiet)
        }
        try trainer.run()
        XCTAssertEqual(ResumeData.bits(a.model), ResumeData.bits(trainer.model))
        XCTAssertEqual(a.report.epochs.map(\.trainLoss), trainer.report.epochs.map(\.trainLoss))
    }

    /// A teacher failing on the background thread fails the run with its own message (no hang, no trap), and the
    /// trainer's position is the last finished batch.
    func testTeacherErrorOnTheBackgroundThreadIsReported() throws {
        let data = try ResumeData.dataset(count: 61, imageSide: 4)
        let teacher = ProbeTeacher(model: teacherModel(), failOnCall: 5)
        let trainer = try Trainer(configuration: configuration(overlap: true), train: data, validation: nil,
                                  objective: try objective(teacher), progress: ProgressReporter(enabled: false))
        let message = thrownMessage { try trainer.run() }
        XCTAssertEqual(message.map { $0.contains("planned failure on call 5") }, true, message ?? "no error")
        XCTAssertEqual(trainer.batchInEpoch, 4, "batches 1-4 trained; call 5 was batch 5 teacher pass, run during batch 4")
        XCTAssertEqual(teacher.callThreads.last, "other")
        XCTAssertEqual(ComputeThreads.count, 2)
    }

    /// Stored and cached logits are cheap lookups: no second thread for them.
    func testLookupTeachersDoNotOverlap() throws {
        let data = try ResumeData.dataset(count: 20)
        let model = teacherModel()
        XCTAssertTrue(try objective(ModelTeacher(model: model)).preparesInBackground)
        XCTAssertFalse(try objective(CachedTeacher(base: ModelTeacher(model: model), dataset: data)).preparesInBackground)
        let ensemble = try EnsembleTeacher(members: [CachedTeacher(base: ModelTeacher(model: model), dataset: data), ModelTeacher(model: model)],
                                           combination: .meanProbabilities)
        XCTAssertTrue(try objective(ensemble).preparesInBackground)
        XCTAssertFalse(LabelObjective().preparesInBackground)
    }

    /// `BackgroundWork` hands back results and errors in order and tolerates wait without start.
    func testBackgroundWork() throws {
        let work = BackgroundWork()
        XCTAssertNil(try work.wait())
        work.start { Tensor(shape: [2], scalars: [1, 2]) }
        XCTAssertTrue(work.isRunning)
        XCTAssertEqual(try work.wait()?.scalars, [1, 2])
        XCTAssertFalse(work.isRunning)
        work.start { throw TrainingError("boom") }
        XCTAssertEqual(thrownMessage { _ = try work.wait() }.map { $0.contains("boom") }, true)
        work.start { Tensor.zeros([1]) }
        work.cancel()
        XCTAssertFalse(work.isRunning)
    }
}
