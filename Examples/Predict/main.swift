// Classifies rows of a CSV file (raw features, no label column) with a trained model, through the small inference
// library alone (no training code, no command-line parser):
//
//     swift run -c release predict-example student.safetensors rows.csv
import Foundation
import Inference

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: predict-example MODEL.safetensors ROWS.csv\n".utf8))
    exit(2)
}
do {
    let predictor = try Predictor(contentsOf: URL(fileURLWithPath: arguments[1]))
    let text = try String(contentsOf: URL(fileURLWithPath: arguments[2]), encoding: .utf8)
    let rows = text.split(whereSeparator: \.isNewline).map { $0.split(separator: ",").compactMap { Float($0) } }
    for (i, p) in try predictor.predict(rows).enumerated() {
        print("\(i)\t\(p.className)\t\(String(format: "%.4f", p.probability))")
    }
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
