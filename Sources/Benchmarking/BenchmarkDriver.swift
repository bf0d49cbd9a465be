import Distillation
import Checkpoints
import Foundation
import TensorCore

/// `distill bench`: runs every phase in its own subprocess of this binary (so each phase's peak RSS is its own),
/// interleaved with the same phase of `Scripts/torch_bench.py` when PyTorch is importable, and reports both.
public struct BenchmarkDriver {
    public var options: BenchmarkOptions
    /// The `distill` executable to run the phases with (`distill bench --phase NAME --json`).
    public var executable: String
    public var runTorch = true
    public var scaling = false
    /// The phases to run, in `BenchmarkPhases.all`'s order (default: all of them).
    public var phases = BenchmarkPhases.all
    /// Run PyTorch's script with `tunedMallocEnvironment` in its environment (`--tuned-torch`).
    public var tunedTorchMalloc = false
    var torchEnvironment: [String: String] { tunedTorchMalloc ? BenchmarkDriver.tunedMallocEnvironment : [:] }
    /// Receives progress lines (stderr by default).
    public var log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }

    public init(options: BenchmarkOptions, executable: String) {
        self.options = options
        self.executable = executable
    }

    /// Arguments that make a child run the same configuration.
    public func childArguments(_ phase: String) -> [String] {
        var a = ["bench", "--phase", phase, "--json", "--threads", String(options.threads), "--epochs", String(options.epochs)]
        if options.quick { a.append("--quick") }
        if let m = options.maxBatches { a += ["--max-batches", String(m)] }
        if let d = options.dataDirectory { a += ["--data-dir", d] }
        if !options.overlapTeacher { a.append("--no-teacher-overlap") }
        a += ["--blas", options.blas]
        if options.denseInputs { a.append("--dense-inputs") }
        if let m = options.inferenceModel { a += ["--model", m] }
        return a + teacherArguments
    }

    /// The distillation teacher's flag, the same for our children and PyTorch's script.
    var teacherArguments: [String] {
        if options.randomTeacher { return ["--random-teacher"] }
        return options.teacherFile.map { ["--teacher", $0] } ?? []
    }

    public func torchArguments(_ phase: String, script: String) -> [String] {
        var a = [script, "--phase", phase, "--json", "--threads", String(options.threads), "--epochs", String(options.epochs)]
        if options.quick { a.append("--quick") }
        if let m = options.maxBatches { a += ["--max-batches", String(m)] }
        if let d = options.dataDirectory { a += ["--data-dir", d] }
        return a + teacherArguments
    }

    /// glibc malloc settings for PyTorch under `--tuned-torch`: never trim the heap, keep 64 MiB of slack at its top,
    /// serve blocks up to 32 MiB (every tensor here) from the heap. At glibc's defaults PyTorch's
    /// `zero_grad(set_to_none=True)` frees megabytes of gradients every step, glibc returns the top of the heap to the
    /// kernel and the next step faults it back in: ~1 s of a ~3.8 s student epoch here (Benchmarks.md, PyTorch's allocator).
    public static let tunedMallocEnvironment = ["MALLOC_TRIM_THRESHOLD_": String(1 << 31), "MALLOC_TOP_PAD_": String(64 << 20),
                                         "MALLOC_MMAP_THRESHOLD_": String(32 << 20)]

    /// `tunedMallocEnvironment` as `NAME=value` words, sorted (the report, the table header and `--help` show it).
    public static var tunedMallocDescription: String {
        tunedMallocEnvironment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }

    /// Runs `executable arguments` (with `environment` added to this process's), returns the last stdout line parsed
    /// as a JSON object.
    public static func runJSON(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TrainingError("\(executable) \(arguments.joined(separator: " ")) exited with status \(process.terminationStatus)")
        }
        let text = String(decoding: data, as: UTF8.self)
        guard let line = text.split(separator: "\n").last,
              let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw TrainingError("\(executable) \(arguments.joined(separator: " ")) printed no JSON object")
        }
        return object
    }

    /// The Python that can import torch, or nil (with the reason): `$DISTILL_PYTHON` when set (e.g. a virtual
    /// environment's interpreter; nothing else is tried then), else the first `python3` on `PATH`, else
    /// /usr/bin/python3.
    public static func findTorch(environment: [String: String] = ProcessInfo.processInfo.environment) -> (python: String?, note: String) {
        if let chosen = environment["DISTILL_PYTHON"], !chosen.isEmpty {
            if FileManager.default.isExecutableFile(atPath: chosen), imports(chosen, "torch") { return (chosen, "") }
            return (nil, "PyTorch comparison skipped: `\(chosen) -c \"import torch\"` failed (DISTILL_PYTHON)")
        }
        let path = (environment["PATH"] ?? "/usr/bin").split(separator: ":").map { String($0) + "/python3" }
        for candidate in path + ["/usr/bin/python3"] where FileManager.default.isExecutableFile(atPath: candidate) {
            if imports(candidate, "torch") { return (candidate, "") }
        }
        return (nil, "PyTorch comparison skipped: `python3 -c \"import torch\"` failed")
    }

    /// Rounds of `distill bench --onnxruntime` (each: ours, ONNX Runtime default, ONNX Runtime tuned).
    public static let ortRounds = 5

    /// The first `python3` on `PATH` (or `$DISTILL_PYTHON`) that can import `module`, or nil.
    public static func findPython(importing module: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let candidates = environment["DISTILL_PYTHON"].flatMap { $0.isEmpty ? nil : [$0] }
            ?? (environment["PATH"] ?? "/usr/bin").split(separator: ":").map { String($0) + "/python3" } + ["/usr/bin/python3"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) && imports($0, module) }
    }

    /// Whether `python -c "import <module>"` succeeds.
    static func imports(_ python: String, _ module: String) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: python)
        p.arguments = ["-c", "import \(module)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    /// Scripts/torch_bench.py in the working directory or beside this source file.
    static func torchScript() -> String? { script("torch_bench.py")?.path }

    /// The package root holding Scripts/`name`: the working directory, else the checkout this was built from.
    public static func script(_ name: String) -> (root: String, path: String)? {
        // This file is Sources/Benchmarking/BenchmarkDriver.swift: three levels below the package root.
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        for base in [FileManager.default.currentDirectoryPath, here.path] {
            let path = base + "/Scripts/" + name
            if FileManager.default.fileExists(atPath: path) { return (base, path) }
        }
        return nil
    }

    static func loadAverages() -> [Double] {
        var values = [Double](repeating: 0, count: 3)
        _ = getloadavg(&values, 3)
        return values
    }

    /// Runs everything; returns the report as a JSON-compatible dictionary.
    public func run() throws -> [String: Any] {
        // The distillation teacher, resolved and checked before any phase runs; both sides get its path.
        var driver = self
        if !options.randomTeacher {
            let url = try BenchmarkModels.teacherFile(options)
            _ = try BenchmarkModels.trainedTeacher(at: url)
            driver.options.teacherFile = url.path
        }
        return try driver.runResolved()
    }

    func runResolved() throws -> [String: Any] {
        var report: [String: Any] = ["threads": options.threads, "epochs": options.epochs, "quick": options.quick,
                                     "max_batches": options.maxBatches as Any? ?? NSNull(), "batch": BenchmarkModels.batch,
                                     "loadavg_start": BenchmarkDriver.loadAverages()]
        ComputeThreads.set(options.threads)
        log("measuring sgemm peak (2048^3, \(options.threads) threads)...")
        let peak = BenchmarkPhases.sgemmPeak(size: 2048, repeats: options.quick ? 2 : 4)
        report["sgemm_peak_gflops"] = peak
        report["blas_core"] = BLASKernel.coreName ?? "none"
        report["blas"] = BLASLibrary.active.rawValue
        report["blas_summary"] = BLASLibrary.summary
        report["input_kernels"] = SparseKernels.active ? "sparse" : "dense"
        report["convolutions"] = Convolution.engineSummary
        if SparseKernels.active, let path = SparseKernels.vectorPath { report["sparse_kernel_path"] = path }
        report["teacher_overlap"] = options.overlapTeacher
        report["distill_teacher"] = options.randomTeacher ? "random" : (options.teacherFile ?? "?")
        report["torch_malloc"] = tunedTorchMalloc ? BenchmarkDriver.tunedMallocDescription : "glibc defaults"
        var python: String? = nil, script: String? = nil
        if runTorch {
            let found = BenchmarkDriver.findTorch()
            python = found.python
            script = BenchmarkDriver.torchScript()
            if python == nil { log(found.note); report["torch_note"] = found.note }
            else if script == nil { log("PyTorch comparison skipped: Scripts/torch_bench.py not found"); python = nil }
        } else {
            report["torch_note"] = "--no-torch"
        }
        var phases: [String: Any] = [:]
        report["phase_list"] = self.phases
        for phase in self.phases {
            log("phase \(phase): ours...")
            var entry: [String: Any] = ["ours": try BenchmarkDriver.runJSON(executable, childArguments(phase))]
            if let python, let script {
                log("phase \(phase): torch...")
                do { entry["torch"] = try BenchmarkDriver.runJSON(python, torchArguments(phase, script: script), environment: torchEnvironment) }
                catch { log("torch phase \(phase) failed: \(error)") }
            }
            phases[phase] = entry
        }
        report["phases"] = phases
        if scaling {
            log("scaling: ours...")
            var s: [String: Any] = ["ours": try BenchmarkDriver.runJSON(executable, childArguments("scaling"))]
            if let python, let script {
                log("scaling: torch...")
                do { s["torch"] = try BenchmarkDriver.runJSON(python, torchArguments("scaling", script: script), environment: torchEnvironment) }
                catch { log("torch scaling failed: \(error)") }
            }
            report["scaling"] = s
        }
        report["loadavg_end"] = BenchmarkDriver.loadAverages()
        return report
    }

    /// A phase's result as a JSON object (what a child prints).
    public static func json(_ result: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(result), as: UTF8.self)
    }

    /// The scaling points wrapped as an object (what `--phase scaling` prints).
    public struct ScalingResult: Codable {
        public var points: [ScalingPoint]
        public var peakResidentBytes: Int
        public init(points: [ScalingPoint], peakResidentBytes: Int) { self.points = points; self.peakResidentBytes = peakResidentBytes }
    }

    public static func serialise(_ report: [String: Any]) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// The human-readable tables.
    public static func tables(_ report: [String: Any]) -> String {
        func d(_ any: Any?) -> Double? { (any as? NSNumber)?.doubleValue }
        func f(_ x: Double?, _ format: String) -> String { x.map { String(format: format, $0) } ?? "-" }
        func mb(_ x: Double?) -> String { x.map { String(format: "%.0f MiB", $0 / 1048576) } ?? "-" }
        let peak = d(report["sgemm_peak_gflops"]) ?? .nan
        var out = ""
        let loads = (report["loadavg_start"] as? [Double]) ?? []
        out += String(format: "threads %d, BLAS %@, sgemm peak %.1f GFLOP/s (2048^3), load average at start %@\n",
                      (report["threads"] as? Int) ?? 0,
                      (report["blas_summary"] as? String) ?? "OpenBLAS (\((report["blas_core"] as? String) ?? "?") kernels)", peak, loads.map { String(format: "%.2f", $0) }.joined(separator: " "))
        if let convolutions = report["convolutions"] as? String { out += "convolutions: \(convolutions)\n" }
        switch report["input_kernels"] as? String {
        case "sparse": out += "inputs at most 30% nonzero (the images): forward and weight gradient multiply only the nonzeros (\(SparseKernels.vectorPath ?? "portable") sparse kernels; --dense-inputs for BLAS)\n"
        case "dense": out += "inputs (the images) multiplied densely by BLAS (--dense-inputs, or neither AVX-512 nor AVX2)\n"
        default: break
        }
        if report["quick"] as? Bool == true {
            out += "--quick: each training epoch is the first \(report["max_batches"] as? Int ?? 20) batches, timed and scaled to 60,000 examples\n"
        }
        switch report["distill_teacher"] as? String {
        case "random"?: out += "distillation phases: a randomly initialised teacher (--random-teacher)\n"
        case let file?: out += "distillation phases: the trained teacher \(file)\n"
        default: break
        }
        if let note = report["torch_note"] as? String { out += note + "\n" }
        let torchRuns = ((report["phases"] as? [String: Any]) ?? [:]).values.compactMap { ($0 as? [String: Any])?["torch"] as? [String: Any] }
        if let run = torchRuns.first, let version = run["torch_version"] as? String {
            out += "PyTorch \(version), its BLAS: \(run["torch_blas"] as? String ?? "unknown"), malloc: \(report["torch_malloc"] as? String ?? "glibc defaults")\n"
        }
        out += "\n| phase | ours s/epoch | torch s/epoch | ours/torch | GFLOP/s | % of peak | peak RSS ours | peak RSS torch |\n"
        out += "|---|---|---|---|---|---|---|---|\n"
        let phases = report["phases"] as? [String: Any] ?? [:]
        for name in BenchmarkPhases.all {
            guard let entry = phases[name] as? [String: Any], let ours = entry["ours"] as? [String: Any] else { continue }
            let torch = entry["torch"] as? [String: Any]
            var o: Double?, t: Double?, unit = ""
            switch name {
            case _ where name == "inference" || BenchmarkPhases.cnnInference.contains(name):
                o = d(ours["seconds_per_pass"]); t = d(torch?["seconds_per_pass"]); unit = " (s/pass)"
            case "latency": o = d(ours["latency_milliseconds"]); t = d(torch?["latency_ms"]); unit = " (ms)"
            default: o = d(ours["seconds_per_epoch"]); t = d(torch?["seconds_per_epoch"])
            }
            let ratio = (o != nil && t != nil) ? o! / t! : nil
            let g = d(ours["gflops"])
            out += "| \(name)\(unit) | \(f(o, "%.3f")) | \(f(t, "%.3f")) | \(f(ratio, "%.2f")) | \(f(g, "%.1f")) | "
            out += "\(f(g.map { 100 * $0 / peak }, "%.0f%%")) | \(mb(d(ours["peak_resident_bytes"]))) | \(mb(d(torch?["peak_rss_bytes"]))) |\n"
        }
        if report["input_kernels"] as? String == "sparse" {
            out += "\nGFLOP/s count every product as dense (2mnk, as PyTorch does the work); the sparse kernels skip the zero inputs' "
            out += "multiply-adds, so a phase that uses them more (a trained teacher's sparse hidden units) can pass 100% of the sgemm peak.\n"
        }
        // A phase's figure `key`, ours or PyTorch's.
        func value(_ phase: String, _ side: String, _ key: String) -> Double? {
            d(((phases[phase] as? [String: Any])?[side] as? [String: Any])?[key])
        }
        if let setup = value("distill_cached", "ours", "setup_seconds") {
            out += "\ndistill_cached setup (teacher logits for all training images, once, not in the epochs): ours "
            out += "\(f(setup, "%.2f")) s, torch \(f(value("distill_cached", "torch", "setup_seconds"), "%.2f")) s\n"
            if let student = value("student", "ours", "seconds_per_epoch") {
                func relative(_ phase: String, plus extra: Double = 0) -> String {
                    f(value(phase, "ours", "seconds_per_epoch").map { ($0 + extra) / student }, "%.2f")
                }
                out += "ours relative to a student epoch: online \(relative("distill_online"))x, cached \(relative("distill_cached"))x "
                out += "(first epoch with the setup \(relative("distill_cached", plus: setup))x), store \(relative("distill_store"))x\n"
            }
        }
        let allocations = BenchmarkPhases.training.compactMap { phase -> String? in
            value(phase, "ours", "steady_state_allocations").map { "\(phase) \(Int($0))" }
        }
        if !allocations.isEmpty {
            out += "buffer allocations in the timed epochs after the first (0 = every step reuses pooled buffers): "
            out += allocations.joined(separator: ", ") + "\n"
        }
        if let s = report["scaling"] as? [String: Any], let ours = (s["ours"] as? [String: Any])?["points"] as? [[String: Any]] {
            let torch = s["torch"] as? [String: Any]
            let tb = torch?["batch"] as? [[String: Any]] ?? [], tw = torch?["width"] as? [[String: Any]] ?? []
            out += "\nscaling (student training step, microseconds per example)\n\n| batch | width | ours µs/ex | torch µs/ex | ours/torch | ours GFLOP/s |\n|---|---|---|---|---|---|\n"
            for (i, p) in ours.enumerated() {
                let batch = p["batch"] as? Int ?? 0, width = p["width"] as? Int ?? 0
                let isBatchRow = i < BenchmarkPhases.scalingBatches.count
                let match = isBatchRow ? tb.first { $0["batch"] as? Int == batch } : tw.first { $0["width"] as? Int == width }
                let o = d(p["seconds_per_example"]).map { $0 * 1e6 }, t = d(match?["seconds_per_example"]).map { $0 * 1e6 }
                out += "| \(batch) | \(width) | \(f(o, "%.1f")) | \(f(t, "%.1f")) | \(f(o != nil && t != nil ? o! / t! : nil, "%.2f")) | \(f(d(p["gflops"]), "%.1f")) |\n"
            }
        }
        let end = (report["loadavg_end"] as? [Double]) ?? []
        out += "\nload average at end \(end.map { String(format: "%.2f", $0) }.joined(separator: " "))\n"
        return out
    }
}
