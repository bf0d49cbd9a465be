import Foundation

/// Inline SVG charts: every chart has a title, labelled axes and a legend where it has several series, and carries
/// its kind as a CSS class (`chart line-chart`, `chart heat-map`, ...) so tests and readers can find it.
enum SVGChart {
    struct Series {
        var name: String
        var points: [(x: Double, y: Double)]
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func number(_ v: Double) -> String {
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1000 || a < 0.01 { return String(format: "%.2g", v) }
        if a >= 10 { return String(format: "%.0f", v) }
        return String(format: "%.2f", v).replacingOccurrences(of: #"\.?0+$"#, with: "", options: .regularExpression)
    }

    /// Nice tick values covering `lo...hi`.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var t = (lo / step).rounded(.up) * step
        var out: [Double] = []
        while t <= hi + step * 1e-9 { out.append(t); t += step }
        return out
    }

    /// A line chart of one or more series; `logY` plots log10 of positive values.
    static func lineChart(title: String, xLabel: String, yLabel: String, series: [Series], kind: String = "line-chart",
                          logY: Bool = false, width: Double = 520, height: Double = 300) -> String {
        let left = 62.0, right = 14.0, top = 30.0, bottom = 44.0
        let all = series.flatMap(\.points).filter { $0.y.isFinite && (!logY || $0.y > 0) }
        // Legend: up to three columns, as many as the longest name allows (about 5.8 px per character at 10 px);
        // a name still too long for one line is cut with an ellipsis (the full name is the entry's tooltip).
        let legendWidth = width - left - right
        let longest = Double(series.map(\.name.count).max() ?? 0)
        let legendColumns = Swift.max(1, Swift.min(3, Int(legendWidth / (20 + 5.8 * longest))))
        let legendRows = (series.count + legendColumns - 1) / legendColumns
        let maxCharacters = Swift.max(4, Int((legendWidth / Double(legendColumns) - 20) / 5.8))
        func legendName(_ name: String) -> String {
            name.count <= maxCharacters ? name : String(name.prefix(maxCharacters - 1)) + "…"
        }
        var svg = "<svg class=\"chart \(kind)\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height + Double(series.count > 1 ? 12 + 18 * legendRows : 0)))\" role=\"img\" aria-label=\"\(escape(title))\">"
        svg += "<title>\(escape(title))</title>"
        svg += "<text class=\"chart-title\" x=\"\(width / 2)\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
        guard let minX = all.map(\.x).min(), let maxX = all.map(\.x).max(), var minY = all.map(\.y).min(), var maxY = all.map(\.y).max() else {
            return svg + "<text x=\"\(width / 2)\" y=\"\(height / 2)\" text-anchor=\"middle\">no data</text></svg>"
        }
        func ty(_ y: Double) -> Double { logY ? log10(y) : y }
        minY = ty(minY); maxY = ty(maxY)
        if maxY - minY < 1e-12 { minY -= 0.5; maxY += 0.5 }
        let x1 = maxX > minX ? maxX : minX + 1
        let pw = width - left - right, ph = height - top - bottom
        func px(_ x: Double) -> Double { left + (x - minX) / (x1 - minX) * pw }
        func py(_ y: Double) -> Double { top + (1 - (ty(y) - minY) / (maxY - minY)) * ph }
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(pw)\" height=\"\(ph)\" fill=\"none\" stroke=\"#999\"/>"
        for t in ticks(minX, x1) {
            svg += "<line x1=\"\(px(t))\" y1=\"\(top + ph)\" x2=\"\(px(t))\" y2=\"\(top + ph + 4)\" stroke=\"#333\"/>"
            svg += "<text class=\"tick\" x=\"\(px(t))\" y=\"\(top + ph + 16)\" text-anchor=\"middle\" font-size=\"10\">\(number(t))</text>"
        }
        for t in ticks(minY, maxY) {
            let y = top + (1 - (t - minY) / (maxY - minY)) * ph
            svg += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + pw)\" y2=\"\(y)\" stroke=\"#eee\"/>"
            svg += "<text class=\"tick\" x=\"\(left - 5)\" y=\"\(y + 3)\" text-anchor=\"end\" font-size=\"10\">\(number(logY ? pow(10, t) : t))</text>"
        }
        svg += "<text class=\"axis-label\" x=\"\(left + pw / 2)\" y=\"\(top + ph + 34)\" text-anchor=\"middle\" font-size=\"11\">\(escape(xLabel))</text>"
        svg += "<text class=\"axis-label\" x=\"14\" y=\"\(top + ph / 2)\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 14 \(top + ph / 2))\">\(escape(yLabel + (logY ? " (log scale)" : "")))</text>"
        for (i, s) in series.enumerated() {
            let color = palette[i % palette.count]
            let points = s.points.filter { $0.y.isFinite && (!logY || $0.y > 0) }
            if points.count == 1 {
                svg += "<circle cx=\"\(px(points[0].x))\" cy=\"\(py(points[0].y))\" r=\"3\" fill=\"\(color)\"/>"
            } else if !points.isEmpty {
                let path = points.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
                svg += "<polyline class=\"series\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.6\" points=\"\(path)\"/>"
                if points.count <= 12 {
                    for p in points { svg += "<circle cx=\"\(px(p.x))\" cy=\"\(py(p.y))\" r=\"2.5\" fill=\"\(color)\"/>" }
                }
            }
            if series.count > 1 {
                let lx = left + Double(i % legendColumns) * (legendWidth / Double(legendColumns))
                let ly = height + 12 + Double(i / legendColumns) * 18
                svg += "<rect x=\"\(lx)\" y=\"\(ly - 9)\" width=\"10\" height=\"10\" fill=\"\(color)\"/>"
                svg += "<text class=\"legend\" x=\"\(lx + 14)\" y=\"\(ly)\" font-size=\"10\"><title>\(escape(s.name))</title>\(escape(legendName(s.name)))</text>"
            }
        }
        return svg + "</svg>"
    }

    /// A confusion matrix as a heat map: rows the true classes, columns the predictions, each cell's count shown.
    static func heatMap(title: String, matrix: [[Int]], labels: [String]) -> String {
        let n = matrix.count
        let cell = n <= 12 ? 28.0 : Swift.max(8, 340 / Double(n))
        let left = 80.0, top = 40.0
        let width = left + cell * Double(n) + 20, height = top + cell * Double(n) + 46
        var svg = "<svg class=\"chart heat-map\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"\(escape(title))\">"
        svg += "<title>\(escape(title))</title>"
        svg += "<text class=\"chart-title\" x=\"\(width / 2)\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
        // Colour by each row's share (the diagonal dominates counts; errors stand out off it).
        for (r, row) in matrix.enumerated() {
            let total = Swift.max(1, row.reduce(0, +))
            for (c, v) in row.enumerated() {
                let share = Double(v) / Double(total)
                let shade = r == c ? share : Swift.min(1, share * 10)
                let color = r == c ? String(format: "rgb(%d,%d,255)", Int(255 - 200 * shade), Int(255 - 150 * shade))
                                   : String(format: "rgb(255,%d,%d)", Int(255 - 200 * shade), Int(255 - 200 * shade))
                let x = left + Double(c) * cell, y = top + Double(r) * cell
                svg += "<rect x=\"\(x)\" y=\"\(y)\" width=\"\(cell)\" height=\"\(cell)\" fill=\"\(color)\" stroke=\"#fff\"><title>true \(escape(labels[r])), predicted \(escape(labels[c])): \(v)</title></rect>"
                if cell >= 20 && v > 0 {
                    svg += "<text x=\"\(x + cell / 2)\" y=\"\(y + cell / 2 + 3)\" text-anchor=\"middle\" font-size=\"9\">\(v)</text>"
                }
            }
            if cell >= 10 {
                svg += "<text class=\"tick\" x=\"\(left - 4)\" y=\"\(top + Double(r) * cell + cell / 2 + 3)\" text-anchor=\"end\" font-size=\"10\">\(escape(labels[r]))</text>"
            }
        }
        if cell >= 10 {
            for c in 0..<n {
                svg += "<text class=\"tick\" x=\"\(left + Double(c) * cell + cell / 2)\" y=\"\(top + Double(n) * cell + 12)\" text-anchor=\"middle\" font-size=\"10\">\(escape(labels[c]))</text>"
            }
        }
        svg += "<text class=\"axis-label\" x=\"\(left + cell * Double(n) / 2)\" y=\"\(height - 8)\" text-anchor=\"middle\" font-size=\"11\">predicted class</text>"
        svg += "<text class=\"axis-label\" x=\"14\" y=\"\(top + cell * Double(n) / 2)\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 14 \(top + cell * Double(n) / 2))\">true class</text>"
        return svg + "</svg>"
    }

    /// A reliability diagram: accuracy against confidence per bin, the diagonal for perfect calibration, bars sized
    /// by how many examples fall in each bin.
    static func reliabilityDiagram(title: String, bins: [(lower: Double, upper: Double, count: Int, accuracy: Double, confidence: Double)]) -> String {
        let width = 320.0, height = 300.0, left = 50.0, top = 30.0, size = 220.0
        var svg = "<svg class=\"chart reliability\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"\(escape(title))\">"
        svg += "<title>\(escape(title))</title>"
        svg += "<text class=\"chart-title\" x=\"\(width / 2)\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
        svg += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(size)\" height=\"\(size)\" fill=\"none\" stroke=\"#999\"/>"
        svg += "<line x1=\"\(left)\" y1=\"\(top + size)\" x2=\"\(left + size)\" y2=\"\(top)\" stroke=\"#aaa\" stroke-dasharray=\"4 3\"/>"
        let total = Swift.max(1, bins.reduce(0) { $0 + $1.count })
        for b in bins where b.count > 0 {
            let x = left + b.lower * size, w = (b.upper - b.lower) * size
            let h = b.accuracy * size
            let opacity = 0.25 + 0.75 * Swift.min(1, Double(b.count) / Double(total) * 5)
            svg += "<rect x=\"\(x)\" y=\"\(top + size - h)\" width=\"\(w - 1)\" height=\"\(h)\" fill=\"#1f77b4\" fill-opacity=\"\(String(format: "%.2f", opacity))\"><title>confidence \(number(b.lower))-\(number(b.upper)): \(b.count) examples, accuracy \(String(format: "%.3f", b.accuracy)), mean confidence \(String(format: "%.3f", b.confidence))</title></rect>"
            svg += "<circle cx=\"\(left + b.confidence * size)\" cy=\"\(top + size - b.accuracy * size)\" r=\"2.5\" fill=\"#d62728\"/>"
        }
        for t in [0.0, 0.5, 1.0] {
            svg += "<text class=\"tick\" x=\"\(left + t * size)\" y=\"\(top + size + 14)\" text-anchor=\"middle\" font-size=\"10\">\(number(t))</text>"
            svg += "<text class=\"tick\" x=\"\(left - 5)\" y=\"\(top + size - t * size + 3)\" text-anchor=\"end\" font-size=\"10\">\(number(t))</text>"
        }
        svg += "<text class=\"axis-label\" x=\"\(left + size / 2)\" y=\"\(top + size + 32)\" text-anchor=\"middle\" font-size=\"11\">confidence (max probability)</text>"
        svg += "<text class=\"axis-label\" x=\"14\" y=\"\(top + size / 2)\" text-anchor=\"middle\" font-size=\"11\" transform=\"rotate(-90 14 \(top + size / 2))\">accuracy</text>"
        return svg + "</svg>"
    }

    /// Horizontal bars, one per label.
    static func barChart(title: String, xLabel: String, bars: [(label: String, value: Double)], kind: String = "bar-chart",
                         maximum: Double? = nil) -> String {
        let left = 200.0, barHeight = 18.0, top = 30.0, width = 560.0
        let height = top + Double(bars.count) * (barHeight + 6) + 40
        let top_ = maximum ?? (bars.map(\.value).max() ?? 1)
        let scale = (width - left - 60) / Swift.max(top_, 1e-12)
        var svg = "<svg class=\"chart \(kind)\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" role=\"img\" aria-label=\"\(escape(title))\">"
        svg += "<title>\(escape(title))</title>"
        svg += "<text class=\"chart-title\" x=\"\(width / 2)\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
        for (i, bar) in bars.enumerated() {
            let y = top + Double(i) * (barHeight + 6)
            svg += "<text class=\"tick\" x=\"\(left - 6)\" y=\"\(y + 13)\" text-anchor=\"end\" font-size=\"10\">\(escape(bar.label))</text>"
            svg += "<rect x=\"\(left)\" y=\"\(y)\" width=\"\(Swift.max(0, bar.value * scale))\" height=\"\(barHeight)\" fill=\"\(palette[i % palette.count])\"/>"
            svg += "<text x=\"\(left + Swift.max(0, bar.value * scale) + 4)\" y=\"\(y + 13)\" font-size=\"10\">\(number(bar.value))</text>"
        }
        svg += "<text class=\"axis-label\" x=\"\(left + (width - left) / 2)\" y=\"\(height - 10)\" text-anchor=\"middle\" font-size=\"11\">\(escape(xLabel))</text>"
        return svg + "</svg>"
    }
}
