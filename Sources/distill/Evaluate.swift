import Checkpoints
import ArgumentParser
import Foundation
import Distillation
import TensorCore
import DataFormats

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Evaluate a trained model on a test set (at T = 1): the MNIST test set, the test split the model recorded, or --test-data.")

    @Argument(help: "A model file written by `distill train` or `distill distill` (or a PyTorch nn.Sequential state dict in safetensors).")
    var model: String
    @Option(help: "Teacher model file(s) for agreement and KL(teacher || student), comma-separated for an ensemble.",
            transform: { $0.split(separator: ",").map(String.init) })
    var teacher: [String] = []
    @OptionGroup var dataOptions: DataOptions
    @Option(parsing: .unconditional, help: "The seed of a --test-split given here (a split recorded in the model file uses its own seed).") var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "Threads for BLAS and elementwise work.") var threads: Int = 2
    @OptionGroup var kernelOptions: KernelOptions
    @Flag(help: "Print one JSON object on stdout.") var json = false

    func validate() throws {
        guard threads >= 1 && threads <= 256 else { throw ValidationError("--threads must be in 1...256, got \(threads)") }
    }

    func run() throws {
        let checkpoint = try ModelCheckpoint.read(url: URL(fileURLWithPath: model))
        let specification = try DataSpecification.from(metadata: checkpoint.metadata)
        let test = try DataLoader.loadForEvaluation(dataOptions.request(seed: seed), specification: specification)
        let data = (train: test, test: test)
        try TrainingJob.checkCompatible(checkpoint, with: data.test, source: model)
        try kernelOptions.apply()
        ComputeThreads.set(threads)
        let teacherModel = teacher.isEmpty ? nil : try TeacherLoader.load(paths: teacher, combination: .meanProbabilities, dataset: data.test)
        let metrics = try EvaluationMetrics.evaluate(model: checkpoint.model, dataset: data.test, teacher: teacherModel)
        if json {
            var object = try metricsFields(metrics, classNames: specification?.classNames)
            object["model"] = model
            object["data"] = dataOptions.describe
            object["split"] = dataOptions.data == nil ? "MNIST test set (\(data.test.count) images)" : "\(data.test.count) examples of \(dataOptions.describe)"
            object["peak_rss_bytes"] = ResourceUsage.peakResidentBytes
            let bytes = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: bytes, as: UTF8.self))
        } else {
            print("test errors: \(metrics.testErrors)/\(metrics.count) (accuracy \(String(format: "%.2f", metrics.testAccuracy * 100))%)")
            print("per-class errors: \(metrics.perClassErrors)")
            print(String(format: "expected calibration error (15 bins): %.4f", metrics.expectedCalibrationError))
            if let agreement = metrics.teacherAgreement, let kl = metrics.klTeacherStudent {
                print(String(format: "teacher agreement: %.4f, KL(teacher || student): %.4f", agreement, kl))
            }
        }
    }
}
