import Benchmarking
import Foundation
import XCTest
import Distillation
import Datasets
import TensorCore

/// `distill bench` end to end on a tiny synthetic MNIST: every phase runs in its subprocess and reports positive
/// timings, the JSON and the tables agree on the phases, `distill_cached` reports its setup; the PyTorch side is
/// run through a stand-in Python (its malloc settings checked) or skipped with the reason when torch cannot import.
final class BenchCommandTests: XCTestCase {
    /// `--onnxruntime` without a Python that imports onnxruntime: one error line saying so, nothing else run.
    func testONNXRuntimeComparisonWithoutONNXRuntimeIsOneLine() throws {
        _ = try distillExecutable()
        let directory = try makeTemporaryDirectory(self)
        let result = try runDistill(["bench", "--onnxruntime", "--quick"], in: directory, environment: ["DISTILL_PYTHON": "/bin/false"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(result.stderrLines.count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("--onnxruntime") && result.stderr.contains("onnxruntime"), result.stderr)
        XCTAssertTrue(result.stdout.isEmpty, result.stdout)
        XCTAssertNil(BenchmarkDriver.findPython(importing: "onnxruntime", environment: ["DISTILL_PYTHON": "/bin/false"]))
    }

    func testQuickBenchReportsEveryPhase() throws {
        let (directory, data) = try makeBenchDirectory()
        let reportFile = directory.appendingPathComponent("report.json").path
        let result = try runDistill(["bench", "--quick", "--no-torch", "--threads", "2", "--max-batches", "2",
                                     "--data-dir", data.path, "--json-output", reportFile], in: directory)
        assertSucceeded(result, "bench")
        guard result.status == 0 else { return }
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportFile))) as? [String: Any])
        let phases = try XCTUnwrap(report["phases"] as? [String: Any])
        for phase in ["student", "teacher", "distill_online", "distill_cached", "distill_store", "inference", "latency"] {
            let ours = try XCTUnwrap((phases[phase] as? [String: Any])?["ours"] as? [String: Any], phase)
            let seconds = (ours["seconds_per_epoch"] ?? ours["seconds_per_pass"] ?? ours["latency_milliseconds"]) as? Double
            XCTAssertGreaterThan(seconds ?? 0, 0, phase)
            XCTAssertGreaterThan(ours["peak_resident_bytes"] as? Int ?? 0, 0, phase)
            XCTAssertTrue(result.stdout.contains("| \(phase)"), "table row for \(phase)")
        }
        let cached = (phases["distill_cached"] as? [String: Any])?["ours"] as? [String: Any]
        XCTAssertGreaterThan(cached?["setup_seconds"] as? Double ?? 0, 0, "setup of the teacher cache")
        XCTAssertTrue(result.stdout.contains("distill_cached setup"), result.stdout)
        XCTAssertEqual(report["torch_note"] as? String, "--no-torch")
        let sparse = SparseKernels.isFast
        XCTAssertEqual(report["input_kernels"] as? String, sparse ? "sparse" : "dense")
        XCTAssertTrue(result.stdout.contains(sparse ? "multiply only the nonzeros" : "multiplied densely"), result.stdout)
        XCTAssertEqual(result.stdout.contains("can pass 100% of the sgemm peak"), sparse, result.stdout)
        XCTAssertEqual(report["sparse_kernel_path"] as? String, sparse ? SparseKernels.vectorPath : nil)
        // The distillation phases' teacher: the shipped trained one, named in the report and the table.
        let teacher = try XCTUnwrap(report["distill_teacher"] as? String)
        XCTAssertTrue(teacher.hasSuffix("Data/teachers/\(BenchmarkModels.defaultTeacherName)"), teacher)
        XCTAssertTrue(result.stdout.contains("distillation phases: the trained teacher \(teacher)"), result.stdout)
    }

    /// `--teacher FILE` must hold a 784-1200-1200-10 model and `--random-teacher` excludes it: bad choices fail
    /// before any phase runs, naming the file or the flags and what was expected.
    func testBadTeacherChoicesFailBeforeAnyPhase() throws {
        let (directory, data) = try makeBenchDirectory()
        let small = directory.appendingPathComponent("small.safetensors").path
        assertSucceeded(try runDistill(["train", "--hidden", "8", "--epochs", "1", "--data-dir", data.path,
                                        "--output", small], in: directory), "train a small model")
        let missing = directory.appendingPathComponent("missing.safetensors").path
        let cases: [([String], [String])] = [
            (["--teacher", small], [small, "784-1200-1200-10", "784-8-10"]),
            (["--teacher", missing], [missing]),
            (["--teacher", small, "--random-teacher"], ["--teacher and --random-teacher"]),
        ]
        for (flags, expected) in cases {
            let result = try runDistill(["bench", "--quick", "--no-torch", "--max-batches", "2", "--data-dir", data.path] + flags,
                                        in: directory)
            XCTAssertNotEqual(result.status, 0, "\(flags)")
            for text in expected { XCTAssertTrue(result.stderr.contains(text), "\(flags): \(result.stderr)") }
            XCTAssertFalse(result.stderr.contains("phase student"), "\(flags): no phase may run: \(result.stderr)")
        }
        // A copy of the shipped teacher whose SHA256SUMS does not match it is refused, naming the file.
        let shipped = try XCTUnwrap(BenchmarkModels.defaultTeacherFile())
        let copies = directory.appendingPathComponent("teachers")
        try FileManager.default.createDirectory(at: copies, withIntermediateDirectories: true)
        let copy = copies.appendingPathComponent("t.safetensors")
        try FileManager.default.copyItem(at: shipped, to: copy)
        try "\(String(repeating: "0", count: 64))  t.safetensors\n".write(to: copies.appendingPathComponent("SHA256SUMS"),
                                                                          atomically: true, encoding: .utf8)
        let damaged = try runDistill(["bench", "--quick", "--no-torch", "--data-dir", data.path, "--teacher", copy.path],
                                     in: directory)
        XCTAssertNotEqual(damaged.status, 0)
        XCTAssertTrue(damaged.stderr.contains(copy.path) && damaged.stderr.contains("expected SHA-256 0000"), damaged.stderr)
        XCTAssertFalse(damaged.stderr.contains("phase student"), damaged.stderr)
        // The shipped file is listed in its SHA256SUMS and matches it (the default runs check it).
        let sums = try SHA256Sums.read(shipped.deletingLastPathComponent().appendingPathComponent("SHA256SUMS"))
        XCTAssertNotNil(sums.digests[BenchmarkModels.defaultTeacherName])
        XCTAssertNoThrow(try sums.verify([UInt8](Data(contentsOf: shipped)), name: BenchmarkModels.defaultTeacherName))
        // A child given a bad teacher fails the same way.
        let child = try runDistill(["bench", "--phase", "distill_online", "--json", "--teacher", small, "--data-dir", data.path],
                                   in: directory)
        XCTAssertNotEqual(child.status, 0)
        XCTAssertTrue(child.stderr.contains(small) && child.stderr.contains("784-1200-1200-10"), child.stderr)
    }

    /// `--alternate K` with a training phase: the kernel is off for 10 full steps, on for the next 10, and so on; the
    /// report gives each setting's median step time (x 60,000 / 128) and their ratio. Wrong kernel names and phases
    /// are refused, naming the flag.
    func testAlternateTimesAKernelOnAndOff() throws {
        let (directory, data) = try makeBenchDirectory()
        // 300 training images: two full batches an epoch, 20 over ten epochs.
        let result = try runDistill(["bench", "--phase", "student", "--epochs", "10", "--json", "--alternate",
                                     "sparse-gradient", "--data-dir", data.path], in: directory)
        assertSucceeded(result, "bench --alternate")
        guard result.status == 0 else { return }
        let line = try XCTUnwrap(result.stdout.split(separator: "\n").last)
        let phase = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let alternation = try XCTUnwrap(phase["alternation"] as? [String: Any])
        XCTAssertEqual(alternation["kernel"] as? String, "sparse-gradient")
        XCTAssertEqual(alternation["steps_on"] as? Int, 10)
        XCTAssertEqual(alternation["steps_off"] as? Int, 10)
        let on = try XCTUnwrap(alternation["on_epoch_seconds"] as? Double)
        let off = try XCTUnwrap(alternation["off_epoch_seconds"] as? Double)
        XCTAssertGreaterThan(on, 0)
        XCTAssertEqual(alternation["ratio"] as? Double ?? 0, on / off, accuracy: 1e-9)
        XCTAssertGreaterThan(phase["median_step_epoch_seconds"] as? Double ?? 0, 0)

        let bogus = try runDistill(["bench", "--phase", "student", "--alternate", "bogus"], in: directory)
        XCTAssertNotEqual(bogus.status, 0)
        XCTAssertTrue(bogus.stderr.contains("--alternate: expected one of sparse-forward, sparse-gradient, got 'bogus'"), bogus.stderr)
        let inference = try runDistill(["bench", "--phase", "inference", "--alternate", "sparse-forward"], in: directory)
        XCTAssertNotEqual(inference.status, 0)
        XCTAssertTrue(inference.stderr.contains("--alternate needs --phase with a training phase"), inference.stderr)
    }

    /// Every child runs the driver's configuration: `--dense-inputs` (and `--blas`, the overlap switch) reach it.
    func testChildrenGetTheDriversKernelChoice() {
        var options = BenchmarkOptions()
        options.epochs = 2
        var driver = BenchmarkDriver(options: options, executable: "/bin/false")
        XCTAssertFalse(driver.childArguments("student").contains("--dense-inputs"))
        XCTAssertEqual(Array(driver.childArguments("student").suffix(2)), ["--blas", "openblas"])
        options.denseInputs = true
        options.blas = "mkl"
        options.overlapTeacher = false
        driver = BenchmarkDriver(options: options, executable: "/bin/false")
        let arguments = driver.childArguments("distill_online")
        XCTAssertTrue(arguments.contains("--dense-inputs"), "\(arguments)")
        XCTAssertTrue(arguments.contains("--no-teacher-overlap"), "\(arguments)")
        XCTAssertEqual(arguments.firstIndex(of: "--blas").map { arguments[$0 + 1] }, "mkl")
        XCTAssertEqual(Array(arguments.prefix(3)), ["bench", "--phase", "distill_online"])
        // The teacher choice reaches our children and PyTorch's script alike.
        XCTAssertFalse(arguments.contains("--teacher") || arguments.contains("--random-teacher"), "\(arguments)")
        options.teacherFile = "/some/teacher.safetensors"
        driver = BenchmarkDriver(options: options, executable: "/bin/false")
        XCTAssertEqual(Array(driver.childArguments("distill_store").suffix(2)), ["--teacher", "/some/teacher.safetensors"])
        XCTAssertEqual(Array(driver.torchArguments("distill_store", script: "s.py").suffix(2)), ["--teacher", "/some/teacher.safetensors"])
        options.teacherFile = nil
        options.randomTeacher = true
        driver = BenchmarkDriver(options: options, executable: "/bin/false")
        XCTAssertEqual(driver.childArguments("distill_cached").last, "--random-teacher")
        XCTAssertEqual(driver.torchArguments("distill_cached", script: "s.py").last, "--random-teacher")
    }

    /// With a Python that imports torch (here a stand-in that answers like `Scripts/torch_bench.py` and echoes its
    /// malloc settings), every phase gets a PyTorch entry and a ratio; `--tuned-torch` hands that Python the tuned
    /// glibc settings and the report says so.
    func testBenchRunsPyTorchSideWithTunedMalloc() throws {
        let (directory, data) = try makeBenchDirectory()
        let python = directory.appendingPathComponent("python-stand-in")
        let script = """
            #!/bin/sh
            if [ "$1" = "-c" ]; then exit 0; fi
            echo '{"seconds_per_epoch": 2.0, "seconds_per_pass": 0.5, "latency_ms": 0.25, "torch_version": "stand-in", "torch_blas": "none", "trim": "'"$MALLOC_TRIM_THRESHOLD_"'", "arguments": "'"$*"'"}'
            """
        try writeExecutable(script, to: python)
        let inherited = ProcessInfo.processInfo.environment["MALLOC_TRIM_THRESHOLD_"] ?? ""
        for tuned in [false, true] {
            let reportFile = directory.appendingPathComponent("report-\(tuned).json").path
            let result = try runDistill(["bench", "--quick", "--threads", "1", "--max-batches", "2", "--data-dir", data.path,
                                         "--json-output", reportFile] + (tuned ? ["--tuned-torch", "--random-teacher"] : []), in: directory,
                                        environment: ["DISTILL_PYTHON": python.path])
            assertSucceeded(result, "bench with a stand-in PyTorch")
            guard result.status == 0 else { return }
            let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportFile))) as? [String: Any])
            XCTAssertNil(report["torch_note"])
            XCTAssertEqual(report["torch_malloc"] as? String,
                           tuned ? "MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TOP_PAD_=67108864 MALLOC_TRIM_THRESHOLD_=2147483648" : "glibc defaults")
            let phases = try XCTUnwrap(report["phases"] as? [String: Any])
            for phase in BenchmarkPhases.all {
                let torch = try XCTUnwrap((phases[phase] as? [String: Any])?["torch"] as? [String: Any], phase)
                XCTAssertEqual(torch["trim"] as? String, tuned ? "2147483648" : inherited, phase)
                // Both sides get the same teacher: the shipped file's path, or --random-teacher.
                let arguments = torch["arguments"] as? String ?? ""
                XCTAssertTrue(arguments.hasSuffix(tuned ? "--random-teacher" : "Data/teachers/\(BenchmarkModels.defaultTeacherName)"),
                              "\(phase): \(arguments)")
            }
            XCTAssertTrue(result.stdout.contains("PyTorch stand-in"), result.stdout)
            XCTAssertEqual(report["distill_teacher"] as? String == "random", tuned)
            XCTAssertTrue(result.stdout.contains(tuned ? "malloc: MALLOC_MMAP_THRESHOLD_" : "malloc: glibc defaults"), result.stdout)
        }
    }

    /// Without an importable torch (here `DISTILL_PYTHON` names an interpreter whose `import torch` fails) the bench
    /// still times every phase of ours, says why PyTorch was skipped, and exits 0 with no PyTorch figures. Run with
    /// `--dense-inputs`, which the report and the table name.
    func testBenchWithoutTorchSaysWhyAndRunsOurs() throws {
        let (directory, data) = try makeBenchDirectory()
        let python = directory.appendingPathComponent("python-without-torch")
        try writeExecutable("#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n", to: python)
        let reportFile = directory.appendingPathComponent("report.json").path
        let result = try runDistill(["bench", "--quick", "--threads", "1", "--max-batches", "2", "--data-dir", data.path,
                                     "--dense-inputs", "--json-output", reportFile], in: directory,
                                    environment: ["DISTILL_PYTHON": python.path])
        assertSucceeded(result, "bench without torch")
        guard result.status == 0 else { return }
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportFile))) as? [String: Any])
        let note = try XCTUnwrap(report["torch_note"] as? String)
        XCTAssertTrue(note.contains("PyTorch comparison skipped") && note.contains("DISTILL_PYTHON"), note)
        XCTAssertTrue((result.stdout + result.stderr).contains("PyTorch comparison skipped"), result.stdout)
        let phases = try XCTUnwrap(report["phases"] as? [String: Any])
        XCTAssertEqual(Set(phases.keys), Set(BenchmarkPhases.all))
        XCTAssertEqual(report["input_kernels"] as? String, "dense", "--dense-inputs")
        XCTAssertTrue(result.stdout.contains("multiplied densely"), result.stdout)
        for (phase, value) in phases {
            let entry = try XCTUnwrap(value as? [String: Any], phase)
            XCTAssertNotNil(entry["ours"] as? [String: Any], phase)
            XCTAssertNil(entry["torch"], "\(phase): no PyTorch figures without torch")
        }
    }

    /// A temporary directory with a tiny synthetic MNIST in `mnist/` (and the `distill` executable built).
    private func makeBenchDirectory() throws -> (directory: URL, data: URL) {
        _ = try distillExecutable()
        let directory = try makeTemporaryDirectory(self)
        let data = directory.appendingPathComponent("mnist")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        try writeTinyMNIST(to: data, trainCount: 300, testCount: 100)
        return (directory, data)
    }

    /// Writes a shell script and makes it executable (a stand-in Python).
    private func writeExecutable(_ script: String, to url: URL) throws {
        try script.write(to: url, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
    }
}
