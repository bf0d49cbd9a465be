import Checkpoints
import Foundation
import XCTest
import TensorCore
import NeuralNet
import Datasets
import Distillation
import TensorIO

/// `distill distill` and `distill teacher-logits` through the built executable, on a tiny synthetic MNIST.
final class DistillCommandTests: TinyMNISTTestCase {
    override var trainCount: Int { 200 }

    let common = ["--hidden", "16", "--epochs", "1", "--batch-size", "32", "--threads", "1"]

    /// Trains a tiny teacher with `distill train`.
    func trainTeacher(_ name: String, seed: Int = 0, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let out = path(name)
        let result = try runDistill(["train"] + common + ["--seed", String(seed), "--data-dir", dataDirectory.path, "--output", out],
                                    in: directory)
        assertSucceeded(result, "train \(name)", file: file, line: line)
        return out
    }

    func distill(_ extra: [String], output: String, dataDir: URL? = nil) throws -> CommandResult {
        try runDistill(["distill"] + common + ["--data-dir", (dataDir ?? dataDirectory).path, "--output", output] + extra,
                       in: directory)
    }

    /// The JSON report of a distilled student has every metric, the teacher-based ones included (online teacher).
    func checkReport(_ report: [String: Any], teacherMetrics: Bool, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(report["test_count"] as? Int, 100, file: file, line: line)
        let errors = report["test_errors"] as? Int
        XCTAssertNotNil(errors, "test_errors", file: file, line: line)
        let perClass = report["per_class_errors"] as? [Int]
        XCTAssertEqual(perClass?.count, 10, "per_class_errors", file: file, line: line)
        XCTAssertEqual(perClass?.reduce(0, +), errors, "per-class errors sum to test_errors", file: file, line: line)
        let confusion = report["confusion_matrix"] as? [[Int]]
        XCTAssertEqual(confusion?.count, 10, "confusion_matrix rows", file: file, line: line)
        XCTAssertTrue(confusion?.allSatisfy { $0.count == 10 } ?? false, "confusion_matrix is 10x10", file: file, line: line)
        XCTAssertEqual(confusion?.joined().reduce(0, +), 100, "confusion matrix sums to test_count", file: file, line: line)
        if let confusion, let errors {
            let diagonal = (0..<10).map { confusion[$0][$0] }.reduce(0, +)
            XCTAssertEqual(100 - diagonal, errors, "off-diagonal = errors", file: file, line: line)
        }
        let ece = report["expected_calibration_error"] as? Double
        XCTAssertNotNil(ece, "expected_calibration_error", file: file, line: line)
        if let ece { XCTAssertTrue(ece >= 0 && ece <= 1, "ECE \(ece)", file: file, line: line) }
        XCTAssertNotNil(report["seconds_per_epoch"] as? Double, "seconds_per_epoch", file: file, line: line)
        XCTAssertGreaterThan(report["peak_rss_bytes"] as? Int ?? 0, 0, "peak_rss_bytes", file: file, line: line)
        if teacherMetrics {
            let agreement = report["teacher_agreement"] as? Double
            XCTAssertNotNil(agreement, "teacher_agreement", file: file, line: line)
            if let agreement { XCTAssertTrue(agreement >= 0 && agreement <= 1, "agreement \(agreement)", file: file, line: line) }
            let kl = report["kl_teacher_student"] as? Double
            XCTAssertNotNil(kl, "kl_teacher_student", file: file, line: line)
            if let kl { XCTAssertTrue(kl >= -1e-6 && kl.isFinite, "KL \(kl)", file: file, line: line) }
        }
    }

    func testDistillFromOnlineTeacher() throws {
        let teacher = try trainTeacher("teacher.safetensors")
        let out = path("student.safetensors")
        let result = try distill(["--teacher", teacher, "--temperature", "4", "--hard-weight", "0.5", "--soft-weight", "0.5", "--json"],
                                 output: out)
        assertSucceeded(result, "distill")
        let report = try lastLineJSON(result.stdout)
        checkReport(report, teacherMetrics: true)
        let loss = try XCTUnwrap(report["distillation"] as? [String: Any], "distillation object in \(result.stdout)")
        XCTAssertEqual((loss["temperature"] as? Double).map(Float.init), 4, "\(loss)")
        XCTAssertEqual((loss["hard_weight"] as? Double ?? loss["hardWeight"] as? Double).map(Float.init), 0.5, "\(loss)")
        XCTAssertEqual((loss["soft_weight"] as? Double ?? loss["softWeight"] as? Double).map(Float.init), 0.5, "\(loss)")
        let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: out))
        let teacherCheckpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: teacher))
        XCTAssertEqual(checkpoint.metadata["teacher_identity"], modelIdentity(teacherCheckpoint.model))
        XCTAssertEqual(checkpoint.model.flattenedLayers.compactMap { $0 as? Linear }.map(\.outputCount), [16, 10])
        // Better than chance (one epoch of 7 batches from a one-epoch teacher is all it gets).
        XCTAssertLessThan(report["test_errors"] as? Int ?? 100, 90)
    }

    /// Without jitter the teacher's training-set logits are cached in memory (reported as `teacher_cache`);
    /// `--no-teacher-cache` and `--jitter` run it on every batch. Each mode is reproducible run to run.
    func testTeacherCacheModes() throws {
        let teacher = try trainTeacher("teacher.safetensors")
        var files: [String: Data] = [:]
        for (name, flags, expected) in [("cached", [String](), "memory"), ("cached-again", [], "memory"),
                                        ("online", ["--no-teacher-cache"], "off"), ("jitter", ["--jitter", "1"], "off")] {
            let out = path("student-\(name).safetensors")
            let result = try distill(["--teacher", teacher, "--temperature", "4", "--json"] + flags, output: out)
            assertSucceeded(result, name)
            guard result.status == 0 else { continue }
            XCTAssertEqual(try lastLineJSON(result.stdout)["teacher_cache"] as? String, expected, name)
            files[name] = try Data(contentsOf: URL(fileURLWithPath: out))
        }
        XCTAssertEqual(files["cached"], files["cached-again"], "a cached run is reproducible")
    }

    /// With a teacher run on every batch and two threads, its pass for the next batch overlaps the student's step
    /// (`teacher_overlap`); `--no-teacher-overlap` takes turns. Each is reproducible run to run.
    func testTeacherOverlapModes() throws {
        let teacher = try trainTeacher("teacher.safetensors")
        var files: [String: Data] = [:]
        for (name, flags, expected) in [("overlap", ["--threads", "2"], true), ("overlap-again", ["--threads", "2"], true),
                                        ("turns", ["--threads", "2", "--no-teacher-overlap"], false),
                                        ("one-thread", ["--threads", "1"], false), ("three-threads", ["--threads", "3"], false),
                                        ("cached", ["--threads", "2", "--jitter", "0"], false)] {
            let out = path("student-\(name).safetensors")
            let jitter = name == "cached" ? [] : ["--jitter", "1"]
            let result = try distill(["--teacher", teacher, "--temperature", "4", "--json"] + jitter + flags, output: out)
            assertSucceeded(result, name)
            guard result.status == 0 else { continue }
            XCTAssertEqual(try lastLineJSON(result.stdout)["teacher_overlap"] as? Bool, expected, name)
            XCTAssertEqual(result.stderr.contains("one batch ahead on its own thread"), expected, name)
            files[name] = try Data(contentsOf: URL(fileURLWithPath: out))
        }
        XCTAssertEqual(files["overlap"], files["overlap-again"], "an overlapped run is reproducible")
    }

    func testDistillFromEnsemble() throws {
        let a = try trainTeacher("a.safetensors", seed: 1)
        let b = try trainTeacher("b.safetensors", seed: 2)
        for combination in ["meanProbabilities", "meanLogits"] {
            let out = path("student-\(combination).safetensors")
            let result = try distill(["--teacher", "\(a),\(b)", "--ensemble", combination, "--temperature", "4", "--json"], output: out)
            assertSucceeded(result, "--ensemble \(combination)")
            guard result.status == 0 else { continue }
            checkReport(try lastLineJSON(result.stdout), teacherMetrics: true)
            let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: out))
            XCTAssertNotNil(checkpoint.metadata["teacher_identity"], combination)
        }
        // The raw spelling works too; an unknown one is refused naming the flag.
        let raw = try distill(["--teacher", "\(a),\(b)", "--ensemble", "mean-logits"], output: path("raw.safetensors"))
        assertSucceeded(raw, "--ensemble mean-logits")
        let bogus = try distill(["--teacher", "\(a),\(b)", "--ensemble", "median"], output: path("bogus.safetensors"))
        assertFailedCleanly(bogus, naming: "--ensemble", "--ensemble median")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bogus.safetensors")))
    }

    func testTeacherLogitStoreRoundTrip() throws {
        let teacher = try trainTeacher("teacher.safetensors")
        for (name, flags) in [("full", [String]()), ("half", ["--dtype", "float16"]), ("top3", ["--top-k", "3"]),
                              ("half-top3", ["--dtype", "float16", "--top-k", "3"])] {
            let store = path("\(name).logits")
            let written = try runDistill(["teacher-logits", teacher, "--output", store, "--data-dir", dataDirectory.path,
                                          "--threads", "1"] + flags, in: directory)
            assertSucceeded(written, "teacher-logits \(name)")
            let read = try TeacherLogitStore.read(url: URL(fileURLWithPath: store))
            XCTAssertEqual(read.exampleCount, 200)
            XCTAssertEqual(read.topK, flags.contains("--top-k") ? 3 : nil)
            XCTAssertEqual(read.storageType, flags.contains("float16") ? .float16 : .float32)
            let out = path("student-\(name).safetensors")
            let result = try distill(["--teacher-logits", store, "--temperature", "4", "--json"], output: out)
            assertSucceeded(result, "distill from store \(name)")
            checkReport(try lastLineJSON(result.stdout), teacherMetrics: false)
            XCTAssertEqual(try ModelCheckpoint.read(url: URL(fileURLWithPath: out)).metadata["teacher_identity"], read.teacherIdentity)
        }
        // A top-k store feeds the sparse loss with its missing mass spread evenly or as one bucket.
        for mode in ["uniform", "bucket"] {
            let out = path("student-top3-\(mode).safetensors")
            let result = try distill(["--teacher-logits", path("top3.logits"), "--temperature", "4", "--missing-mass", mode, "--json"], output: out)
            assertSucceeded(result, "distill from top3 store, missing mass \(mode)")
            checkReport(try lastLineJSON(result.stdout), teacherMetrics: false)
        }
        let badMode = try distill(["--teacher-logits", path("top3.logits"), "--missing-mass", "spread"], output: path("bad-mode.safetensors"))
        assertFailedCleanly(badMode, naming: "--missing-mass", "unknown missing-mass mode")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("bad-mode.safetensors")))
        let store = path("full.logits")
        // Jitter: the store holds un-augmented logits.
        let jitterOut = path("jitter.safetensors")
        let jitter = try distill(["--teacher-logits", store, "--jitter", "1"], output: jitterOut)
        assertFailedCleanly(jitter, naming: "full.logits", "--jitter 1")
        XCTAssertEqual(jitter.stderrLines.count, 1, jitter.stderr)
        XCTAssertTrue(jitter.stderr.contains("jitter"), jitter.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: jitterOut))
        // Other data (same counts, different images): a different fingerprint.
        let other = directory.appendingPathComponent("other-mnist")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        try writeTinyMNIST(to: other, trainCount: 200, testCount: 100, seed: 99)
        let otherOut = path("other.safetensors")
        let mismatch = try distill(["--teacher-logits", store], output: otherOut, dataDir: other)
        assertFailedCleanly(mismatch, naming: "full.logits", "other data")
        XCTAssertEqual(mismatch.stderrLines.count, 1, mismatch.stderr)
        XCTAssertTrue(mismatch.stderr.contains("fingerprint"), mismatch.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: otherOut))
        // Other data with another example count.
        let smaller = directory.appendingPathComponent("smaller-mnist")
        try FileManager.default.createDirectory(at: smaller, withIntermediateDirectories: true)
        try writeTinyMNIST(to: smaller, trainCount: 150, testCount: 100)
        let countMismatch = try distill(["--teacher-logits", store], output: otherOut, dataDir: smaller)
        assertFailedCleanly(countMismatch, naming: "full.logits", "other example count")
        XCTAssertFalse(FileManager.default.fileExists(atPath: otherOut))
    }

    func testBadDistillInputsFailCleanly() throws {
        let teacher = try trainTeacher("teacher.safetensors")
        var rng = RandomGenerator(seed: 3)
        // A 5-class teacher and a 10-input teacher.
        let fiveClasses = path("five-classes.safetensors")
        try ModelCheckpoint(model: Sequential(specifications: [.linear(inputCount: 784, outputCount: 8), .relu,
                                                               .linear(inputCount: 8, outputCount: 5)], generator: &rng))
            .write(to: URL(fileURLWithPath: fiveClasses), overwrite: false)
        let narrow = path("narrow.safetensors")
        try ModelCheckpoint(model: Sequential(specifications: [.linear(inputCount: 10, outputCount: 8), .relu,
                                                               .linear(inputCount: 8, outputCount: 10)], generator: &rng))
            .write(to: URL(fileURLWithPath: narrow), overwrite: false)
        // A random-bytes store and a truncated store.
        let randomStore = path("random.logits")
        try Data((0..<4096).map { _ in UInt8(truncatingIfNeeded: rng.nextUInt64()) }).write(to: URL(fileURLWithPath: randomStore))
        let goodStore = path("good.logits")
        assertSucceeded(try runDistill(["teacher-logits", teacher, "--output", goodStore, "--data-dir", dataDirectory.path],
                                       in: directory), "teacher-logits")
        let full = try Data(contentsOf: URL(fileURLWithPath: goodStore))
        let truncatedStore = path("truncated.logits")
        try full.prefix(full.count / 2).write(to: URL(fileURLWithPath: truncatedStore))
        // A model checkpoint used as a store (valid safetensors, wrong format stamp).
        let cases: [([String], String)] = [
            (["--teacher", teacher, "--temperature", "0"], "--temperature"),
            (["--teacher", teacher, "--temperature", "-1"], "--temperature"),
            (["--teacher", teacher, "--temperature", "nan"], "--temperature"),
            (["--teacher", teacher, "--hard-weight", "-1"], "--hard-weight"),
            (["--teacher", teacher, "--hard-weight", "0", "--soft-weight", "0"], "weight"),
            (["--teacher", teacher, "--soft-weight", "nan"], "--soft-weight"),
            (["--teacher", teacher, "--soft-weight", "inf"], "--soft-weight"),
            (["--teacher", teacher, "--teacher-logits", goodStore], "--teacher"),
            ([], "--teacher"),
            (["--teacher", fiveClasses], "five-classes.safetensors"),
            (["--teacher", narrow], "narrow.safetensors"),
            (["--teacher", "\(teacher),\(fiveClasses)"], "five-classes.safetensors"),
            (["--teacher", path("missing.safetensors")], "missing.safetensors"),
            (["--teacher-logits", randomStore], "random.logits"),
            (["--teacher-logits", truncatedStore], "truncated.logits"),
            (["--teacher-logits", teacher], "teacher.safetensors"),
            (["--teacher-logits", path("missing.logits")], "missing.logits"),
        ]
        let out = path("out.safetensors")
        for (flags, needle) in cases {
            let result = try distill(flags, output: out)
            assertFailedCleanly(result, naming: needle, flags.joined(separator: " "))
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(flags): no output file")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out + ".state"), "\(flags): no state file")
        }
    }

    func testBadTeacherLogitsFlagsFailCleanly() throws {
        let teacher = try trainTeacher("teacher.safetensors")
        let store = path("store.logits")
        let cases: [([String], String)] = [
            (["--top-k", "0"], "--top-k"),
            (["--top-k", "11"], "--top-k"),
            // A negative value must reach validation, not be taken for a flag ("Missing value for '--top-k'").
            (["--top-k", "-1"], "--top-k must be >= 1, got -1"),
            (["--dtype", "float64"], "--dtype"),
            (["--threads", "0"], "--threads"),
        ]
        for (flags, needle) in cases {
            let result = try runDistill(["teacher-logits", teacher, "--output", store, "--data-dir", dataDirectory.path] + flags,
                                        in: directory)
            assertFailedCleanly(result, naming: needle, flags.joined(separator: " "))
            XCTAssertFalse(FileManager.default.fileExists(atPath: store), "\(flags): no store written")
        }
        let missing = try runDistill(["teacher-logits", path("missing.safetensors"), "--output", store,
                                      "--data-dir", dataDirectory.path], in: directory)
        assertFailedCleanly(missing, naming: "missing.safetensors", "missing teacher")
        XCTAssertEqual(missing.stderrLines.count, 1, missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: store))
    }
}
