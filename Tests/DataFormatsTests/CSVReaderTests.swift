import DataFormats
import Datasets
import Foundation
import TensorCore
import XCTest

final class CSVReaderTests: XCTestCase {
    func read(_ text: String, _ configure: (inout CSVReader.Options) -> Void = { _ in }) throws -> TabularData {
        var options = CSVReader.Options()
        configure(&options)
        return try CSVReader.read(bytes: Array(text.utf8), name: "t.csv", options: options)
    }

    func message(_ text: String, _ configure: (inout CSVReader.Options) -> Void = { _ in }) -> String {
        do { _ = try read(text, configure); return "no error" } catch { return "\(error)" }
    }

    func testHeaderDelimiterAndLabelColumnByName() throws {
        let t = try read("a,b,label\n1.5,2,cat\n-3e-1,4,dog\n0.25, 7 ,cat\n")
        XCTAssertEqual(t.dataset.count, 3)
        XCTAssertEqual(t.dataset.featureCount, 2)
        XCTAssertEqual(t.dataset.inputs.scalars, [1.5, 2, -0.3, 4, 0.25, 7])
        XCTAssertEqual(t.classNames, ["cat", "dog"])
        XCTAssertEqual(t.dataset.labels, [0, 1, 0])
        XCTAssertEqual(t.featureNames, ["a", "b"])
    }

    func testNoHeaderSemicolonsLastColumnIntegerLabels() throws {
        let t = try read("1;2;0\n3;4;2\n5;6;1\n")
        XCTAssertNil(t.classNames, "labels 0..<3 are the class indices")
        XCTAssertEqual(t.dataset.labels, [0, 2, 1])
        XCTAssertEqual(t.dataset.inputs.scalars, [1, 2, 3, 4, 5, 6])
        XCTAssertNil(t.featureNames)
    }

    func testQuotedFieldsCRLFBlankLinesPreambleAndAppearanceOrder() throws {
        let text = "# exported\r\nx,y,species\r\n1,2,\"virginica, tall\"\r\n\r\n3,4,setosa\r\n5,6,\"virginica, tall\"\r\n"
        let t = try read(text) { $0.skipRows = 1; $0.classOrder = .appearance }
        XCTAssertEqual(t.classNames, ["virginica, tall", "setosa"])
        XCTAssertEqual(t.dataset.labels, [0, 1, 0])
        XCTAssertEqual(t.dataset.inputs.scalars, [1, 2, 3, 4, 5, 6])
    }

    func testLabelColumnByIndexAndIntegersThatAreNotIndices() throws {
        let t = try read("7,0.5,1\n3,1.5,2\n7,2.5,3\n") { $0.labelColumn = .index(0) }
        XCTAssertEqual(t.classNames, ["3", "7"], "integers other than 0..<K are names, numerically sorted")
        XCTAssertEqual(t.dataset.labels, [1, 0, 1])
        XCTAssertEqual(t.dataset.inputs.scalars, [0.5, 1, 1.5, 2, 2.5, 3])
    }

    /// Every value is the correctly rounded Float32 of its text (as `Float(String)`), including the forms the fast
    /// path hands to strtof.
    func testValuesRoundCorrectly() throws {
        var g = RandomGenerator(seed: 8)
        var texts = ["0", "-0", "1e-45", "3.4028235e38", "1.17549435e-38", "0.1", "123456789012345678901234567890",
                     "9007199254740993", "1e22", "1e23", "-2.5E-3", ".5", "5.", "+7"]
        for _ in 0..<3000 {
            let d = Double(g.uniform() - 0.5) * pow(10, Double(Int(g.nextUInt64() % 30)) - 15)
            texts.append(String(format: "%.\(Int(g.nextUInt64() % 12))g", d))
            texts.append("\(Float(d))")
        }
        let csv = texts.map { "\($0),0" }.joined(separator: "\n") + "\n1,1\n"
        let t = try read(csv) { $0.header = .no }
        for (i, text) in texts.enumerated() {
            XCTAssertEqual(t.dataset.inputs[flat: i].bitPattern, Float(text)!.bitPattern, text)
        }
    }

    func testBadInputNamesTheLineAndColumn() {
        XCTAssertEqual(message("a,b,label\n1,2,x\n3,4\n"), "t.csv, line 3: expected 3 fields, found 2")
        XCTAssertEqual(message("a,b,label\n1,2,x\n3,4,5,y\n"), "t.csv, line 3: expected 3 fields, found 4")
        // A short row whose label lands in a feature column is reported as short, not as a bad number.
        XCTAssertEqual(message("a,b,label\n1,2,x\n3,y\n4,5,y\n"), "t.csv, line 3: expected 3 fields, found 2")
        XCTAssertEqual(message("a,b,label\n1,2,x\n3,oops,y\n"), "t.csv, line 3: expected a finite number in column 'b' (1), found 'oops'")
        XCTAssertEqual(message("a,b,label\n1,2,x\nnan,1,y\n"), "t.csv, line 3: expected a finite number in column 'a' (0), found 'nan'")
        XCTAssertEqual(message("a,b,label\n1,,x\n3,4,y\n"), "t.csv, line 2: expected a finite number in column 'b' (1), found an empty cell")
        XCTAssertEqual(message("a,b,label\n1,2,\n3,4,y\n"), "t.csv, line 2: expected a label in column 'label' (2), found an empty cell")
        XCTAssertEqual(message("a,b,c\n1,2,3\n") { $0.labelColumn = .name("kind") }, "t.csv: expected a label column named 'kind', found columns 'a', 'b', 'c'")
        XCTAssertEqual(message("1,2,3\n") { $0.labelColumn = .index(5) }, "t.csv: expected a label column index in 0..<3, found 5")
        XCTAssertEqual(message(""), "t.csv: expected a header or data row, found an empty file")
        XCTAssertEqual(message("a,b,label\n"), "t.csv: expected at least one data row, found none after line 1")
        XCTAssertEqual(message("a,b,label\n1,2,x\n3,4,x\n"), "t.csv: expected at least two classes in the label column 'label', found 1")
    }

    /// Files larger than one block and than one part per thread parse to the same values in the right rows.
    func testLargeFileAcrossBlocks() throws {
        let rows = 120_000
        var text = "f0,f1,f2,label\n"
        text.reserveCapacity(rows * 24)
        for i in 0..<rows { text += "\(i),\(Float(i) * 0.5),-\(i % 97),\(i % 3)\n" }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("large-\(UUID().uuidString).csv")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(text.utf8).write(to: url)
        let t = try CSVReader.read(url: url)
        XCTAssertEqual(t.dataset.count, rows)
        let x = t.dataset.inputs
        for i in stride(from: 0, to: rows, by: 997) {
            XCTAssertEqual(x[flat: i * 3], Float(i))
            XCTAssertEqual(x[flat: i * 3 + 1], Float(i) * 0.5)
            XCTAssertEqual(x[flat: i * 3 + 2], -Float(i % 97))
            XCTAssertEqual(t.dataset.labels[i], i % 3)
        }
    }
}
