import Checkpoints
import Foundation
import XCTest

/// `distill` on one's own data: CSV (plain, gzip, `;`, quoted, string labels) and NPY pairs, as a user runs it,
/// and every kind of bad file giving one error line, a non-zero exit and no output file.
final class OwnDataCLITests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        _ = try distillExecutable()
        directory = try makeTemporaryDirectory(self)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A learnable table: `n` rows, `features` columns, 3 named classes in the last column.
    func table(_ n: Int = 300, features: Int = 4, delimiter: String = ",", header: Bool = true, quoted: Bool = false) -> String {
        var text = header ? (0..<features).map { "f\($0)" }.joined(separator: delimiter) + "\(delimiter)species\n" : ""
        let names = ["setosa", "versicolor", "virginica"]
        for i in 0..<n {
            let c = i % 3
            let values = (0..<features).map { (j: Int) -> String in
                let base = Double(c * 2 + j % 2)
                let noise = Double((i * 7 + j * 13) % 10) / 10
                return String(format: "%.3f", base + noise)
            }
            let label = quoted ? "\"\(names[c]), x\"" : names[c]
            text += values.joined(separator: delimiter) + delimiter + label + "\n"
        }
        return text
    }

    /// An NPY (version 1) file of raw little-endian `data`.
    func npy(_ name: String, descr: String, shape: [Int], fortranOrder: Bool = false, _ data: [UInt8]) throws -> String {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': \(fortranOrder ? "True" : "False"), 'shape': \(shapeText), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8) + data
        try Data(bytes).write(to: directory.appendingPathComponent(name))
        return path(name)
    }

    func write(_ name: String, _ text: String) throws -> String {
        try Data(text.utf8).write(to: directory.appendingPathComponent(name))
        return path(name)
    }

    func train(_ data: [String], output: String, extra: [String] = []) throws -> CommandResult {
        try runDistill(["train", "--hidden", "16", "--epochs", "8", "--batch-size", "32", "--threads", "1", "--learning-rate", "0.1",
                        "--output", output, "--json"] + data + extra, in: directory)
    }

    func testCSVTrainsAndEvaluateReproducesTheTestSplit() throws {
        let csv = try write("iris-like.csv", table())
        let model = path("m.safetensors")
        let trained = try train(["--data", csv], output: model)
        assertSucceeded(trained, "train on CSV")
        guard trained.status == 0 else { return }
        let report = try lastLineJSON(trained.stdout)
        XCTAssertEqual(report["test_count"] as? Int, 60, "a stratified 0.2 split of 300 rows")
        XCTAssertEqual(report["class_names"] as? [String], ["setosa", "versicolor", "virginica"])
        XCTAssertNotNil((report["per_class"] as? [String: Any])?["virginica"])
        XCTAssertLessThan(report["test_errors"] as? Int ?? 99, 15, "the classes are separable")
        let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: model))
        XCTAssertNotNil(checkpoint.metadata["data"])
        let evaluated = try runDistill(["evaluate", model, "--data", csv, "--json"], in: directory)
        assertSucceeded(evaluated, "evaluate on CSV")
        let again = try lastLineJSON(evaluated.stdout)
        XCTAssertEqual(again["test_errors"] as? Int, report["test_errors"] as? Int, "the model's recorded split and standardisation")
        XCTAssertEqual(again["count"] as? Int ?? again["test_count"] as? Int, 60)
    }

    func testOtherCSVFormsAndAnNPYPair() throws {
        // `;` without a header, labels in column 0, gzip.
        var rows = ""
        for line in table(header: false).split(separator: "\n") {
            var fields = line.split(separator: ",").map(String.init)
            let label = fields.removeLast()
            rows += ([label] + fields).joined(separator: ";") + "\n"
        }
        let plain = try write("semi.csv", rows)
        let gz = path("semi.csv.gz")
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/bin/sh")
        gzip.arguments = ["-c", "gzip -c '\(plain)' > '\(gz)'"]
        try gzip.run()
        gzip.waitUntilExit()
        assertSucceeded(try train(["--data", gz, "--label-column", "0"], output: path("gz.safetensors")), "CSV.gz, ';', label column 0")
        assertSucceeded(try train(["--data", try write("q.csv", table(quoted: true))], output: path("q.safetensors")), "quoted labels")
        // An NPY pair, with a separate test pair.
        let n = 200
        let x = (0..<n).flatMap { i -> [Float] in [Float(i % 2) * 3 + Float(i % 7) / 7, Float(i % 5) / 5] }
        let y = (0..<n).map { Int64($0 % 2) }
        let xs = try npy("x.npy", descr: "<f4", shape: [n, 2], x.withUnsafeBytes { Array($0) })
        let ys = try npy("y.npy", descr: "<i8", shape: [n], y.withUnsafeBytes { Array($0) })
        let result = try train(["--data", xs, "--labels", ys, "--test-data", xs, "--test-labels", ys], output: path("npy.safetensors"))
        assertSucceeded(result, "NPY pair")
        if result.status == 0 { XCTAssertEqual(try lastLineJSON(result.stdout)["test_count"] as? Int, n) }
    }

    /// Every bad file: one error line naming the file (and line or column where there is one), a non-zero exit, no
    /// output file.
    func testBadFilesFailCleanlyWithoutOutput() throws {
        let good = table(30)
        var lines = good.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[5] = "1.0,2.0,3.0"                         // ragged (line 6)
        let ragged = try write("ragged.csv", lines.joined(separator: "\n"))
        lines = good.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var fields = lines[3].split(separator: ",").map(String.init)
        fields[1] = "abc"
        lines[3] = fields.joined(separator: ",")   // text in a number (line 4)
        let text = try write("text.csv", lines.joined(separator: "\n"))
        lines = good.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[2] = "NaN" + lines[2].drop { $0 != "," }   // line 3
        let nan = try write("nan.csv", lines.joined(separator: "\n"))
        lines = good.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[7] = "," + lines[7].split(separator: ",").dropFirst().joined(separator: ",")   // empty cell, line 8
        let empty = try write("emptycell.csv", lines.joined(separator: "\n"))
        let nothing = try write("empty.csv", "")
        let badNPY = try write("bad.npy", "not an npy file")
        let labels10 = try npy("y10.npy", descr: "<i8", shape: [10], (0..<10).map { Int64($0 % 2) }.withUnsafeBytes { Array($0) })
        let labels5 = try npy("y5.npy", descr: "<i8", shape: [5], (0..<5).map { Int64($0 % 2) }.withUnsafeBytes { Array($0) })
        let rows10 = try npy("x10.npy", descr: "<f4", shape: [10, 2], [UInt8](repeating: 0, count: 80))
        let complex = try npy("complex.npy", descr: "<c8", shape: [10, 2], [UInt8](repeating: 0, count: 160))
        let fortran = try npy("fortran.npy", descr: "<f4", shape: [10, 2], fortranOrder: true, [UInt8](repeating: 0, count: 80))
        let images = directory.appendingPathComponent("images")
        for name in ["a", "b"] { try FileManager.default.createDirectory(at: images.appendingPathComponent(name), withIntermediateDirectories: true) }
        try Data("not an image".utf8).write(to: images.appendingPathComponent("a/broken.png"))
        try Data("not an image either".utf8).write(to: images.appendingPathComponent("b/broken.jpg"))
        let cases: [([String], String)] = [
            (["--data", ragged], "ragged.csv, line 6: expected 5 fields, found 3"),
            (["--data", text], "text.csv, line 4: expected a finite number in column 'f1' (1), found 'abc'"),
            (["--data", nan], "nan.csv, line 3: expected a finite number in column 'f0' (0), found 'NaN'"),
            (["--data", empty], "emptycell.csv, line 8: expected a finite number in column 'f0' (0), found an empty cell"),
            (["--data", nothing], "empty.csv: expected a header or data row, found an empty file"),
            (["--data", ragged.replacingOccurrences(of: "ragged", with: "missing")], "missing.csv: expected an existing file"),
            (["--data", try write("ok.csv", good), "--label-column", "kind"], "expected a label column named 'kind'"),
            (["--data", badNPY, "--labels", badNPY], "bad.npy: expected the NPY magic"),
            (["--data", complex, "--labels", labels10], "complex.npy: expected dtype <f4, <f8, |u1, <i8 (little-endian), found '<c8'"),
            (["--data", fortran, "--labels", labels10], "fortran.npy: expected C order (fortran_order False), found fortran_order True"),
            (["--data", rows10, "--labels", labels5], "y5.npy: expected labels of shape [10] (one per row of x10.npy), found shape [5]"),
            (["--data", images.path], "a/broken.png: expected a PNG or JPEG image, found other bytes"),
            (["--data", path("ok.csv"), "--test-split", "1.5"], "--test-split must be in (0, 1)"),
            (["--labels", badNPY], "--labels needs --data"),
        ]
        for (flags, needle) in cases {
            let output = path("out.safetensors")
            let result = try train(flags, output: output)
            assertFailedCleanly(result, naming: needle, "\(flags)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output), "\(flags): no output file")
            XCTAssertFalse(FileManager.default.fileExists(atPath: output + ".state"), "\(flags): no state file")
        }
    }
}
