import Benchmarking
import ArgumentParser
import Foundation
import Distillation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmark training and inference against PyTorch (Scripts/torch_bench.py) on this CPU.",
        discussion: "Each phase runs in its own subprocess (so peak RSS is per phase), interleaved with the same PyTorch phase. See Benchmarks.md.")

    @Flag(help: "Print one JSON object instead of tables.") var json = false
    @Option(help: "Threads for BLAS and the elementwise loops (and torch.set_num_threads).") var threads = 2
    @Option(help: "Timed epochs per phase, median reported (default 3; 1 with --quick).") var epochs: Int?
    @Option(help: "Time only the first N batches per epoch and scale to 60,000 examples (20 with --quick).") var maxBatches: Int?
    @Flag(help: "Short smoke run: 1 epoch of the first 20 batches, scaled; fewer inference/latency repeats.") var quick = false
    @Flag(help: "Skip the PyTorch comparison.") var noTorch = false
    @Flag(help: ArgumentHelp("Run PyTorch with glibc's allocator tuned (\(BenchmarkDriver.tunedMallocDescription)) instead of its defaults, under which its training steps fault freed gradient memory back in every step."))
    var tunedTorch = false
    @Flag(help: "Also time per-example cost against batch size 1...1024 and width 30...2400.") var scaling = false
    @Option(help: "MNIST directory (*-idx?-ubyte.gz); default the embedded copy.") var dataDir: String?
    @Option(help: "Also write the JSON report to this file.") var jsonOutput: String?
    @Flag(help: "distill_online: teacher and student take turns, each on every thread (default: the teacher runs one batch ahead on its own thread, as in distill distill).")
    var noTeacherOverlap = false
    @Option(help: ArgumentHelp("The distillation phases' trained teacher, a 784-1200-1200-10 model file (default: the shipped Data/teachers/\(BenchmarkModels.defaultTeacherName)).", valueName: "file"))
    var teacher: String?
    @Flag(help: "The distillation phases use a randomly initialised teacher instead of a trained one (the benchmark's former teacher; a random network's hidden units are ~50% nonzero, the shipped trained teacher's 7.5% and 14%).")
    var randomTeacher = false
    @Option(help: .hidden) var phase: String?
    @Option(help: ArgumentHelp("Run only these phases, comma-separated (\(BenchmarkPhases.all.joined(separator: ", "))); `cnn` stands for the CNN ones.", valueName: "list"))
    var phases: String?
    @Flag(help: "Time the distillation loss alone (forward and backward, 512 rows, 1,000 / 32,000 / 128,000 classes) against PyTorch's kl_div + cross_entropy (Scripts/loss_bench.py), alternated, and print the table; then the same from a top-64 teacher (sparse targets) against DistillKit's sparse KL.")
    var loss = false
    @Option(help: ArgumentHelp("The inference and latency phases' model: a model file (default: a random 784-800-800-10 student). Scripts/ort_bench.py uses it to time the same weights as ONNX Runtime.", valueName: "file"))
    var model: String?
    @Option(help: ArgumentHelp("With --phase (a training phase): switch this kernel off and on every \(Alternation.stepsPerSwitch) steps and report the median step time of each (\(Alternation.Kernel.allCases.map(\.rawValue).joined(separator: ", "))).", valueName: "kernel"))
    var alternate: String?
    @Flag(help: ArgumentHelp("Time inference against ONNX Runtime instead (Scripts/ort_bench.py: each model exported by `distill export`, ONNX Runtime at its default and tuned session options, fresh processes alternated, \(BenchmarkDriver.ortRounds) rounds): throughput on the 10,000 test images and one-image latency, for --model (default: a 784-800-800-10 student trained for one epoch) and, with --phases cnn, the lenet5 and resnet8 test models (--phases cnn,inference: all three)."))
    var onnxruntime = false
    @OptionGroup var kernelOptions: KernelOptions

    func run() throws {
        var options = BenchmarkOptions()
        options.threads = threads
        options.quick = quick
        options.epochs = epochs ?? (quick ? 1 : 3)
        options.maxBatches = maxBatches ?? (quick ? 20 : nil)
        options.dataDirectory = dataDir
        options.overlapTeacher = !noTeacherOverlap
        options.blas = try kernelOptions.apply(announce: phase == nil).rawValue
        options.denseInputs = kernelOptions.denseInputs
        options.inferenceModel = model
        if loss { try runLossBenchmark(); return }
        if onnxruntime { try runONNXRuntimeBenchmark(); return }
        if randomTeacher && teacher != nil { throw ValidationError("--teacher and --random-teacher: pass one of them") }
        options.randomTeacher = randomTeacher
        options.teacherFile = teacher
        if let alternate {
            guard let kernel = Alternation.Kernel(rawValue: alternate) else {
                throw ValidationError("--alternate: expected one of \(Alternation.Kernel.allCases.map(\.rawValue).joined(separator: ", ")), got '\(alternate)'")
            }
            guard let phase, BenchmarkPhases.trainingPhases.contains(phase) else {
                throw ValidationError("--alternate needs --phase with a training phase (\(BenchmarkPhases.trainingPhases.joined(separator: ", ")))")
            }
            guard !kernelOptions.denseInputs else { throw ValidationError("--alternate times a sparse kernel: drop --dense-inputs") }
            options.alternate = kernel
        }
        if let phase {
            // A child: one phase in this process, one JSON line on stdout.
            if phase == "scaling" {
                let points = try BenchmarkPhases.scaling(options: options)
                print(try BenchmarkDriver.json(BenchmarkDriver.ScalingResult(points: points, peakResidentBytes: ResourceUsage.peakResidentBytes)))
            } else {
                let result = try BenchmarkPhases.run(phase, options: options)
                print(json ? try BenchmarkDriver.json(result) : "\(result)")
            }
            return
        }
        var driver = BenchmarkDriver(options: options, executable: URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path)
        driver.runTorch = !noTorch
        driver.tunedTorchMalloc = tunedTorch
        driver.scaling = scaling
        if let phases {
            var chosen: Set<String> = []
            for word in phases.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                if word == "cnn" {
                    chosen.formUnion(BenchmarkPhases.cnnTraining + BenchmarkPhases.featureDistillation + BenchmarkPhases.cnnInference)
                    continue
                }
                guard BenchmarkPhases.all.contains(word) else {
                    throw ValidationError("--phases: unknown phase '\(word)' (known: \(BenchmarkPhases.all.joined(separator: ", ")), cnn)")
                }
                chosen.insert(word)
            }
            guard !chosen.isEmpty else { throw ValidationError("--phases: name at least one phase") }
            driver.phases = BenchmarkPhases.all.filter(chosen.contains)
        }
        let report = try driver.run()
        if let jsonOutput { try Data(BenchmarkDriver.serialise(report).utf8).write(to: URL(fileURLWithPath: jsonOutput)) }
        print(json ? BenchmarkDriver.serialise(report) : BenchmarkDriver.tables(report))
    }

    /// `--onnxruntime`: Scripts/ort_bench.py with this executable, its table on stdout (its JSON with --json or
    /// --json-output).
    func runONNXRuntimeBenchmark() throws {
        guard let (root, script) = BenchmarkDriver.script("ort_bench.py") else {
            throw TrainingError("--onnxruntime: Scripts/ort_bench.py not found (in the working directory or the checkout distill was built from)")
        }
        guard let python = BenchmarkDriver.findPython(importing: "onnxruntime") else {
            throw TrainingError("--onnxruntime: no python3 can import onnxruntime (pip install onnxruntime; or set DISTILL_PYTHON)")
        }
        // The script runs in the package root (its test models and MNIST copy); paths given here are made absolute.
        func absolute(_ path: String) -> String {
            URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).path
        }
        var arguments = [script, "--distill", URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path,
                         "--threads", String(threads), "--rounds", String(BenchmarkDriver.ortRounds)]
        if let model { arguments += ["--model", absolute(model)] }
        if quick { arguments.append("--quick") }
        if let dataDir { arguments += ["--data-dir", absolute(dataDir)] }
        if let phases {
            let words = phases.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            if words.contains("cnn") || words.contains("lenet5_inference") || words.contains("resnet8_inference") { arguments.append("--cnn") }
            if words.contains("inference") || words.contains("latency") { arguments.append("--mlp") }
        }
        if let jsonOutput { arguments += ["--json-output", absolute(jsonOutput)] }
        if json { arguments.append("--json") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: root)
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TrainingError("--onnxruntime: \(script) exited with status \(process.terminationStatus)")
        }
    }

    /// `--loss`: ours in this process, PyTorch's script in a fresh one, alternated three times per class count.
    func runLossBenchmark() throws {
        let python = BenchmarkDriver.findTorch().python
        let script = ["Scripts/loss_bench.py"].first { FileManager.default.fileExists(atPath: $0) }
        var rows: [[String: Any]] = []
        print("distillation loss, forward + backward, \(LossBenchmark.rows) rows, T = \(LossBenchmark.temperature), \(threads) threads (medians of 3 alternated rounds)")
        print("| classes | ours | PyTorch | ours / PyTorch |\n|---|---|---|---|")
        for classes in LossBenchmark.classCounts {
            var ours: [Double] = [], torch: [Double] = []
            for _ in 0..<3 {
                ours.append(LossBenchmark.ours(classes: classes, threads: threads))
                if let python, let script {
                    let r = try BenchmarkDriver.runJSON(python, [script, "--classes", String(classes), "--rows", String(LossBenchmark.rows),
                                                                 "--temperature", String(LossBenchmark.temperature), "--threads", String(threads)])
                    if let s = r["seconds"] as? Double { torch.append(s) }
                }
            }
            let o = BenchmarkPhases.median(ours), t = torch.isEmpty ? nil : BenchmarkPhases.median(torch)
            print("| \(classes) | \(String(format: "%.4f s", o)) | \(t.map { String(format: "%.4f s", $0) } ?? "-") | \(t.map { String(format: "%.2f", o / $0) } ?? "-") |")
            rows.append(["classes": classes, "ours_seconds": o, "torch_seconds": t as Any? ?? NSNull(), "ours_rounds": ours, "torch_rounds": torch])
        }
        let k = LossBenchmark.keptClasses
        print("\nfrom a top-\(k) teacher (sparse targets; PyTorch: DistillKit's sparse KL, gather + log_softmax over the k kept)")
        print("| classes | ours | PyTorch | ours / PyTorch |\n|---|---|---|---|")
        var sparseRows: [[String: Any]] = []
        for classes in LossBenchmark.classCounts {
            var ours: [Double] = [], torch: [Double] = []
            for _ in 0..<3 {
                ours.append(LossBenchmark.oursSparse(classes: classes, keep: k, threads: threads))
                if let python, let script {
                    let r = try BenchmarkDriver.runJSON(python, [script, "--classes", String(classes), "--rows", String(LossBenchmark.rows),
                                                                 "--temperature", String(LossBenchmark.temperature), "--threads", String(threads),
                                                                 "--top-k", String(k)])
                    if let s = r["seconds"] as? Double { torch.append(s) }
                }
            }
            let o = BenchmarkPhases.median(ours), t = torch.isEmpty ? nil : BenchmarkPhases.median(torch)
            print("| \(classes) | \(String(format: "%.4f s", o)) | \(t.map { String(format: "%.4f s", $0) } ?? "-") | \(t.map { String(format: "%.2f", o / $0) } ?? "-") |")
            sparseRows.append(["classes": classes, "top_k": k, "ours_seconds": o, "torch_seconds": t as Any? ?? NSNull(),
                               "ours_rounds": ours, "torch_rounds": torch])
        }
        if json || jsonOutput != nil {
            let data = try JSONSerialization.data(withJSONObject: ["loss": rows, "loss_top_k": sparseRows, "threads": threads], options: [.sortedKeys])
            if let jsonOutput { try data.write(to: URL(fileURLWithPath: jsonOutput)) }
        }
    }
}
