import Foundation

/// One run directory as the report reads it (see `RunDirectory`): its per-epoch metrics, its result and its
/// configuration. Every part is optional: a run still training has no result yet.
public struct RunRecord {
    public var name: String
    public var directory: URL
    /// One dictionary per epoch (metrics.jsonl).
    public var epochs: [[String: Any]]
    public var result: [String: Any]?
    public var configuration: [String: Any]?

    public static func isRunDirectory(_ url: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: url.appendingPathComponent("metrics.jsonl").path)
            || fm.fileExists(atPath: url.appendingPathComponent("result.json").path)
    }

    public static func load(_ url: URL, name: String? = nil) throws -> RunRecord {
        func json(_ file: String) -> [String: Any]? {
            guard let data = try? Data(contentsOf: url.appendingPathComponent(file)) else { return nil }
            return (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        }
        var epochs: [[String: Any]] = []
        if let text = try? String(contentsOf: url.appendingPathComponent("metrics.jsonl"), encoding: .utf8) {
            for (i, line) in text.split(separator: "\n").enumerated() {
                guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                    throw ReportError("\(url.appendingPathComponent("metrics.jsonl").path), line \(i + 1): expected one JSON object per line")
                }
                epochs.append(object)
            }
        }
        let result = json("result.json")
        guard !epochs.isEmpty || result != nil else {
            throw ReportError("\(url.path): expected a run directory (metrics.jsonl or result.json), found neither")
        }
        return RunRecord(name: name ?? url.lastPathComponent.replacingOccurrences(of: ".run", with: ""), directory: url,
                         epochs: epochs, result: result, configuration: json("configuration.json"))
    }

    /// The values of `key` per epoch (x: the epoch number).
    func series(_ key: String, part: String? = nil) -> [(x: Double, y: Double)] {
        epochs.compactMap { e in
            guard let epoch = e["epoch"] as? Int else { return nil }
            let value: Double?
            if let part { value = (e[key] as? [String: Any])?[part] as? Double } else { value = (e[key] as? Double) ?? (e[key] as? Int).map(Double.init) }
            return value.map { (Double(epoch), $0) }
        }
    }
}

public struct ReportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A self-contained HTML report (inline SVG, no script, no network) of one or more runs, side by side: the results
/// table, learning curves, the loss parts of distillation, teacher agreement, the temperature comparison of an
/// experiment, confusion matrices as heat maps and reliability diagrams.
public enum HTMLReport {
    /// The runs under `paths`: a run directory itself, or every run directory one level below (an experiment's
    /// directory, a `reproduce` work directory), in name order.
    public static func collect(_ paths: [URL]) throws -> [RunRecord] {
        var runs: [RunRecord] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path.path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ReportError("\(path.path): expected a run directory or a directory of runs")
            }
            if RunRecord.isRunDirectory(path) {
                runs.append(try RunRecord.load(path))
                continue
            }
            let children = (try? FileManager.default.contentsOfDirectory(at: path, includingPropertiesForKeys: nil)) ?? []
            let found = children.filter(RunRecord.isRunDirectory).sorted { $0.lastPathComponent < $1.lastPathComponent }
            guard !found.isEmpty else { throw ReportError("\(path.path): expected a run directory or a directory of runs, found no runs") }
            runs += try found.map { try RunRecord.load($0) }
        }
        return runs
    }

    /// The report. `tables` are preformatted text tables shown first (e.g. an experiment's results beside the paper's).
    public static func render(runs: [RunRecord], title: String, tables: [(title: String, text: String)] = [],
                              sections: [(title: String, html: String)] = [], generated: Date = Date()) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(SVGChart.escape(title))</title>
            <style>
            body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
            h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
            table.results { border-collapse: collapse; font-size: 13px; } table.results td, table.results th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
            table.results td:first-child, table.results th:first-child { text-align: left; }
            pre { background: #f6f6f6; padding: 8px; font-size: 12px; overflow-x: auto; }
            .charts { display: flex; flex-wrap: wrap; gap: 12px; } .unhealthy { color: #c00; font-weight: bold; }
            </style></head><body>
            <h1>\(SVGChart.escape(title))</h1>
            <p>\(runs.count) run(s); generated \(ISO8601DateFormatter().string(from: generated)). Test figures are on each run's test set; nothing is selected on it.</p>

            """
        for table in tables {
            html += "<h2>\(SVGChart.escape(table.title))</h2><pre>\(SVGChart.escape(table.text))</pre>\n"
        }
        for section in sections {
            html += "<h2>\(SVGChart.escape(section.title))</h2><div class=\"charts\">\(section.html)</div>\n"
        }
        html += resultsTable(runs)
        html += learningCurves(runs)
        html += distillationParts(runs)
        html += agreement(runs)
        html += temperatureComparison(runs)
        html += confusionMatrices(runs)
        html += reliability(runs)
        return html + "</body></html>\n"
    }

    /// A chart of test errors against temperature, one line per series (e.g. per student width), for reports whose
    /// runs do not carry the temperature in their names.
    public static func temperatureChart(title: String, series: [(name: String, points: [(x: Double, y: Double)])]) -> String {
        SVGChart.lineChart(title: title, xLabel: "temperature T", yLabel: "test errors",
                           series: series.map { SVGChart.Series(name: $0.name, points: $0.points) }, kind: "line-chart temperature-sweep")
    }

    static func resultsTable(_ runs: [RunRecord]) -> String {
        var html = "<h2>Results</h2><table class=\"results\"><tr><th>run</th><th>test errors</th><th>accuracy</th><th>calibration error (ECE)</th><th>teacher agreement</th><th>epochs</th><th>s / epoch</th><th>health</th></tr>\n"
        for run in runs {
            let r = run.result ?? [:]
            let errors = (r["test_errors"] as? Int).map { "\($0) of \(r["test_count"] as? Int ?? 0)" } ?? "(running)"
            let accuracy = (r["test_accuracy"] as? Double).map { String(format: "%.2f %%", $0 * 100) } ?? "-"
            let ece = (r["expected_calibration_error"] as? Double).map { String(format: "%.4f", $0) } ?? "-"
            let agreement = (r["teacher_agreement"] as? Double).map { String(format: "%.4f", $0) } ?? "-"
            let health = r["health"] as? [String: Any]
            let healthy = health?["healthy"] as? Bool
            let dead = (health?["dead_fraction"] as? Double).map { String(format: "%.1f %% dead units", $0 * 100) } ?? ""
            let healthText = healthy == nil ? "-" : (healthy! ? "healthy (\(dead))" : "<span class=\"unhealthy\">UNHEALTHY (\(dead))</span>")
            let seconds = (r["seconds_per_epoch"] as? Double).map { String(format: "%.2f", $0) } ?? "-"
            html += "<tr><td>\(SVGChart.escape(run.name))</td><td>\(errors)</td><td>\(accuracy)</td><td>\(ece)</td><td>\(agreement)</td><td>\(run.epochs.count)</td><td>\(seconds)</td><td>\(healthText)</td></tr>\n"
        }
        return html + "</table>\n"
    }

    static func learningCurves(_ runs: [RunRecord]) -> String {
        var html = "<h2>Learning curves</h2><div class=\"charts\">"
        // Distillation runs have a chart of their loss parts below: their total sits at the teacher's entropy.
        let labelRuns = runs.filter { $0.series("loss_parts", part: "soft_kl").isEmpty }
        let loss = (labelRuns.isEmpty ? runs : labelRuns).map { SVGChart.Series(name: $0.name, points: $0.series("train_loss")) }
        html += SVGChart.lineChart(title: labelRuns.isEmpty ? "Training loss per epoch" : "Training loss per epoch (runs on labels)",
                                   xLabel: "epoch", yLabel: "mean training loss", series: loss, kind: "line-chart learning-curve", logY: true)
        let validation = runs.map { SVGChart.Series(name: $0.name, points: $0.series("validation_errors")) }.filter { !$0.points.isEmpty }
        if !validation.isEmpty {
            html += SVGChart.lineChart(title: "Validation errors per epoch", xLabel: "epoch", yLabel: "validation errors", series: validation,
                                       kind: "line-chart validation-curve")
        }
        let rates = runs.map { SVGChart.Series(name: $0.name, points: $0.series("learning_rate")) }.filter { !$0.points.isEmpty }
        if !rates.isEmpty {
            html += SVGChart.lineChart(title: "Learning rate per epoch", xLabel: "epoch", yLabel: "learning rate", series: rates,
                                       kind: "line-chart learning-rate")
        }
        return html + "</div>\n"
    }

    /// Distillation runs: the label cross-entropy and the soft KL per epoch.
    static func distillationParts(_ runs: [RunRecord]) -> String {
        let distilled = runs.filter { !$0.series("loss_parts", part: "soft_kl").isEmpty }
        guard !distilled.isEmpty else { return "" }
        var html = "<h2>Distillation: the two parts of the loss</h2><div class=\"charts\">"
        html += SVGChart.lineChart(title: "Soft term: KL(teacher || student) at T", xLabel: "epoch", yLabel: "KL (nats)",
                                   series: distilled.map { SVGChart.Series(name: $0.name, points: $0.series("loss_parts", part: "soft_kl")) },
                                   kind: "line-chart soft-kl", logY: true)
        html += SVGChart.lineChart(title: "Hard term: cross-entropy with the labels", xLabel: "epoch", yLabel: "cross-entropy (nats)",
                                   series: distilled.map { SVGChart.Series(name: $0.name, points: $0.series("loss_parts", part: "hard")) },
                                   kind: "line-chart hard-ce", logY: true)
        return html + "</div>\n"
    }

    static func agreement(_ runs: [RunRecord]) -> String {
        let bars = runs.compactMap { run in (run.result?["teacher_agreement"] as? Double).map { (label: run.name, value: $0 * 100) } }
        guard !bars.isEmpty else { return "" }
        return "<h2>Teacher-student agreement</h2>" + SVGChart.barChart(title: "Test examples where student and teacher predict the same class",
                                                                       xLabel: "agreement (%)", bars: bars, kind: "bar-chart agreement", maximum: 100) + "\n"
    }

    /// Runs named `...-T<temperature>-seed<n>` (an experiment's temperature comparison): mean test errors against T.
    static func temperatureComparison(_ runs: [RunRecord]) -> String {
        var byTemperature: [Double: [Double]] = [:]
        var labelOnly: [Double] = []
        for run in runs {
            guard let errors = run.result?["test_errors"] as? Int else { continue }
            if let match = run.name.range(of: #"-T([0-9.]+)-seed"#, options: .regularExpression) {
                let text = run.name[match].dropFirst(2).dropLast(5)
                if let t = Double(text) { byTemperature[t, default: []].append(Double(errors)) }
            } else if run.name.contains("labels") {
                labelOnly.append(Double(errors))
            }
        }
        guard byTemperature.count >= 2 else { return "" }
        let temperatures = byTemperature.keys.sorted()
        var series = [SVGChart.Series(name: "distilled (mean over seeds)",
                                      points: temperatures.map { (x: $0, y: byTemperature[$0]!.reduce(0, +) / Double(byTemperature[$0]!.count)) })]
        if !labelOnly.isEmpty {
            let m = labelOnly.reduce(0, +) / Double(labelOnly.count)
            series.append(SVGChart.Series(name: "labels only (mean)", points: [(temperatures.first!, m), (temperatures.last!, m)]))
        }
        return "<h2>Temperature</h2>" + SVGChart.lineChart(title: "Test errors of the distilled students by temperature", xLabel: "temperature T",
                                                          yLabel: "test errors", series: series, kind: "line-chart temperature-sweep") + "\n"
    }

    static func confusionMatrices(_ runs: [RunRecord]) -> String {
        let withMatrix = runs.filter { ($0.result?["confusion_matrix"] as? [[Int]]) != nil }
        guard !withMatrix.isEmpty else { return "" }
        var html = "<h2>Confusion matrices</h2><div class=\"charts\">"
        for run in withMatrix {
            let matrix = run.result!["confusion_matrix"] as! [[Int]]
            let names = (run.result?["class_names"] as? [String]) ?? (0..<matrix.count).map(String.init)
            html += SVGChart.heatMap(title: "\(run.name): confusion matrix", matrix: matrix, labels: names.count == matrix.count ? names : (0..<matrix.count).map(String.init))
        }
        return html + "</div>\n"
    }

    static func reliability(_ runs: [RunRecord]) -> String {
        let withBins = runs.filter { ($0.result?["reliability"] as? [[String: Any]])?.isEmpty == false }
        guard !withBins.isEmpty else { return "" }
        var html = "<h2>Reliability diagrams</h2><div class=\"charts\">"
        for run in withBins {
            let bins = (run.result!["reliability"] as! [[String: Any]]).map { b in
                (lower: b["lower"] as? Double ?? 0, upper: b["upper"] as? Double ?? 0, count: b["count"] as? Int ?? 0,
                 accuracy: b["accuracy"] as? Double ?? 0, confidence: b["confidence"] as? Double ?? 0)
            }
            let ece = (run.result?["expected_calibration_error"] as? Double).map { String(format: " (ECE %.4f)", $0) } ?? ""
            html += SVGChart.reliabilityDiagram(title: "\(run.name)\(ece)", bins: bins)
        }
        return html + "</div>\n"
    }
}
