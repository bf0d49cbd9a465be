import Foundation
import XCTest
import TensorCore
import Datasets

/// The package root (three levels above this file: Tests/distillTests/Support.swift).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The vendored MNIST copy.
let vendoredMNIST = packageRoot.appendingPathComponent("Data/mnist")

/// A fresh temporary directory, removed by the test's teardown.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("distillTests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// Writes a tiny synthetic MNIST-format directory: the four canonical file names holding RAW (uncompressed) IDX
/// bytes — `MNIST.load` detects gzip by its magic and accepts raw IDX under the `.gz` names. Class k lights up a
/// 6x6 block whose position depends on k, plus seeded noise, so a small MLP learns it in one epoch.
func writeTinyMNIST(to directory: URL, trainCount: Int = 300, testCount: Int = 100, seed: UInt64 = 5) throws {
    var rng = RandomGenerator(seed: seed)
    func images(_ n: Int) -> (images: [UInt8], labels: [UInt8]) {
        var pixels = [UInt8](repeating: 0, count: n * 784)
        var labels = [UInt8](repeating: 0, count: n)
        for i in 0..<n {
            let k = i % 10
            labels[i] = UInt8(k)
            let top = 2 + (k / 5) * 12, left = 2 + (k % 5) * 5
            for r in top..<(top + 6) { for c in left..<(left + 4) { pixels[i * 784 + r * 28 + c] = 255 } }
            for j in 0..<784 where rng.uniform() < 0.05 { pixels[i * 784 + j] = UInt8(rng.uniform() * 255) }
        }
        return (pixels, labels)
    }
    let train = images(trainCount), test = images(testCount)
    func write(_ shape: [Int], _ bytes: [UInt8], _ name: String) throws {
        try Data(IDXFile(shape: shape, bytes: bytes).encoded()).write(to: directory.appendingPathComponent(name))
    }
    try write([trainCount, 28, 28], train.images, MNIST.trainImagesFile)
    try write([trainCount], train.labels, MNIST.trainLabelsFile)
    try write([testCount, 28, 28], test.images, MNIST.testImagesFile)
    try write([testCount], test.labels, MNIST.testLabelsFile)
}

/// The result of running the `distill` executable.
struct CommandResult {
    var status: Int32
    var reason: Process.TerminationReason
    var stdout: String
    var stderr: String
    var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: true) }
}

/// The built `distill` executable: beside the test bundle (same build configuration), else
/// `<package root>/.build/debug/distill`. `swift build --build-tests` and `swift test` build it (it is a product of
/// the package); the CI script must build before testing (`swift build --build-tests` then
/// `swift test --skip-build`). When it is missing the CLI tests are skipped (building it from inside a test would
/// be far too slow).
func distillExecutable() throws -> URL {
    var candidates: [URL] = []
    if let override = ProcessInfo.processInfo.environment["DISTILL_EXECUTABLE"], !override.isEmpty {
        candidates.append(URL(fileURLWithPath: override))
    }
    #if os(macOS)
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        candidates.append(bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("distill"))
    }
    #else
    candidates.append(Bundle.main.bundleURL.appendingPathComponent("distill"))
    #endif
    candidates.append(packageRoot.appendingPathComponent(".build/debug/distill"))
    candidates.append(packageRoot.appendingPathComponent(".build/release/distill"))
    for url in candidates where FileManager.default.isExecutableFile(atPath: url.path) { return url }
    throw XCTSkip("the distill executable is not built (looked in \(candidates.map(\.path))); run `swift build` first")
}

/// A process started by the tests, its standard output and error going to files in its directory.
struct StartedProcess {
    let process: Process
    let stdout: URL
    let stderr: URL

    /// Waits for the process (at most `seconds`: then it is interrupted and the test fails), returns what it printed
    /// and removes the files.
    func finish(within seconds: Double = .infinity, file: StaticString = #filePath, line: UInt = #line) throws -> CommandResult {
        defer {
            try? FileManager.default.removeItem(at: stdout)
            try? FileManager.default.removeItem(at: stderr)
        }
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.interrupt()
            XCTFail("\(process.executableURL?.lastPathComponent ?? "the process") did not end within \(seconds) s", file: file, line: line)
        }
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, reason: process.terminationReason,
                             stdout: String(decoding: try Data(contentsOf: stdout), as: UTF8.self),
                             stderr: String(decoding: try Data(contentsOf: stderr), as: UTF8.self))
    }
}

/// Starts `executable` with `arguments` in `directory`, in the tests' environment: no `DISTILL_DATA_DIR`, and
/// `DISTILL_KEEP_BLAS_CORE=1` (the child keeps OpenBLAS's kernel choice, where it would otherwise switch to AVX-512
/// kernels where OpenBLAS picks AVX2 ones, so its results compare bit for bit with this process's), plus `extra`.
func startProcess(_ executable: URL, _ arguments: [String], in directory: URL, environment extra: [String: String] = [:])
    throws -> StartedProcess {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.currentDirectoryURL = directory
    var environment = ProcessInfo.processInfo.environment
    environment["DISTILL_DATA_DIR"] = nil
    environment["DISTILL_KEEP_BLAS_CORE"] = "1"
    for (k, v) in extra { environment[k] = v }
    process.environment = environment
    let out = directory.appendingPathComponent(".stdout-\(UUID().uuidString)")
    let err = directory.appendingPathComponent(".stderr-\(UUID().uuidString)")
    FileManager.default.createFile(atPath: out.path, contents: nil)
    FileManager.default.createFile(atPath: err.path, contents: nil)
    process.standardOutput = try FileHandle(forWritingTo: out)
    process.standardError = try FileHandle(forWritingTo: err)
    process.standardInput = FileHandle.nullDevice
    try process.run()
    return StartedProcess(process: process, stdout: out, stderr: err)
}

/// Runs `distill` with `arguments` in `directory`, capturing stdout and stderr through files.
func runDistill(_ arguments: [String], in directory: URL, environment extra: [String: String] = [:]) throws -> CommandResult {
    try startProcess(try distillExecutable(), arguments, in: directory, environment: extra).finish()
}

/// A test case with a temporary directory holding a tiny synthetic MNIST in `mnist/` (`trainCount` training
/// images), skipped when `distill` has not been built.
class TinyMNISTTestCase: XCTestCase {
    var directory: URL!
    var dataDirectory: URL!
    /// Training images of the tiny MNIST (100 test images).
    var trainCount: Int { 300 }

    override func setUpWithError() throws {
        _ = try distillExecutable()
        directory = try makeTemporaryDirectory(self)
        dataDirectory = directory.appendingPathComponent("mnist")
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        try writeTinyMNIST(to: dataDirectory, trainCount: trainCount, testCount: 100)
    }

    /// `name` in the temporary directory.
    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
}
