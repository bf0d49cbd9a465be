import XCTest
import TensorCore
import Distillation
import Checkpoints
import Foundation

/// End-to-end checks of `distill train` interruption and resume through the built binary
/// (`.build/debug/distill`; skipped when it is missing).
final class ResumeCLITests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    var binary: URL!
    var dir: URL!

    override func setUpWithError() throws {
        let candidates = [".build/debug/distill", ".build/release/distill"].map { Self.root.appendingPathComponent($0) }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw XCTSkip("no built distill binary under .build/debug or .build/release")
        }
        binary = found
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("resume-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Self.writeTinyMNIST(to: dir.appendingPathComponent("data"), trainCount: 240, testCount: 30)
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    /// Raw (uncompressed) IDX files under the usual `.gz` names; the reader detects gzip by its magic.
    static func writeTinyMNIST(to url: URL, trainCount: Int, testCount: Int) throws {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        var state: UInt64 = 0x1234_5678
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        func be(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)] }
        func write(_ count: Int, images: String, labels: String) throws {
            var img: [UInt8] = [0, 0, 8, 3] + be(count) + be(28) + be(28)
            var lab: [UInt8] = [0, 0, 8, 1] + be(count)
            for _ in 0..<count {
                let label = Int(next() % 10)
                lab.append(UInt8(label))
                for p in 0..<784 {
                    let on = (p / 28) / 3 == label || (p % 28) / 3 == label
                    img.append(on ? UInt8(128 + next() % 128) : UInt8(next() % 64))
                }
            }
            try Data(img).write(to: url.appendingPathComponent(images))
            try Data(lab).write(to: url.appendingPathComponent(labels))
        }
        try write(trainCount, images: "train-images-idx3-ubyte.gz", labels: "train-labels-idx1-ubyte.gz")
        try write(testCount, images: "t10k-images-idx3-ubyte.gz", labels: "t10k-labels-idx1-ubyte.gz")
    }

    func arguments(output: String, extra: [String] = []) -> [String] {
        ["train", "--data-dir", dir.appendingPathComponent("data").path, "--hidden", "24,16", "--epochs", "3",
         "--batch-size", "10", "--threads", "1", "--input-dropout", "0.2", "--hidden-dropout", "0.3",
         "--validation", "40", "--learning-rate", "0.05", "--seed", "3", "--output", dir.appendingPathComponent(output).path] + extra
    }

    struct Run { var status: Int32; var reason: Process.TerminationReason; var stderr: String }

    /// Starts `distill`; its standard output goes to `stdout` when given (e.g. the `--json` report), else nowhere.
    func start(_ args: [String], delayMs: Int = 0, stdout: URL? = nil, environment extra: [String: String] = [:]) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = binary
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        env["DISTILL_KEEP_BLAS_CORE"] = "1"  // OpenBLAS's own kernel choice, as in this process
        if delayMs > 0 { env["DISTILL_TEST_STEP_DELAY_MS"] = String(delayMs) }
        for (k, v) in extra { env[k] = v }
        process.environment = env
        let err = Pipe()
        process.standardError = err
        if let stdout {
            _ = FileManager.default.createFile(atPath: stdout.path, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: stdout)
        } else {
            process.standardOutput = FileHandle.nullDevice
        }
        try process.run()
        return (process, err)
    }

    func finish(_ p: (Process, Pipe)) -> Run {
        let data = p.1.fileHandleForReading.readDataToEndOfFile()
        p.0.waitUntilExit()
        return Run(status: p.0.terminationStatus, reason: p.0.terminationReason, stderr: String(decoding: data, as: UTF8.self))
    }

    func run(_ args: [String], stdout: URL? = nil, environment: [String: String] = [:]) throws -> Run {
        finish(try start(args, stdout: stdout, environment: environment))
    }

    /// The `--json` report written to `url`.
    func report(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any], "no JSON report in \(url.path)")
    }

    /// Checks that a run resumed from `saved` started where the state file says (`resumed_at`) and took only the
    /// steps that were left (`steps_taken`), out of `totalSteps` over `epochs` epochs: a resume that silently started
    /// over with the same seed would end with the same model but fail here. Returns the steps taken before the stop.
    @discardableResult
    func checkResumed(_ json: [String: Any], from saved: TrainingState, totalSteps: Int, epochs: Int = 3,
                      file: StaticString = #filePath, line: UInt = #line) throws -> Int {
        let batchesPerEpoch = totalSteps / epochs
        let done = saved.epoch * batchesPerEpoch + saved.batch
        XCTAssertGreaterThan(done, 0, "the state file is at the start of the run", file: file, line: line)
        XCTAssertLessThan(done, totalSteps, "the state file is at the end of the run", file: file, line: line)
        let at = try XCTUnwrap(json["resumed_at"] as? [String: Int], "no resumed_at in the report", file: file, line: line)
        XCTAssertEqual(at["epoch"], saved.epoch + 1, "resumed epoch (1-based)", file: file, line: line)
        XCTAssertEqual(at["batch"], saved.batch, "resumed batch", file: file, line: line)
        XCTAssertEqual(json["steps_taken"] as? Int, totalSteps - done,
                       "the resumed run should take only the \(totalSteps - done) steps left after \(done)", file: file, line: line)
        return done
    }

    func waitFor(_ path: String, process: Process, timeout: TimeInterval = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if FileManager.default.fileExists(atPath: path) { return true }
            if !process.isRunning { return false }
            usleep(2000)
        }
        return false
    }

    /// 240 training images less 40 held out, batches of 10, 3 epochs.
    static let totalSteps = (240 - 40) / 10 * 3

    /// The uninterrupted run's model file (its report must count every step and no resume).
    func reference() throws -> Data {
        let json = dir.appendingPathComponent("reference.json")
        let r = try run(arguments(output: "reference.safetensors", extra: ["--json"]), stdout: json)
        XCTAssertEqual(r.status, 0, r.stderr)
        let object = try report(json)
        XCTAssertEqual(object["steps_taken"] as? Int, Self.totalSteps)
        XCTAssertNil(object["resumed_at"])
        return try Data(contentsOf: dir.appendingPathComponent("reference.safetensors"))
    }

    func testSIGKILLThenResumeGivesIdenticalModel() throws {
        let expected = try reference()
        let args = arguments(output: "killed.safetensors", extra: ["--checkpoint-every", "2"])
        let state = dir.appendingPathComponent("killed.safetensors.state").path
        let p = try start(args, delayMs: 5)
        XCTAssertTrue(waitFor(state, process: p.0), "the state file never appeared")
        usleep(37_000)  // somewhere mid-epoch, between checkpoints
        kill(p.0.processIdentifier, SIGKILL)
        let killed = finish(p)
        XCTAssertEqual(killed.reason, .uncaughtSignal, "the run finished before it could be killed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: state))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("killed.safetensors").path))
        let saved = try TrainingState.read(url: URL(fileURLWithPath: state))

        let json = dir.appendingPathComponent("resumed.json")
        let resumed = try run(args + ["--resume", "--json"], stdout: json)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        try checkResumed(try report(json), from: saved, totalSteps: Self.totalSteps)
        XCTAssertTrue(resumed.stderr.contains("resuming \(state) at epoch \(saved.epoch + 1), batch \(saved.batch)"), resumed.stderr)
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("killed.safetensors")), expected,
                       "the resumed run's model differs from the uninterrupted run's")
        XCTAssertFalse(FileManager.default.fileExists(atPath: state), "the state file should be removed after success")
        // The run directory: every epoch once in metrics.jsonl (the killed run's lines are rewritten from the
        // run's history), the result, the command line and the model.
        let run = dir.appendingPathComponent("killed.run")
        let lines = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(lines.compactMap { $0?["epoch"] as? Int }, Array(1...3))
        XCTAssertTrue(lines.allSatisfy { ($0?["examples_per_second"] as? Double ?? 0) > 0 && $0?["loss_parts"] != nil })
        XCTAssertEqual(try Data(contentsOf: run.appendingPathComponent("model.safetensors")), expected)
        let result = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: run.appendingPathComponent("result.json"))) as? [String: Any])
        XCTAssertEqual(result["run_directory"] as? String, run.path)
        XCTAssertTrue(try String(contentsOf: run.appendingPathComponent("command.txt"), encoding: .utf8).contains("--resume"))
        XCTAssertEqual(try String(contentsOf: run.appendingPathComponent("configuration.sha256"), encoding: .utf8).count, 65)
    }

    /// `distill distill` shares the resumable runner with `train`: a distillation killed mid-epoch and resumed
    /// (the teacher's identity is part of the state) ends with the same student as an uninterrupted one.
    func testDistillKilledThenResumedGivesIdenticalStudent() throws {
        let teacherRun = try run(arguments(output: "teacher.safetensors"))
        XCTAssertEqual(teacherRun.status, 0, teacherRun.stderr)
        let teacher = dir.appendingPathComponent("teacher.safetensors").path
        func distillArguments(output: String, extra: [String] = []) -> [String] {
            ["distill", "--teacher", teacher, "--temperature", "4", "--hard-weight", "0.5", "--soft-weight", "0.5"]
                + arguments(output: output, extra: extra).dropFirst()
        }
        let referenceJSON = dir.appendingPathComponent("student-reference.json")
        let reference = try run(distillArguments(output: "student-reference.safetensors", extra: ["--json"]), stdout: referenceJSON)
        XCTAssertEqual(reference.status, 0, reference.stderr)
        XCTAssertEqual(try report(referenceJSON)["steps_taken"] as? Int, Self.totalSteps)
        let expected = try Data(contentsOf: dir.appendingPathComponent("student-reference.safetensors"))

        let args = distillArguments(output: "student.safetensors", extra: ["--checkpoint-every", "2"])
        let state = dir.appendingPathComponent("student.safetensors.state").path
        let p = try start(args, delayMs: 5)
        XCTAssertTrue(waitFor(state, process: p.0), "the state file never appeared")
        usleep(37_000)
        kill(p.0.processIdentifier, SIGKILL)
        let killed = finish(p)
        XCTAssertEqual(killed.reason, .uncaughtSignal, "the run finished before it could be killed")
        let saved = try TrainingState.read(url: URL(fileURLWithPath: state))
        let json = dir.appendingPathComponent("student-resumed.json")
        let resumed = try run(args + ["--resume", "--json"], stdout: json)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        try checkResumed(try report(json), from: saved, totalSteps: Self.totalSteps)
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("student.safetensors")), expected,
                       "the resumed distillation's student differs from the uninterrupted one's")
    }

    func checkSignal(_ signal: Int32, code: Int32) throws {
        let expected = try reference()
        let args = arguments(output: "stopped.safetensors")
        let state = dir.appendingPathComponent("stopped.safetensors.state").path
        // No --checkpoint-every: the state is written only because of the signal.
        let p = try start(args, delayMs: 30)  // 60 steps: about 2 s, so the signal lands mid-run
        usleep(400_000)
        XCTAssertTrue(p.0.isRunning)
        kill(p.0.processIdentifier, signal)
        let stopped = finish(p)
        XCTAssertEqual(stopped.reason, .exit, stopped.stderr)
        XCTAssertEqual(stopped.status, code, stopped.stderr)
        XCTAssertTrue(stopped.stderr.contains("interrupted at epoch "), stopped.stderr)
        XCTAssertTrue(stopped.stderr.contains("resume with the same command plus --resume"), stopped.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: state))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("stopped.safetensors").path))

        // Without --resume the state is not silently overwritten.
        let refused = try run(args)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("--resume"), refused.stderr)

        // The position the interruption message named is the one in the state file.
        let saved = try TrainingState.read(url: URL(fileURLWithPath: state))
        XCTAssertTrue(stopped.stderr.contains("interrupted at epoch \(saved.epoch + 1), batch \(saved.batch);"), stopped.stderr)
        let json = dir.appendingPathComponent("resumed.json")
        let resumed = try run(args + ["--resume", "--json"], stdout: json)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        try checkResumed(try report(json), from: saved, totalSteps: Self.totalSteps)
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("stopped.safetensors")), expected)
        XCTAssertFalse(FileManager.default.fileExists(atPath: state))
    }

    func testSIGINTSavesStateExits130AndResumes() throws { try checkSignal(SIGINT, code: 130) }

    func testSIGTERMExits143() throws { try checkSignal(SIGTERM, code: 143) }

    func testExistingOutputSurvivesADivergingRun() throws {
        let output = dir.appendingPathComponent("model.safetensors")
        let original = Data("previous model, must survive".utf8)
        try original.write(to: output)
        var args = arguments(output: "model.safetensors", extra: ["--force", "--checkpoint-every", "1"])
        if let i = args.firstIndex(of: "--learning-rate") { args[i + 1] = "1000000" }
        let r = try run(args)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("epoch 1, batch"), r.stderr)
        XCTAssertEqual(try Data(contentsOf: output), original)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [])
    }

    func testResumeRefusesADifferentConfiguration() throws {
        let args = arguments(output: "m.safetensors")
        let p = try start(args + ["--checkpoint-every", "1000000"], delayMs: 30)
        usleep(400_000)
        kill(p.0.processIdentifier, SIGINT)
        XCTAssertEqual(finish(p).status, 130)
        var changed = args
        if let i = changed.firstIndex(of: "--learning-rate") { changed[i + 1] = "0.07" }
        let r = try run(changed + ["--resume"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("m.safetensors.state") && r.stderr.contains("configuration differs"), r.stderr)
        // Only the setting that changed is named.
        XCTAssertTrue(r.stderr.contains("learningRate: saved 0.05"), r.stderr)
        XCTAssertFalse(r.stderr.contains("hidden"), r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("m.safetensors.state").path))
        // The input kernels are part of the run: a run started on the sparse kernels does not resume on BLAS.
        if SparseKernels.isFast {
            let dense = try run(args + ["--resume", "--dense-inputs"])
            XCTAssertNotEqual(dense.status, 0)
            XCTAssertTrue(dense.stderr.contains("runtime.inputKernels: saved \"sparse\", now \"dense\""), dense.stderr)
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("m.safetensors.state").path))
        }
        let resumed = try run(args + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
    }

    /// An experiment file that distils a CSV-trained teacher into a smaller student runs end to end; killed with
    /// SIGKILL mid-way and run again, it resumes and ends with the models an uninterrupted run makes.
    func testExperimentFileResumesAfterSIGKILL() throws {
        let csv = Self.threeClassCSV(rows: 400, features: 4, spread: 0.8, seed: 77)
        try Data(csv.utf8).write(to: dir.appendingPathComponent("table.csv"))
        let yaml = """
            name: table
            data: {file: \(dir.appendingPathComponent("table.csv").path)}
            teacher:
              train: {hidden: [32, 32], hidden_dropout: 0.2, epochs: 12, batch_size: 16, learning_rate: 0.05}
            student: {hidden: [4], epochs: 12, batch_size: 16, learning_rate: 0.05, schedule: "warmup:1:cosine"}
            loss: {temperature: 4}
            seeds: [5]
            compare: {label_only: true, temperatures: [4]}
            threads: 1
            """
        let file = dir.appendingPathComponent("table.yaml")
        try Data(yaml.utf8).write(to: file)
        let reference = try run(["run", file.path, "--work-dir", dir.appendingPathComponent("reference").path])
        XCTAssertEqual(reference.status, 0, reference.stderr)
        let work = dir.appendingPathComponent("killed")
        let p = try start(["run", file.path, "--work-dir", work.path], delayMs: 2)
        XCTAssertTrue(waitFor(work.appendingPathComponent("table/student-labels-seed5/state.safetensors").path, process: p.0),
                      "the student's state never appeared")
        kill(p.0.processIdentifier, SIGKILL)
        XCTAssertEqual(finish(p).reason, .uncaughtSignal)
        XCTAssertFalse(FileManager.default.fileExists(atPath: work.appendingPathComponent("table/summary.json").path))
        let again = try run(["run", file.path, "--work-dir", work.path, "--json"], stdout: dir.appendingPathComponent("again.json"))
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("teacher-seed5: reusing"), again.stderr)
        XCTAssertTrue(again.stderr.contains("student-labels-seed5: resuming"), again.stderr)
        for model in ["teacher-seed5", "student-labels-seed5", "student-T4-seed5"] {
            XCTAssertEqual(try Data(contentsOf: work.appendingPathComponent("table/\(model)/model.safetensors")),
                           try Data(contentsOf: dir.appendingPathComponent("reference/table/\(model)/model.safetensors")), model)
            XCTAssertFalse(FileManager.default.fileExists(atPath: work.appendingPathComponent("table/\(model)/state.safetensors").path))
        }
        let summary = try String(contentsOf: work.appendingPathComponent("table/summary.txt"), encoding: .utf8)
        XCTAssertEqual(summary, try String(contentsOf: dir.appendingPathComponent("reference/table/summary.txt"), encoding: .utf8))
        XCTAssertTrue(summary.contains("student-T4"), summary)
        let report = try self.report(dir.appendingPathComponent("again.json"))
        XCTAssertEqual((report["outcomes"] as? [[String: Any]])?.count, 3)
    }

    /// A state file written by the command line before model files carried a model description
    /// (`distill-training-state/1`, 784-16-10 on the embedded MNIST, stopped 10 batches before the end of epoch 3)
    /// resumes to exactly the weights of that build's uninterrupted run (both files in
    /// `Fixtures/pre-description-state`), taking only the 10 steps that were left.
    func testResumesAStateWrittenBeforeModelDescriptions() throws {
        let mnist = Self.root.appendingPathComponent("Data/mnist")
        guard FileManager.default.fileExists(atPath: mnist.appendingPathComponent("train-images-idx3-ubyte.gz").path) else {
            throw XCTSkip("the embedded MNIST is not in this checkout")
        }
        // The fixtures were computed with OpenBLAS's AVX2 (Haswell) kernels and one thread; the resumed run uses the same.
        guard BLASKernel.coreName != nil,
              let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") })?.split(separator: " ").contains("avx2") == true else {
            throw XCTSkip("the fixture's bits need OpenBLAS's Haswell kernels (x86-64 with AVX2)")
        }
        let fixtures = try XCTUnwrap(Bundle.module.url(forResource: "pre-description-state", withExtension: nil, subdirectory: "Fixtures"))
        let output = dir.appendingPathComponent("m.safetensors")
        try FileManager.default.copyItem(at: fixtures.appendingPathComponent("interrupted.safetensors.state"),
                                         to: URL(fileURLWithPath: output.path + ".state"))
        let json = dir.appendingPathComponent("resumed.json")
        let r = try run(["train", "--hidden", "16", "--epochs", "3", "--seed", "0", "--threads", "1", "--learning-rate", "0.05",
                         "--checkpoint-every", "1", "--data-dir", mnist.path, "--output", output.path, "--resume", "--json"], stdout: json,
                     environment: ["OPENBLAS_CORETYPE": "Haswell"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let resumedReport = try report(json)
        XCTAssertEqual(resumedReport["steps_taken"] as? Int, 10, "\(resumedReport)")
        let resumed = try ModelCheckpoint.read(url: output).model.parameters
        let reference = try ModelCheckpoint.read(url: fixtures.appendingPathComponent("uninterrupted.safetensors")).model.parameters
        XCTAssertEqual(resumed.count, reference.count)
        for (a, b) in zip(resumed, reference) { XCTAssertEqual(a.value.scalars, b.value.scalars) }
    }

    /// An experiment with an ensemble teacher: two members trained from different seeds, and the same two loaded as
    /// `files:`, distil the same student bit for bit.
    /// An experiment file with decoupled KD and feature terms: the student's epochs record their parts, a second run
    /// reuses the model, and a changed weight trains it again.
    func testExperimentFileWithDecoupledKDAndFeatureTerms() throws {
        let csv = Self.threeClassCSV(rows: 240, features: 4, spread: 1, seed: 45)
        try Data(csv.utf8).write(to: dir.appendingPathComponent("f.csv"))
        func yaml(similarityWeight: Int) -> String {
            """
            name: features
            data: {file: \(dir.appendingPathComponent("f.csv").path)}
            teacher:
              train: {hidden: [16, 16], epochs: 4, batch_size: 16, learning_rate: 0.05}
            student: {hidden: [8], epochs: 3, batch_size: 16, learning_rate: 0.05}
            loss:
              temperature: 4
              hard_weight: 1
              logit: dkd
              dkd: {beta: 2, warmup: 2}
              features:
                - {kind: hint, student: 1, teacher: 3, weight: 1}
                - {kind: similarity, student: 1, teacher: 1, weight: \(similarityWeight)}
            seeds: [3]
            compare: {label_only: false}
            threads: 1
            """
        }
        let file = dir.appendingPathComponent("features.yaml")
        try Data(yaml(similarityWeight: 30).utf8).write(to: file)
        let work = dir.appendingPathComponent("work")
        let first = try run(["run", file.path, "--work-dir", work.path])
        XCTAssertEqual(first.status, 0, first.stderr)
        let metrics = try String(contentsOf: work.appendingPathComponent("features/student-T4-seed3/metrics.jsonl"), encoding: .utf8)
        let epochs = metrics.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(epochs.count, 3)
        XCTAssertEqual(Set((epochs.first?["loss_parts"] as? [String: Double])?.keys ?? [:].keys),
                       ["hard", "tckd", "nckd", "hint0", "similarity1"])
        let model = work.appendingPathComponent("features/student-T4-seed3/model.safetensors")
        let trained = try Data(contentsOf: model)
        let again = try run(["run", file.path, "--work-dir", work.path])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("student-T4-seed3: reusing"), again.stderr)
        try Data(yaml(similarityWeight: 300).utf8).write(to: file)
        let changed = try run(["run", file.path, "--work-dir", work.path])
        XCTAssertEqual(changed.status, 0, changed.stderr)
        XCTAssertFalse(changed.stderr.contains("student-T4-seed3: reusing"), changed.stderr)
        XCTAssertNotEqual(try Data(contentsOf: model), trained)
    }

    /// A CSV of `rows` examples in three classes (row i in class i % 3): `features` columns named a, b, ..., column j
    /// 1 + noise where j % 3 is the class and noise alone elsewhere, noise uniform in [0, spread) from a seeded
    /// linear congruential stream; then the label.
    static func threeClassCSV(rows: Int, features: Int, spread: Double, seed: UInt64) -> String {
        var csv = (0..<features).map { String(UnicodeScalar(UInt8(97 + $0))) }.joined(separator: ",") + ",label\n"
        var g = seed
        func next() -> Double { g = g &* 6364136223846793005 &+ 1442695040888963407; return Double(g >> 11) / Double(1 << 53) }
        for i in 0..<rows {
            let c = i % 3
            csv += (0..<features).map { j in String(format: "%.4f", Double(c == j % 3 ? 1 : 0) + next() * spread) }.joined(separator: ",") + ",\(c)\n"
        }
        return csv
    }

    func testExperimentFileWithAnEnsembleTeacher() throws {
        let csv = Self.threeClassCSV(rows: 240, features: 3, spread: 1, seed: 91)
        try Data(csv.utf8).write(to: dir.appendingPathComponent("e.csv"))
        func yaml(_ teacher: String) -> String {
            """
            name: ensemble
            data: {file: \(dir.appendingPathComponent("e.csv").path)}
            teacher:
            \(teacher)
            student: {hidden: [4], epochs: 4, batch_size: 16, learning_rate: 0.05}
            loss: {temperature: 4}
            seeds: [2]
            compare: {label_only: false, temperatures: [4]}
            threads: 1
            """
        }
        let trained = dir.appendingPathComponent("trained.yaml")
        try Data(yaml("  train: {hidden: [16], epochs: 4, batch_size: 16, learning_rate: 0.05}\n  members: 2").utf8).write(to: trained)
        let first = try run(["run", trained.path, "--work-dir", dir.appendingPathComponent("a").path])
        XCTAssertEqual(first.status, 0, first.stderr)
        let member0 = dir.appendingPathComponent("a/ensemble/teacher0-seed2/model.safetensors")
        let member1 = dir.appendingPathComponent("a/ensemble/teacher1-seed2/model.safetensors")
        XCTAssertNotEqual(try Data(contentsOf: member0), try Data(contentsOf: member1), "members from different seeds")
        let loaded = dir.appendingPathComponent("loaded.yaml")
        try Data(yaml("  files: [\(member0.path), \(member1.path)]").utf8).write(to: loaded)
        let second = try run(["run", loaded.path, "--work-dir", dir.appendingPathComponent("b").path])
        XCTAssertEqual(second.status, 0, second.stderr)
        XCTAssertEqual(try Data(contentsOf: dir.appendingPathComponent("a/ensemble/student-T4-seed2/model.safetensors")),
                       try Data(contentsOf: dir.appendingPathComponent("b/ensemble/student-T4-seed2/model.safetensors")))
    }
}
