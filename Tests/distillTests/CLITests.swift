import Checkpoints
import Foundation
import XCTest
import TensorCore
import NeuralNet
import Datasets
import Distillation
import TensorIO

/// Runs the built `distill` executable as a user would (see `distillExecutable()` for where it is found; the tests
/// skip when it has not been built).
final class CLITests: TinyMNISTTestCase {
    func json(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try lastLineJSON(text, file: file, line: line)
    }

    /// A failed command: exited (no signal), non-zero status, the first stderr line is the error naming `needle`,
    /// and nothing that looks like a crash (the shared check in DistillSupport.swift).
    func assertCleanFailure(_ result: CommandResult, naming needle: String, _ message: String = "",
                            file: StaticString = #filePath, line: UInt = #line) {
        assertFailedCleanly(result, naming: needle, message, file: file, line: line)
    }

    /// Errors found while running (not flag parsing) are exactly one line.
    func assertOneLine(_ result: CommandResult, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(result.stderrLines.count, 1, "expected a one-line error, got: \(result.stderr)", file: file, line: line)
    }

    func train(_ extra: [String], output: String) throws -> CommandResult {
        try runDistill(["train", "--hidden", "32", "--epochs", "1", "--batch-size", "32", "--threads", "1",
                        "--data-dir", dataDirectory.path, "--output", output] + extra, in: directory)
    }

    func testTrainThenEvaluateAgree() throws {
        let out = path("model.safetensors")
        let trained = try train(["--json"], output: out)
        XCTAssertEqual(trained.reason, .exit)
        XCTAssertEqual(trained.status, 0, trained.stderr)
        let report = try json(trained.stdout)
        for key in ["test_errors", "test_accuracy", "seconds_per_epoch", "peak_rss_bytes"] {
            XCTAssertNotNil(report[key], "missing \(key) in \(trained.stdout)")
        }
        XCTAssertEqual(report["test_count"] as? Int, 100)
        XCTAssertGreaterThan(report["peak_rss_bytes"] as? Int ?? 0, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out))
        let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: out))
        XCTAssertEqual(checkpoint.inputCount, 784)
        XCTAssertEqual(checkpoint.model.flattenedLayers.compactMap { $0 as? Linear }.map(\.outputCount), [32, 10])
        XCTAssertEqual(checkpoint.training?.model.mlp?.hidden, [32])

        let evaluated = try runDistill(["evaluate", out, "--data-dir", dataDirectory.path, "--json"], in: directory)
        XCTAssertEqual(evaluated.reason, .exit)
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        let evaluation = try json(evaluated.stdout)
        XCTAssertEqual(evaluation["test_errors"] as? Int, report["test_errors"] as? Int)
        XCTAssertEqual(evaluation["test_count"] as? Int, 100)
        // The synthetic task is easy: one epoch learns it.
        XCTAssertLessThan(report["test_errors"] as? Int ?? 100, 20)

        // Human-readable output names the file.
        let again = try train(["--force"], output: out)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stdout.contains("test errors:"), again.stdout)
    }

    func testBadFlagsFailCleanly() throws {
        let out = path("out.safetensors")
        let cases: [([String], String)] = [
            (["--hidden", "0"], "--hidden"),
            (["--hidden", "32,-4"], "--hidden"),
            // Negative values must reach validation, not be taken for a flag ("Missing value for '--learning-rate'").
            (["--learning-rate", "-1"], "--learning-rate must be > 0, got -1"),
            (["--learning-rate=-1"], "--learning-rate must be > 0, got -1"),
            (["--weight-decay", "-0.5"], "--weight-decay must be >= 0"),
            (["--epochs", "-3"], "--epochs must be >= 1"),
            (["--hidden", "-4"], "--hidden expects positive layer sizes"),
            (["--seed", "-1"], "--seed"),
            (["--learning-rate", "0"], "--learning-rate"),
            (["--epochs", "0"], "--epochs"),
            (["--batch-size", "0"], "--batch-size"),
            (["--threads", "0"], "--threads"),
            (["--momentum", "1.5"], "--momentum"),
            (["--schedule", "bogus"], "--schedule"),
        ]
        for (flags, needle) in cases {
            let result = try train(flags, output: out)
            assertCleanFailure(result, naming: needle, flags.joined(separator: " "))
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(flags): no output file")
        }
    }

    func testMissingDataDirectory() throws {
        let out = path("out.safetensors")
        let missing = path("no-such-dir")
        let result = try runDistill(["train", "--hidden", "8", "--epochs", "1", "--data-dir", missing, "--output", out],
                                    in: directory)
        assertCleanFailure(result, naming: "no-such-dir")
        assertOneLine(result)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// Replaces one data file, runs `train`, expects a one-line error naming that file and no output.
    func assertBadData(_ name: String, _ content: Data, _ message: String, file: StaticString = #filePath, line: UInt = #line) throws {
        try writeTinyMNIST(to: dataDirectory)
        try content.write(to: dataDirectory.appendingPathComponent(name))
        let out = path("out.safetensors")
        let result = try train([], output: out)
        assertCleanFailure(result, naming: name, message, file: file, line: line)
        assertOneLine(result, file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), message, file: file, line: line)
    }

    func testBadDataFilesFailCleanly() throws {
        // A truncated gzip stream (the first 600 bytes of the real compressed test images, under the train name).
        let realGzip = try Data(contentsOf: vendoredMNIST.appendingPathComponent(MNIST.testImagesFile))
        XCTAssertTrue(Gzip.isGzip(Array(realGzip.prefix(2))))
        try assertBadData(MNIST.trainImagesFile, realGzip.prefix(600), "truncated gzip")
        // Wrong magic: an image file holding a label-format (rank 1) IDX file.
        try assertBadData(MNIST.trainImagesFile, Data(try IDXFile(shape: [300], bytes: [UInt8](repeating: 1, count: 300)).encoded()),
                          "wrong magic (images)")
        var badMagic = try IDXFile(shape: [300], bytes: [UInt8](repeating: 1, count: 300)).encoded()
        badMagic[2] = 0x0D  // float element type
        try assertBadData(MNIST.trainLabelsFile, Data(badMagic), "unsupported element type (labels)")
        try assertBadData(MNIST.trainLabelsFile, Data([0x12, 0x34, 0x56, 0x78] + [UInt8](repeating: 0, count: 40)), "garbage magic")
        // Image/label count mismatch.
        try assertBadData(MNIST.trainLabelsFile, Data(try IDXFile(shape: [299], bytes: [UInt8](repeating: 1, count: 299)).encoded()),
                          "count mismatch")
        // Truncated raw IDX (header promises more than is there).
        let images = try IDXFile(shape: [300, 28, 28], bytes: [UInt8](repeating: 0, count: 300 * 784)).encoded()
        try assertBadData(MNIST.testImagesFile, Data(images.prefix(5000)), "truncated raw IDX")
        // Labels out of range.
        try assertBadData(MNIST.testLabelsFile, Data(try IDXFile(shape: [100], bytes: [UInt8](repeating: 10, count: 100)).encoded()),
                          "label 10")
        // Empty file.
        try assertBadData(MNIST.trainImagesFile, Data(), "empty file")
    }

    func testExistingOutputNeedsForce() throws {
        let out = path("existing.safetensors")
        let original = Data("do not overwrite".utf8)
        try original.write(to: URL(fileURLWithPath: out))
        let result = try train([], output: out)
        assertCleanFailure(result, naming: out)
        XCTAssertTrue(result.stderr.contains("--force"), result.stderr)
        assertOneLine(result)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), original)
        // Output in a directory that does not exist, or a directory as output.
        let nested = path("no-such-dir/model.safetensors")
        let r2 = try train([], output: nested)
        assertCleanFailure(r2, naming: "--output")
        let r3 = try train([], output: directory.path)
        assertCleanFailure(r3, naming: "--output")
    }

    func testEvaluateRejectsBadModels() throws {
        var rng = RandomGenerator(seed: 12)
        // Random bytes.
        let random = path("random.safetensors")
        try Data((0..<2048).map { _ in UInt8(truncatingIfNeeded: rng.nextUInt64()) }).write(to: URL(fileURLWithPath: random))
        // A truncated valid checkpoint.
        let good = directory.appendingPathComponent("good.safetensors")
        let model = Sequential(specifications: [.linear(inputCount: 784, outputCount: 8), .relu,
                                                .linear(inputCount: 8, outputCount: 10)], generator: &rng)
        try ModelCheckpoint(model: model).write(to: good, overwrite: false)
        let full = try Data(contentsOf: good)
        let truncated = path("truncated.safetensors")
        try full.prefix(full.count / 2).write(to: URL(fileURLWithPath: truncated))
        // Wrong input size (a 10-feature model).
        let narrow = directory.appendingPathComponent("narrow.safetensors")
        let narrowModel = Sequential(specifications: [.linear(inputCount: 10, outputCount: 8), .relu,
                                                      .linear(inputCount: 8, outputCount: 10)], generator: &rng)
        try ModelCheckpoint(model: narrowModel).write(to: narrow, overwrite: false)
        // Wrong class count.
        let classes = directory.appendingPathComponent("classes.safetensors")
        try ModelCheckpoint(model: Sequential(specifications: [.linear(inputCount: 784, outputCount: 3)], generator: &rng))
            .write(to: classes, overwrite: false)
        // An empty file.
        let empty = path("empty.safetensors")
        FileManager.default.createFile(atPath: empty, contents: Data())

        for (file, what) in [(random, "random bytes"), (truncated, "truncated"), (narrow.path, "wrong input size"),
                             (classes.path, "wrong class count"), (empty, "empty"), (path("missing.safetensors"), "missing")] {
            let result = try runDistill(["evaluate", file, "--data-dir", dataDirectory.path, "--json"], in: directory)
            assertCleanFailure(result, naming: URL(fileURLWithPath: file).lastPathComponent, what)
            assertOneLine(result)
        }
        // Hostile 'architecture' metadata: impossible layer sizes, a bad dropout probability, a layer far larger
        // than the file's tensors (must be rejected before allocating it).
        let hostile: [(String, String)] = [
            ("zero-size", #"[{"linear":{"inputCount":0,"outputCount":10}}]"#),
            ("negative-size", #"[{"linear":{"inputCount":784,"outputCount":-10}}]"#),
            ("dropout", #"[{"dropout":{"probability":1.5}},{"linear":{"inputCount":784,"outputCount":10}}]"#),
            ("huge", #"[{"linear":{"inputCount":784,"outputCount":4000000000}}]"#),
            ("overflow", #"[{"linear":{"inputCount":4611686018427387904,"outputCount":4611686018427387904}}]"#),
            ("not-json", "[{"),
        ]
        for (name, architecture) in hostile {
            let url = directory.appendingPathComponent("hostile-\(name).safetensors")
            let w = Tensor(shape: [10, 784], repeating: 0.01), b = Tensor(shape: [10], repeating: 0)
            try SafeTensors.write(tensors: [("0.weight", w, .f32), ("0.bias", b, .f32)],
                                  metadata: ["architecture": architecture, "format": ModelCheckpoint.format],
                                  to: url, overwrite: false)
            let result = try runDistill(["evaluate", url.path, "--data-dir", dataDirectory.path], in: directory)
            assertCleanFailure(result, naming: url.lastPathComponent, "hostile architecture \(name)")
            assertOneLine(result)
        }
        // A plain state dict (no architecture) whose weight has zero rows: the inferred Linear must not trap.
        let zeroRows = directory.appendingPathComponent("zero-rows.safetensors")
        try SafeTensors.write(tensors: [("0.weight", Tensor(shape: [0, 784]), .f32), ("0.bias", Tensor(shape: [0]), .f32)],
                              to: zeroRows, overwrite: false)
        let zeroResult = try runDistill(["evaluate", zeroRows.path, "--data-dir", dataDirectory.path], in: directory)
        assertCleanFailure(zeroResult, naming: zeroRows.lastPathComponent, "zero-row state dict")
        assertOneLine(zeroResult)
        // The good one works.
        let ok = try runDistill(["evaluate", good.path, "--data-dir", dataDirectory.path, "--json"], in: directory)
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertEqual(try json(ok.stdout)["test_count"] as? Int, 100)
        // Bad evaluate flags.
        let threads = try runDistill(["evaluate", good.path, "--data-dir", dataDirectory.path, "--threads", "0"], in: directory)
        assertCleanFailure(threads, naming: "--threads", "evaluate --threads 0")
    }

    /// `--blas mkl` without MKL fails before any work, naming the flag and what to install, and writes nothing;
    /// a bad DISTILL_BLAS names the variable; `--blas openblas` wins over the variable.
    func testBLASChoiceErrors() throws {
        let out = path("blas.safetensors")
        let missing = try runDistill(["train", "--hidden", "32", "--epochs", "1", "--batch-size", "32", "--threads", "1",
                                      "--data-dir", dataDirectory.path, "--output", out, "--blas", "mkl"],
                                     in: directory, environment: ["DISTILL_MKL": "/nonexistent/libmkl_rt.so"])
        assertCleanFailure(missing, naming: "--blas mkl")
        XCTAssertTrue(missing.stderr.contains("/nonexistent/libmkl_rt.so"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let bad = try runDistill(["train", "--hidden", "32", "--epochs", "1", "--data-dir", dataDirectory.path, "--output", out],
                                 in: directory, environment: ["DISTILL_BLAS": "cublas"])
        assertCleanFailure(bad, naming: "DISTILL_BLAS=cublas")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let unknown = try train(["--blas", "atlas"], output: out)
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("--blas"), unknown.stderr)
        let overridden = try runDistill(["train", "--hidden", "32", "--epochs", "1", "--batch-size", "32", "--threads", "1",
                                         "--data-dir", dataDirectory.path, "--output", out, "--blas", "openblas", "--json"],
                                        in: directory, environment: ["DISTILL_BLAS": "cublas"])
        XCTAssertEqual(overridden.status, 0, overridden.stderr)
        XCTAssertEqual(try json(overridden.stdout)["blas"] as? String, "openblas")
    }

    /// On a CPU with the sparse kernels (AVX-512) `train` multiplies the (mostly zero) images with them by default and
    /// with BLAS under `--dense-inputs`: the report and the model's metadata and configuration say which, each choice
    /// gives the same weights twice, and the two give different weights (the summation order differs, so the flag
    /// reaches the product). Elsewhere both runs are dense and identical.
    func testDenseInputsFlag() throws {
        var files: [String: Data] = [:]
        for (name, extra) in [("sparse-a", []), ("sparse-b", []), ("dense-a", ["--dense-inputs"]), ("dense-b", ["--dense-inputs"])] {
            let out = path("\(name).safetensors")
            let result = try train(extra + ["--json"], output: out)
            XCTAssertEqual(result.status, 0, result.stderr)
            let expected = name.hasPrefix("dense") || !SparseKernels.isFast ? "dense" : "sparse"
            XCTAssertEqual(try json(result.stdout)["input_kernels"] as? String, expected, name)
            let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: out))
            XCTAssertEqual(checkpoint.metadata["input_kernels"], expected, name)
            XCTAssertEqual(checkpoint.training?.runtime.inputKernels.rawValue, expected, name)
            files[name] = try Data(contentsOf: URL(fileURLWithPath: out))
        }
        XCTAssertEqual(files["sparse-a"], files["sparse-b"], "default kernels: same seed, different weights")
        XCTAssertEqual(files["dense-a"], files["dense-b"], "--dense-inputs: same seed, different weights")
        if SparseKernels.isFast {
            XCTAssertNotEqual(files["sparse-a"], files["dense-a"], "--dense-inputs did not change the product")
        } else {
            XCTAssertEqual(files["sparse-a"], files["dense-a"])
        }
    }

    /// With MKL installed: `--blas mkl` trains, says so on stderr and in the report and the model's metadata, and
    /// gives the same weights twice (skipped without MKL).
    func testTrainWithMKLIsReproducible() throws {
        var files: [Data] = []
        for run in 0..<2 {
            let out = path("mkl-\(run).safetensors")
            let result = try runDistill(["train", "--hidden", "64", "--epochs", "1", "--batch-size", "32", "--threads", "2",
                                         "--data-dir", dataDirectory.path, "--output", out, "--blas", "mkl", "--json"],
                                        in: directory)
            if result.status != 0 && result.stderr.contains("MKL could not be loaded") {
                throw XCTSkip("MKL not installed")
            }
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertTrue(result.stderr.contains("BLAS: MKL"), result.stderr)
            XCTAssertEqual(try json(result.stdout)["blas"] as? String, "mkl")
            let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: out))
            XCTAssertEqual(checkpoint.metadata["blas"], "mkl")
            files.append(try Data(contentsOf: URL(fileURLWithPath: out)))
        }
        XCTAssertEqual(files[0], files[1], "same seed and --blas mkl, different weights")
    }
}
