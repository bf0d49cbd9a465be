import Foundation
import Reports
import XCTest

/// The report of made-up run directories: every chart present, labelled, and the page self-contained.
final class HTMLReportTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    /// A run directory with `epochs` lines of metrics and a result (distillation parts when `distilled`).
    func makeRun(_ name: String, errors: Int, distilled: Bool, epochs: Int = 5) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        var lines = ""
        for e in 1...epochs {
            var parts: [String: Double] = ["hard": 1 / Double(e)]
            if distilled { parts["soft_kl"] = 0.1 / Double(e * e) }
            let object: [String: Any] = ["epoch": e, "train_loss": 2 / Double(e), "learning_rate": 0.1 / Double(e),
                                         "loss_parts": parts, "validation_errors": 100 - e, "seconds": 1.0, "examples_per_second": 1000.0]
            lines += String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self) + "\n"
        }
        try Data(lines.utf8).write(to: url.appendingPathComponent("metrics.jsonl"))
        var bins: [[String: Any]] = []
        for b in 0..<15 {
            let lower = Double(b) / 15, upper = Double(b + 1) / 15
            bins.append(["lower": lower, "upper": upper, "count": b * 3, "accuracy": lower, "confidence": lower + 0.02])
        }
        let matrix: [[Int]] = [[480, 20], [errors - 20, 520 - errors]]
        let health: [String: Any] = ["healthy": true, "dead_fraction": 0.0]
        var result: [String: Any] = ["test_errors": errors, "test_count": 1000]
        result["test_accuracy"] = 1 - Double(errors) / 1000
        result["confusion_matrix"] = matrix
        result["class_names"] = ["cat", "dog"]
        result["expected_calibration_error"] = 0.012
        result["reliability"] = bins
        result["seconds_per_epoch"] = 1.0
        result["health"] = health
        if distilled { result["teacher_agreement"] = 0.97 }
        try JSONSerialization.data(withJSONObject: result).write(to: url.appendingPathComponent("result.json"))
        return url
    }

    func testEveryChartIsPresentAndLabelled() throws {
        let experiment = directory.appendingPathComponent("exp")
        try FileManager.default.createDirectory(at: experiment, withIntermediateDirectories: true)
        _ = try makeRun("exp/teacher-seed0", errors: 30, distilled: false)
        _ = try makeRun("exp/student-labels-seed0", errors: 60, distilled: false)
        _ = try makeRun("exp/student-T1-seed0", errors: 55, distilled: true)
        _ = try makeRun("exp/student-T4-seed0", errors: 45, distilled: true)
        let runs = try HTMLReport.collect([experiment])
        XCTAssertEqual(runs.map(\.name), ["student-T1-seed0", "student-T4-seed0", "student-labels-seed0", "teacher-seed0"])
        let html = HTMLReport.render(runs: runs, title: "Test <report>", tables: [("Beside the paper", "model  paper  ours")])
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertTrue(html.contains("<title>Test &lt;report&gt;</title>"), "escaped")
        XCTAssertFalse(html.contains("<script"), "no script")
        XCTAssertFalse(html.contains("http://") && html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "").contains("http://"), "no network")
        for kind in ["learning-curve", "validation-curve", "learning-rate", "soft-kl", "hard-ce", "agreement", "temperature-sweep",
                     "heat-map", "reliability"] {
            XCTAssertTrue(html.contains("class=\"chart \(kind)") || html.contains("class=\"chart line-chart \(kind)") || html.contains("class=\"chart bar-chart \(kind)"),
                          "chart \(kind) missing")
        }
        // Every chart has a title and axis labels.
        let charts = html.components(separatedBy: "<svg class=\"chart").dropFirst()
        XCTAssertEqual(charts.count, 3 + 2 + 1 + 1 + 4 + 4)
        for chart in charts {
            XCTAssertTrue(chart.contains("<title>"), chart.prefix(120).description)
            XCTAssertTrue(chart.contains("class=\"axis-label\""), chart.prefix(120).description)
        }
        XCTAssertTrue(html.contains("<pre>model  paper  ours</pre>"))
        XCTAssertTrue(html.contains("true cat, predicted dog: 20"), "heat-map cells carry their counts")
        XCTAssertTrue(html.contains(">45 of 1000<"))
    }

    func testNotARunDirectoryIsAClearError() throws {
        let empty = directory.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try HTMLReport.collect([empty])) { XCTAssertTrue("\($0)".contains("found no runs"), "\($0)") }
        XCTAssertThrowsError(try HTMLReport.collect([directory.appendingPathComponent("missing")]))
        let bad = directory.appendingPathComponent("bad")
        try FileManager.default.createDirectory(at: bad, withIntermediateDirectories: true)
        try Data("{\"epoch\": 1}\nnot json\n".utf8).write(to: bad.appendingPathComponent("metrics.jsonl"))
        XCTAssertThrowsError(try HTMLReport.collect([bad])) { XCTAssertTrue("\($0)".contains("metrics.jsonl, line 2"), "\($0)") }
    }
}
