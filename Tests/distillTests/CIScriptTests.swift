import Foundation
import XCTest

/// `.ci/run` with stand-ins: a copy of the script runs in a scratch package root whose PATH starts with stub
/// `swift`, `python3`, `dpkg`, `apt-get`, `apt-cache` and `ldconfig` (and a stub `.build/release/distill`). Each stub
/// logs its command line (with the interop variables it was given) and fails when the line starts with one of the
/// prefixes the test names, so the tests see which steps ran and whether CI stopped at a failure.
final class CIScriptTests: XCTestCase {
    struct Outcome {
        var status: Int32
        var output: String
        var calls: [String]
    }

    static let stub = """
        #!/bin/bash
        line="$(basename "$0")${*:+ $*}"
        [ -n "${DISTILL_INTEROP_IN:-}" ] && line="DISTILL_INTEROP_IN=$DISTILL_INTEROP_IN $line"
        [ -n "${DISTILL_INTEROP_OUT:-}" ] && line="DISTILL_INTEROP_OUT=$DISTILL_INTEROP_OUT $line"
        printf '%s\\n' "$line" >> "$CI_STUB_LOG"
        while IFS= read -r prefix; do
            if [ -n "$prefix" ] && [ "${line#"$prefix"}" != "$line" ]; then
                echo "stub: $line: failing" >&2
                exit 1
            fi
        done <<< "${CI_STUB_FAIL:-}"
        case "$line" in
            "apt-cache policy"*) echo "  Candidate: 1.0" ;;
        esac
        exit 0

        """

    /// Runs the copy with the stubs; every call whose logged line starts with one of `failing` exits 1.
    func runCI(failing: [String]) throws -> Outcome {
        #if !os(Linux)
        throw XCTSkip(".ci/run is a Linux script")
        #else
        let script = packageRoot.appendingPathComponent(".ci/run")
        let root = try makeTemporaryDirectory(self)
        let fm = FileManager.default
        for folder in [".ci", ".build/release", "stubs", "tmp"] {
            try fm.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        try fm.copyItem(at: script, to: root.appendingPathComponent(".ci/run"))
        let stubs = ["stubs/swift", "stubs/python3", "stubs/dpkg", "stubs/apt-get", "stubs/apt-cache", "stubs/ldconfig",
                     ".build/release/distill"]
        for path in stubs {
            let url = root.appendingPathComponent(path)
            try Self.stub.write(to: url, atomically: true, encoding: .utf8)
            try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: url.path)
        }
        let log = root.appendingPathComponent("calls.log")
        let output = root.appendingPathComponent("output.log")
        _ = fm.createFile(atPath: log.path, contents: nil)
        _ = fm.createFile(atPath: output.path, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["bash", root.appendingPathComponent(".ci/run").path]
        var environment = ProcessInfo.processInfo.environment
        for key in ["DISTILL_INTEROP_IN", "DISTILL_INTEROP_OUT", "DISTILL_BLAS", "OPENBLAS_CORETYPE"] { environment[key] = nil }
        environment["PATH"] = root.appendingPathComponent("stubs").path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        environment["TMPDIR"] = root.appendingPathComponent("tmp").path
        environment["CI_STUB_LOG"] = log.path
        environment["CI_STUB_FAIL"] = failing.joined(separator: "\n")
        process.environment = environment
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Everything is a stub: the script takes well under a second. A hang would be a bug of the script or the stubs.
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try handle.close()
        let text = String(decoding: try Data(contentsOf: output), as: UTF8.self)
        let calls = String(decoding: try Data(contentsOf: log), as: UTF8.self).split(separator: "\n").map(String.init)
        return Outcome(status: process.terminationStatus, output: text, calls: calls)
        #endif
    }

    func testAFailedBuildStopsCI() throws {
        let r = try runCI(failing: ["swift build"])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertEqual(r.calls.filter { $0.contains("swift ") }, ["swift build -c release"],
                       "CI went on after the failed build:\n\(r.calls.joined(separator: "\n"))")
        XCTAssertEqual(r.calls.last, "swift build -c release")
    }

    func testFailedTestsStopCI() throws {
        let r = try runCI(failing: ["swift test -c release"])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertEqual(r.calls.last, "swift test -c release",
                       "CI went on after the failed tests:\n\(r.calls.joined(separator: "\n"))")
        XCTAssertTrue(r.calls.contains("swift build -c release"))
    }

    /// All steps up to the quick reproduction pass (the stub `distill` then fails, ending the run): the interop check
    /// runs in order, the Python side reading the file the Swift test wrote and the Swift test reading Python's.
    func testInteropCheckRunsWhenPipWorks() throws {
        let r = try runCI(failing: ["distill"])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertFalse(r.output.contains("skipped:"), r.output)
        let tmp = try XCTUnwrap(r.calls.first { $0.hasPrefix("DISTILL_INTEROP_OUT=") }).split(separator: " ")[0]
            .dropFirst("DISTILL_INTEROP_OUT=".count)
        let python = r.calls.filter { $0.hasPrefix("python3 ") }
        XCTAssertEqual(python.first, "python3 -m pip install --quiet --retries 1 --timeout 30 safetensors numpy")
        XCTAssertTrue(python.contains("python3 Scripts/check_safetensors_interop.py check \(tmp)"), "\(python)")
        let write = try XCTUnwrap(python.first { $0.hasPrefix("python3 Scripts/check_safetensors_interop.py write ") })
        let written = write.dropFirst("python3 Scripts/check_safetensors_interop.py write ".count)
        let swiftRead = try XCTUnwrap(r.calls.first { $0.hasPrefix("DISTILL_INTEROP_IN=") })
        XCTAssertTrue(swiftRead.hasPrefix("DISTILL_INTEROP_IN=\(written) swift test -c release --skip-build --filter SafeTensorsRoundTripTests.testReadInteropFileWhenRequested"), swiftRead)
        XCTAssertTrue(r.calls.contains { $0.hasPrefix("DISTILL_INTEROP_OUT=\(tmp) swift test -c release --skip-build --filter SafeTensorsRoundTripTests.testWriteInteropFileWhenRequested") })
        // Order: Swift writes, Python checks, Python writes, Swift reads, then the reproduction.
        let order = ["DISTILL_INTEROP_OUT=", "python3 Scripts/check_safetensors_interop.py check",
                     "python3 Scripts/check_safetensors_interop.py write", "DISTILL_INTEROP_IN=", "distill reproduce"]
        let positions = order.map { prefix in r.calls.firstIndex { $0.hasPrefix(prefix) } ?? -1 }
        XCTAssertFalse(positions.contains(-1), "\(positions)\n\(r.calls.joined(separator: "\n"))")
        XCTAssertEqual(positions, positions.sorted(), r.calls.joined(separator: "\n"))
    }

    func testInteropCheckIsSkippedWithAReasonWhenPipFails() throws {
        let r = try runCI(failing: ["python3 -m pip", "distill"])
        XCTAssertTrue(r.output.contains("skipped: safetensors interop check (pip install safetensors numpy failed: stub: python3 -m pip install"),
                      r.output)
        XCTAssertFalse(r.calls.contains { $0.contains("check_safetensors_interop") || $0.hasPrefix("DISTILL_INTEROP") })
        // CI went on to the next step.
        XCTAssertTrue(r.calls.last?.hasPrefix("distill reproduce") ?? false, r.calls.joined(separator: "\n"))
    }

    func testAFailingPythonInteropCheckFailsCI() throws {
        for side in ["check", "write"] {
            let r = try runCI(failing: ["python3 Scripts/check_safetensors_interop.py \(side)", "distill"])
            XCTAssertNotEqual(r.status, 0, r.output)
            XCTAssertTrue(r.calls.last?.hasPrefix("python3 Scripts/check_safetensors_interop.py \(side)") ?? false,
                          "CI went on after the Python side failed:\n\(r.calls.joined(separator: "\n"))")
        }
        let r = try runCI(failing: ["DISTILL_INTEROP_IN=", "distill"])
        XCTAssertNotEqual(r.status, 0, r.output)
        XCTAssertTrue(r.calls.last?.hasPrefix("DISTILL_INTEROP_IN=") ?? false, r.calls.joined(separator: "\n"))
    }

    /// The logical lines (continuations joined; comments and here-document bodies left out) of `script` that hold an
    /// `a && b` list outside a condition and without an `||` handler.
    static func unguardedAndLists(in script: String) -> [String] {
        var lines: [String] = []
        var pending = "", heredocEnd: String? = nil
        for raw in script.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if let end = heredocEnd {
                if raw == end { heredocEnd = nil }
                continue
            }
            if let range = raw.range(of: #"<<-?'?[A-Za-z_]+'?"#, options: .regularExpression) {
                heredocEnd = String(raw[range]).trimmingCharacters(in: CharacterSet(charactersIn: "<-'"))
            }
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") { continue }
            if line.hasSuffix("\\") { pending += line.dropLast() + " "; continue }
            lines.append(pending + line)
            pending = ""
        }
        return lines.filter { line in
            guard line.contains("&&") else { return false }
            return !(line.hasPrefix("if ") || line.hasPrefix("elif ") || line.hasPrefix("while ") || line.contains("||"))
        }
    }

    /// No `a && b` list outside a condition or an `||` handler anywhere in the script (see its header comment).
    func testNoAndListWhoseFirstCommandCouldFailUnnoticed() throws {
        let text = try String(contentsOf: packageRoot.appendingPathComponent(".ci/run"), encoding: .utf8)
        XCTAssertTrue(text.contains("swift test -c release"), "the script was not read")
        XCTAssertEqual(Self.unguardedAndLists(in: text), [], "`&&` lists whose first command's failure would not stop CI under set -e")
        // The check finds such lists, also across a continuation line, and not in comments, conditions, handlers or
        // here-documents.
        let sample = """
            set -e
            # swift build && swift test
            swift build -c release && swift test -c release
            make \\
                && make install
            if [ -x a ] && [ -x b ]; then :; fi
            cmp a b && echo same || { echo different; exit 1; }
            python3 - <<'PY'
            print(1 and 2) if a && b else None
            PY
            """
        XCTAssertEqual(Self.unguardedAndLists(in: sample), ["swift build -c release && swift test -c release", "make  && make install"])
    }
}
