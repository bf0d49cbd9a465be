import ArgumentParser
import Foundation
import Distributed
import Distillation
import TensorCore
import Datasets
import Experiments
import Reports
import TensorIO
import Specialists

/// Flags shared by the experiments.
struct ExperimentOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Seeds, comma-separated; every seed is run and mean ± sd reported.", transform: parseSeeds)
    var seeds: [UInt64] = [0]
    @Option(help: "MNIST directory (default: the embedded copy).") var dataDir: String?
    @Option(help: "Directory caching finished models, so an interrupted experiment resumes where it stopped.")
    var workDir: String = "runs"
    @Option(parsing: .unconditional, help: "Threads for BLAS and elementwise work.") var threads: Int = 2
    @Option(parsing: .unconditional, help: "Multiply every epoch count by this factor (shorter trial runs).") var epochScale: Double = 1
    @OptionGroup var kernelOptions: KernelOptions
    @Flag(help: "Print one JSON object on stdout.") var json = false

    func validate() throws {
        guard threads >= 1 && threads <= 256 else { throw ValidationError("--threads must be in 1...256, got \(threads)") }
        guard epochScale > 0 && epochScale.isFinite else { throw ValidationError("--epoch-scale must be > 0, got \(epochScale)") }
    }

    func context() throws -> ExperimentContext {
        try kernelOptions.apply()
        var context = try ExperimentContext(data: DataLocation.loadMNIST(dataDir), workDirectory: URL(fileURLWithPath: workDir), threads: threads)
        context.communicator = World.current
        return context
    }
}

func parseSeeds(_ text: String) throws -> [UInt64] {
    let seeds = text.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
    guard !seeds.isEmpty, seeds.allSatisfy({ $0 != nil }) else {
        throw ValidationError("--seeds expects non-negative integers separated by commas (e.g. 0,1,2), got '\(text)'")
    }
    return seeds.compactMap { $0 }
}

func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// Writes `<work dir>/<name>-report.html`: the experiment's table, extra chart sections, and every model's run.
func writeExperimentReport(_ context: ExperimentContext, name: String, title: String, table: String,
                           sections: [(title: String, html: String)] = []) throws {
    guard context.writes else { return }
    let url = context.workDirectory.appendingPathComponent("\(name)-report.html")
    let records = context.runs.directories.compactMap { try? RunRecord.load($0) }
    let html = HTMLReport.render(runs: records, title: title, tables: [(title, table)], sections: sections)
    try AtomicFile.write(data: Data(html.utf8), to: url, overwrite: true)
    context.log("report: \(url.path)")
}

func mean(_ values: [Int]) -> Double { values.isEmpty ? .nan : Double(values.reduce(0, +)) / Double(values.count) }

extension HintonMNIST.Preset: ExpressibleByArgument {}
extension EnsembleDistillation.Preset: ExpressibleByArgument {}
extension SpecialistExperiment.Preset: ExpressibleByArgument {}
extension CNNDistillation.Preset: ExpressibleByArgument {}
extension ConfusableClustering.Measure: ExpressibleByArgument {}

struct Reproduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-run the experiments of Hinton, Vinyals & Dean (2015) and print them beside the paper's figures.",
        subcommands: [HintonMNISTCommand.self, EnsembleCommand.self, SpecialistsCommand.self, CNNCommand.self, OmittedClassCommand.self,
                      TemperatureSweepCommand.self, SmallDataCommand.self])

    struct HintonMNISTCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "hinton-mnist",
            abstract: "Teacher 2x1200 (dropout, jitter, max-norm), student 2x800 on labels, the same student distilled at T=20.")

        @Option(help: "quick (10,000 training images, about half a minute a seed), full (60,000 images, 5,000 held out for model selection, short schedules) or paper (60,000 images, the long teacher schedule, final models).")
        var preset: HintonMNIST.Preset = .quick
        @OptionGroup var experiment: ExperimentOptions

        func run() throws {
            let start = Date()
            let context = try experiment.context()
            let results = try HintonMNIST.run(preset: preset, seeds: experiment.seeds, context: context, epochScale: experiment.epochScale)
            let wall = Date().timeIntervalSince(start)
            try writeExperimentReport(context, name: "hinton-mnist-\(preset.rawValue)", title: "hinton-mnist, preset \(preset.rawValue)",
                                      table: HintonMNIST.table(results, preset: preset))
            if experiment.json {
                let perSeed = try JSONSerialization.jsonObject(with: JSONEncoder().encode(results))
                try printJSON([
                    "experiment": "hinton-mnist", "preset": preset.rawValue, "seeds": experiment.seeds.map { Int($0) },
                    "teacher_errors": mean(results.map(\.teacherErrors)), "student_errors": mean(results.map(\.studentErrors)),
                    "distilled_errors": mean(results.map(\.distilledErrors)),
                    "teacher_last_epoch_errors": mean(results.map(\.teacherLastEpochErrors)),
                    "student_last_epoch_errors": mean(results.map(\.studentLastEpochErrors)),
                    "distilled_last_epoch_errors": mean(results.map(\.distilledLastEpochErrors)),
                    "gap_recovered": { () -> Any in
                        let g = HintonMNIST.gapRecovered(teacher: mean(results.map(\.teacherErrors)), student: mean(results.map(\.studentErrors)),
                                                         distilled: mean(results.map(\.distilledErrors)))
                        return g.isFinite ? g : NSNull()
                    }(),
                    "augmented_student_errors": results.allSatisfy { $0.augmentedStudentErrors != nil }
                        ? mean(results.compactMap(\.augmentedStudentErrors)) as Any : NSNull(),
                    "augmented_distilled_errors": results.allSatisfy { $0.augmentedDistilledErrors != nil }
                        ? mean(results.compactMap(\.augmentedDistilledErrors)) as Any : NSNull(),
                    "healthy": results.allSatisfy { $0.teacherHealth.healthy && $0.studentHealth.healthy && $0.distilledHealth.healthy },
                    "per_seed": perSeed, "wall_seconds": wall,
                    "paper": ["teacher_errors": HintonMNIST.paper.teacher, "student_errors": HintonMNIST.paper.student,
                              "distilled_errors": HintonMNIST.paper.distilled],
                    "plan": try JSONSerialization.jsonObject(with: JSONEncoder().encode(HintonMNIST.plan(preset))),
                    "split": HintonMNIST.plan(preset).teacher.data.validationCount > 0
                        ? "errors on the MNIST test set (10,000 images); model selection on a validation split of the training images"
                        : "errors on the MNIST test set (10,000 images) of the final models; no model selection",
                ])
            } else {
                print(HintonMNIST.table(results, preset: preset))
                print(String(format: "wall time %.0f s", wall))
            }
        }
    }

    struct EnsembleCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ensemble",
            abstract: "N label-trained 2x800 models, their ensemble (mean of probabilities) and one model distilled from it (the paper's section 4).")

        @Option(help: "quick (10,000 training images) or full (the whole training set).")
        var preset: EnsembleDistillation.Preset = .quick
        @Option(parsing: .unconditional, help: "Models in the ensemble.") var members: Int = EnsembleDistillation.defaultMembers
        @OptionGroup var experiment: ExperimentOptions

        func validate() throws {
            guard members >= 2 && members <= 100 else { throw ValidationError("--members must be in 2...100, got \(members)") }
        }

        func run() throws {
            let start = Date()
            let context = try experiment.context()
            let results = try EnsembleDistillation.run(preset: preset, members: members, seeds: experiment.seeds,
                                                       context: context, epochScale: experiment.epochScale)
            let wall = Date().timeIntervalSince(start)
            try writeExperimentReport(context, name: "ensemble-\(preset.rawValue)", title: "ensemble, preset \(preset.rawValue)",
                                      table: EnsembleDistillation.table(results, preset: preset, members: members))
            if experiment.json {
                let single = results.map(\.singleErrors).reduce(0, +) / Double(results.count)
                let ensemble = mean(results.map(\.ensembleErrors)), distilled = mean(results.map(\.distilledErrors))
                let kept = EnsembleDistillation.gainKept(single: single, ensemble: ensemble, distilled: distilled)
                try printJSON([
                    "experiment": "ensemble", "preset": preset.rawValue, "members": members, "seeds": experiment.seeds.map { Int($0) },
                    "single_errors": single, "ensemble_errors": ensemble, "distilled_errors": distilled,
                    "gain_kept": kept.isFinite ? kept : NSNull(),
                    "per_seed": try JSONSerialization.jsonObject(with: JSONEncoder().encode(results)), "wall_seconds": wall,
                    "paper": ["baseline_frame_accuracy": EnsembleDistillation.paper.baseline,
                              "ensemble_frame_accuracy": EnsembleDistillation.paper.ensemble,
                              "distilled_frame_accuracy": EnsembleDistillation.paper.distilled,
                              "gain_kept": EnsembleDistillation.paper.gainKept],
                    "plan": try JSONSerialization.jsonObject(with: JSONEncoder().encode(EnsembleDistillation.plan(preset))),
                    "split": "errors on the MNIST test set (10,000 images) of the last epoch's weights; no validation split",
                ])
            } else {
                print(EnsembleDistillation.table(results, preset: preset, members: members))
                print(String(format: "wall time %.0f s", wall))
            }
        }
    }

    struct CNNCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "cnn",
            abstract: "A ResNet-8 teacher distilled into the 2x800 MLP and LeNet-5 with each loss: labels, Hinton KD, FitNets hints, attention transfer, decoupled KD, similarity-preserving KD.")

        @Option(help: "quick (10,000 training images) or full (the whole training set).")
        var preset: CNNDistillation.Preset = .quick
        @Option(help: ArgumentHelp("Losses to run, comma-separated (default all: labels,hinton,fitnets,attention,dkd,similarity).", valueName: "LIST"),
                transform: { text in
                    try text.split(separator: ",").map { name in
                        guard let loss = CNNDistillation.Loss(rawValue: String(name)) else {
                            throw ValidationError("--losses: unknown loss '\(name)' (known: \(CNNDistillation.Loss.allCases.map(\.rawValue).joined(separator: ", ")))")
                        }
                        return loss
                    }
                })
        var losses: [CNNDistillation.Loss] = CNNDistillation.Loss.allCases
        @Option(parsing: .unconditional, help: "Weight of the FitNets hint term (default: the preset's).") var hintWeight: Float?
        @Option(parsing: .unconditional, help: "Weight of the attention-transfer term (default: the preset's).") var attentionWeight: Float?
        @Option(parsing: .unconditional, help: "Weight of the similarity-preserving term (default: the preset's).") var similarityWeight: Float?
        @Option(parsing: .unconditional, help: "DKD's non-target weight beta for every student (default: each student's, from the preset).") var dkdBeta: Float?
        @Option(parsing: .unconditional, help: ArgumentHelp("DKD's warm-up: epoch e (from 1) weighs the DKD term min(e / N, 1) (default 0: none).", valueName: "N"))
        var dkdWarmup: Int = 0
        @Option(parsing: .unconditional, help: "Clip every student's global gradient norm to this value (default: no clipping).")
        var clipGradNorm: Float?
        @Option(parsing: .unconditional, help: "Hold out this many training images and report errors on them instead of the test set (for choosing settings).")
        var heldOut: Int = 0
        @OptionGroup var experiment: ExperimentOptions

        func validate() throws {
            for (flag, value) in [("--hint-weight", hintWeight), ("--attention-weight", attentionWeight),
                                  ("--similarity-weight", similarityWeight), ("--dkd-beta", dkdBeta)] {
                if let value, !(value.isFinite && value >= 0) { throw ValidationError("\(flag) must be a finite number >= 0, got \(value)") }
            }
            guard heldOut >= 0 else { throw ValidationError("--held-out must be >= 0, got \(heldOut)") }
            guard dkdWarmup >= 0 else { throw ValidationError("--dkd-warmup must be a number of epochs >= 0, got \(dkdWarmup)") }
            if let clipGradNorm, !(clipGradNorm.isFinite && clipGradNorm > 0) {
                throw ValidationError("--clip-grad-norm must be a finite number > 0, got \(clipGradNorm)")
            }
        }

        func run() throws {
            let start = Date()
            let context = try experiment.context()
            var plan = CNNDistillation.plan(preset)
            if let hintWeight { plan.hintWeight = hintWeight }
            if let attentionWeight { plan.attentionWeight = attentionWeight }
            if let similarityWeight { plan.similarityWeight = similarityWeight }
            if let dkdBeta { plan.dkdBetaOverride = dkdBeta }
            plan.decoupled.warmupEpochs = dkdWarmup
            plan.student.optimizer.gradientClip = clipGradNorm
            let outcome = try CNNDistillation.run(preset: preset, seeds: experiment.seeds, losses: losses, context: context,
                                                  epochScale: experiment.epochScale, plan: plan, heldOut: heldOut)
            let wall = Date().timeIntervalSince(start)
            let table = CNNDistillation.table(outcome, preset: preset, seeds: experiment.seeds, plan: plan, heldOut: heldOut)
            try writeExperimentReport(context, name: "cnn-\(preset.rawValue)", title: "CNN teacher, preset \(preset.rawValue)", table: table)
            if experiment.json {
                try printJSON([
                    "experiment": "cnn", "preset": preset.rawValue, "seeds": experiment.seeds.map { Int($0) },
                    "outcome": try JSONSerialization.jsonObject(with: JSONEncoder().encode(outcome)), "wall_seconds": wall,
                    "plan": try JSONSerialization.jsonObject(with: JSONEncoder().encode(plan)),
                    "split": heldOut > 0 ? "errors on \(heldOut) held-out training images (not the test set)"
                        : "errors on the MNIST test set (10,000 images) of the last epoch's weights; no model selection",
                ])
            } else {
                print(table)
                print(String(format: "wall time %.0f s", wall))
            }
        }
    }

    struct SpecialistsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "specialists",
            abstract: "A generalist, specialists with a dustbin class on confusable subsets, and their eq. 5 combination (the paper's section 5).",
            discussion: "Runs on the embedded printed-characters set (Data/glyphs: 62 classes, rendered from Debian's fonts) unless --dataset mnist. Confusable subsets come from the covariance of the generalist's predictions on held-out training examples; the table splits the change by the number of active specialists covering the correct class (the paper's Table 4).")

        enum DatasetChoice: String, ExpressibleByArgument, CaseIterable { case glyphs, mnist }

        @Option(help: "quick (30,000 training images, one hidden layer of 512, short schedules) or full (every training image, 2x800).")
        var preset: SpecialistExperiment.Preset = .quick
        @Option(help: "glyphs (62 classes) or mnist (10 classes: few confusable groups).") var dataset: DatasetChoice = .glyphs
        @Option(parsing: .unconditional, help: "K-means clusters (default: classes / 3); clusters of one class or of more than half of them get no specialist.") var clusters: Int?
        @Option(help: "What K-means clusters: the columns of the generalist's covariance (the paper), its correlations, or confusion (correlations with each class's own entry replaced by its largest other one, so that mutually confused classes have equal columns). Default: the preset's.")
        var clusterMeasure: ConfusableClustering.Measure?
        @Option(parsing: .unconditional, help: "Grow every cluster to this many classes with those the generalist confuses with it most, so subsets overlap (default: the clusters themselves).") var subsetSize: Int?
        @Option(parsing: .unconditional, help: "The generalist's top-n classes that select the active specialists (default 5).") var candidates: Int?
        @Option(parsing: .unconditional, help: "Examples from outside its subset per specialist, the subset repeated to match (default: the preset's; 0 = as many as the subset has).") var restExamples: Int?
        @Option(parsing: .unconditional, help: "Epochs of each specialist (default: the preset's).") var specialistEpochs: Int?
        @Option(parsing: .unconditional, help: "Learning rate of each specialist (default: the preset's).") var specialistLearningRate: Float?
        @Option(parsing: .unconditional, help: "Shift every training image by up to this many pixels, generalist and specialists (default: the preset's).") var jitter: Int?
        @Option(parsing: .unconditional, help: "Train the specialists on the generalist's soft targets (restricted to the subset and dustbin) at this temperature beside the labels, hard/soft 0.5/0.5; 0 = labels only.")
        var specialistTemperature: Float?
        @Option(parsing: .unconditional, help: "Evaluate on this many seeded held-out training images instead of the test set (to choose settings without looking at the test set).")
        var heldOutTest: Int?
        @OptionGroup var experiment: ExperimentOptions

        func run() throws {
            let start = Date()
            try experiment.kernelOptions.apply()
            var data: (train: LabeledDataset, test: LabeledDataset)
            let names: [String]
            switch dataset {
            case .glyphs:
                let loaded = try DataLocation.loadGlyphs(experiment.dataDir)
                data = (loaded.train, loaded.test)
                names = loaded.classNames
            case .mnist:
                data = try DataLocation.loadMNIST(experiment.dataDir)
                names = (0..<10).map(String.init)
            }
            var testName = "test set"
            if let heldOutTest {
                guard heldOutTest > 0 && heldOutTest < data.train.count / 2 else {
                    throw ValidationError("--held-out-test must be in 1...\(data.train.count / 2 - 1), got \(heldOutTest)")
                }
                var generator = RandomGenerator(seed: 0x7E57)
                let order = generator.permutation(data.train.count)
                data = (data.train.subset(indices: Array(order[heldOutTest...]).sorted()),
                        data.train.subset(indices: Array(order[..<heldOutTest]).sorted()))
                testName = "held-out training images"
            }
            let classCount = data.train.classCount
            var plan = SpecialistExperiment.plan(preset, classCount: classCount)
            if let clusters {
                guard (2...classCount).contains(clusters) else { throw ValidationError("--clusters must be in 2...\(classCount), got \(clusters)") }
                plan.clusters = clusters
            }
            if let clusterMeasure { plan.measure = clusterMeasure }
            if let subsetSize {
                guard subsetSize == 0 || (2..<classCount).contains(subsetSize) else {
                    throw ValidationError("--subset-size must be 0 or in 2...\(classCount - 1), got \(subsetSize)")
                }
                plan.subsetSize = subsetSize == 0 ? nil : subsetSize
            }
            if let candidates {
                guard (1...classCount).contains(candidates) else { throw ValidationError("--candidates must be in 1...\(classCount), got \(candidates)") }
                plan.candidates = candidates
            }
            if let r = restExamples {
                guard r >= 0 else { throw ValidationError("--rest-examples must be >= 0, got \(r)") }
                plan.restExamples = r == 0 ? nil : r
            }
            if let e = specialistEpochs {
                guard e >= 1 else { throw ValidationError("--specialist-epochs must be >= 1, got \(e)") }
                plan.specialist.epochs = e
                plan.specialist.optimizer.schedule = .cosine(totalEpochs: e, minimum: 0)
            }
            if let r = specialistLearningRate {
                guard r > 0 && r.isFinite else { throw ValidationError("--specialist-learning-rate must be > 0, got \(r)") }
                plan.specialist.optimizer.learningRate = r
            }
            if let j = jitter {
                guard (0...14).contains(j) else { throw ValidationError("--jitter must be in 0...14, got \(j)") }
                plan.generalist.data.jitter = j
                plan.specialist.data.jitter = j
            }
            if let t = specialistTemperature {
                guard t >= 0 && t.isFinite else { throw ValidationError("--specialist-temperature must be >= 0, got \(t)") }
                plan.softTargets = t == 0 ? nil : DistillationLossConfiguration(temperature: t, hardWeight: 0.5, softWeight: 0.5)
            }
            var context = try ExperimentContext(data: data, workDirectory: URL(fileURLWithPath: experiment.workDir), threads: experiment.threads)
            context.communicator = World.current
            let results = try SpecialistExperiment.run(preset: preset, seeds: experiment.seeds, context: context, classNames: names,
                                                       plan: plan, epochScale: experiment.epochScale)
            let wall = Date().timeIntervalSince(start)
            let table = SpecialistExperiment.table(results, preset: preset, testCount: data.test.count,
                                                   dataName: "\(dataset.rawValue), \(testName)")
            try writeExperimentReport(context, name: "specialists-\(preset.rawValue)", title: "specialists, preset \(preset.rawValue)", table: table)
            if experiment.json {
                let evaluations = results.map(\.evaluation)
                let coveringRows = Dictionary(grouping: evaluations.flatMap(\.byCoveringSpecialists), by: \.covering)
                let byCovering = coveringRows.keys.sorted().map { k -> [String: Any] in
                    let rows = coveringRows[k]!
                    let examples = rows.reduce(0) { $0 + $1.examples }, g = rows.reduce(0) { $0 + $1.generalistCorrect }
                    let c = rows.reduce(0) { $0 + $1.combinedCorrect }
                    return ["covering": k, "examples": examples, "generalist_correct": g, "combined_correct": c, "delta": c - g,
                            "relative_accuracy_change": g == 0 ? 0 : Double(c - g) / Double(g)]
                }
                let generalist = mean(evaluations.map(\.generalistErrors)), combined = mean(evaluations.map(\.combinedErrors))
                let n = Double(data.test.count)
                try printJSON([
                    "experiment": "specialists", "preset": preset.rawValue, "dataset": dataset.rawValue, "classes": classCount,
                    "seeds": experiment.seeds.map { Int($0) },
                    "generalist_errors": generalist, "combined_errors": combined,
                    "relative_gain": (n - combined) / (n - generalist) - 1,
                    "error_reduction": generalist > 0 ? (generalist - combined) / generalist : 0,
                    "covered_generalist_errors": mean(evaluations.map(\.coveredGeneralistErrors)),
                    "covered_combined_errors": mean(evaluations.map(\.coveredCombinedErrors)),
                    "unconverged": evaluations.reduce(0) { $0 + $1.unconverged },
                    "by_covering_specialists": byCovering,
                    "per_seed": try JSONSerialization.jsonObject(with: JSONEncoder().encode(results)), "wall_seconds": wall,
                    "paper": ["generalist_accuracy": SpecialistExperiment.paper.generalist, "combined_accuracy": SpecialistExperiment.paper.combined,
                              "relative_gain": SpecialistExperiment.paper.relativeGain],
                    "plan": try JSONSerialization.jsonObject(with: JSONEncoder().encode(plan)),
                    "split": heldOutTest == nil
                        ? "errors on the \(dataset.rawValue) test set (\(data.test.count) images); subsets from held-out training images; no selection on the test set"
                        : "errors on \(data.test.count) held-out \(dataset.rawValue) training images (--held-out-test); the test set unused",
                ])
            } else {
                print(table)
                print(String(format: "wall time %.0f s", wall))
            }
        }
    }

    struct OmittedClassCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "omitted-class",
            abstract: "Distil on a transfer set without any 3s (and one of only 7s and 8s); recover the missing classes by shifting their output bias.")

        @Option(help: "quick or full (which teacher and training world to use).") var preset: HintonMNIST.Preset = .quick
        @Option(parsing: .unconditional, help: "Temperature of the soft targets.") var temperature: Float = OmittedClass.defaultLoss.temperature
        @Option(parsing: .unconditional, help: "Weight of the label term (0: soft targets only, the default).") var hardWeight: Float = OmittedClass.defaultLoss.hardWeight
        @Option(parsing: .unconditional, help: "Weight of the soft term (times T^2).") var softWeight: Float = OmittedClass.defaultLoss.softWeight
        @OptionGroup var experiment: ExperimentOptions

        func validate() throws {
            do { try DistillationLossConfiguration(temperature: temperature, hardWeight: hardWeight, softWeight: softWeight).validate() }
            catch let error as ConfigurationError { throw ValidationError(Flags.message(error)) }
        }

        func run() throws {
            let context = try experiment.context()
            var all: [[String: Any]] = []
            for seed in experiment.seeds {
                let outcomes = try OmittedClass.run(preset: preset, seed: seed, context: context, epochScale: experiment.epochScale,
                                                    loss: DistillationLossConfiguration(temperature: temperature, hardWeight: hardWeight, softWeight: softWeight))
                if experiment.json {
                    all.append(["seed": Int(seed), "outcomes": try JSONSerialization.jsonObject(with: JSONEncoder().encode(outcomes))])
                } else {
                    print("seed \(seed), preset \(preset.rawValue); test errors on the MNIST test set (10,000 images)")
                    print(OmittedClass.table(outcomes, testCount: context.data.test.count))
                }
            }
            if experiment.json {
                try printJSON(["experiment": "omitted-class", "preset": preset.rawValue, "per_seed": all,
                               "paper": ["without_3_errors": OmittedClass.paper.errorsWithoutThrees, "without_3_errors_on_3": OmittedClass.paper.errorsOnThrees,
                                         "without_3_shift": OmittedClass.paper.shift, "without_3_shifted_errors": OmittedClass.paper.shiftedErrors,
                                         "without_3_shifted_errors_on_3": OmittedClass.paper.shiftedErrorsOnThrees,
                                         "only_7_8_error_rate": OmittedClass.paper.sevensAndEightsErrorRate,
                                         "only_7_8_shift": -OmittedClass.paper.sevensAndEightsShift,
                                         "only_7_8_shifted_error_rate": OmittedClass.paper.sevensAndEightsShiftedRate]])
            }
        }
    }

    struct TemperatureSweepCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "temperature-sweep",
            abstract: "Students of several widths distilled across temperatures: does T 2.5-4 win for small students, and is T > 8 flat for large ones?")

        @Option(help: "quick or full.") var preset: HintonMNIST.Preset = .quick
        @Option(parsing: .unconditional, help: "Hidden widths (two layers each), comma-separated.", transform: parseSizes) var widths: [Int] = TemperatureSweep.defaultWidths
        @Option(parsing: .unconditional, help: "Temperatures, comma-separated.", transform: parseTemperatures) var temperatures: [Float] = TemperatureSweep.defaultTemperatures
        @Option(parsing: .unconditional, help: "Weight of the label term.") var hardWeight: Float = 0.5
        @Option(parsing: .unconditional, help: "Weight of the soft term (times T^2).") var softWeight: Float = 0.5
        @Option(parsing: .unconditional, help: "Student epochs (default: the preset's).") var epochs: Int?
        @OptionGroup var experiment: ExperimentOptions

        func validate() throws {
            if let epochs, epochs < 1 { throw ValidationError("--epochs must be >= 1, got \(epochs)") }
            do { try DistillationLossConfiguration(temperature: 1, hardWeight: hardWeight, softWeight: softWeight).validate() }
            catch let error as ConfigurationError { throw ValidationError(Flags.message(error)) }
        }

        func run() throws {
            let context = try experiment.context()
            var perSeed: [[String: Any]] = []
            for seed in experiment.seeds {
                let cells = try TemperatureSweep.run(preset: preset, seed: seed, widths: widths, temperatures: temperatures,
                                                     hardWeight: hardWeight, softWeight: softWeight, epochs: epochs,
                                                     context: context, epochScale: experiment.epochScale)
                var series: [(name: String, points: [(x: Double, y: Double)])] = []
                for width in widths {
                    let points = cells.filter { $0.width == width }.compactMap { c in c.temperature.map { (x: Double($0), y: Double(c.errors)) } }
                    series.append((name: "2x\(width) distilled", points: points))
                    if let baseline = cells.first(where: { $0.width == width && $0.temperature == nil }), let lo = points.first?.x, let hi = points.last?.x {
                        series.append((name: "2x\(width) labels only", points: [(lo, Double(baseline.errors)), (hi, Double(baseline.errors))]))
                    }
                }
                try writeExperimentReport(context, name: "temperature-sweep-\(preset.rawValue)-seed\(seed)", title: "temperature sweep, preset \(preset.rawValue), seed \(seed)",
                                          table: TemperatureSweep.table(cells, temperatures: temperatures),
                                          sections: [("Test errors by temperature", HTMLReport.temperatureChart(title: "Test errors of distilled students by temperature, per width", series: series))])
                if experiment.json {
                    perSeed.append(["seed": Int(seed), "cells": try JSONSerialization.jsonObject(with: JSONEncoder().encode(cells)),
                                    "verdict": TemperatureSweep.verdict(cells)])
                } else {
                    print("seed \(seed), preset \(preset.rawValue): MNIST test errors (of 10,000); hard/soft weights \(hardWeight)/\(softWeight); * = best T")
                    print(TemperatureSweep.table(cells, temperatures: temperatures))
                    TemperatureSweep.verdict(cells).forEach { print($0) }
                }
            }
            if experiment.json { try printJSON(["experiment": "temperature-sweep", "preset": preset.rawValue, "per_seed": perSeed]) }
        }
    }

    struct SmallDataCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "small-data",
            abstract: "Train on 3% of the data: hard labels against the teacher's soft targets, with and without early stopping.")

        @Option(help: "quick or full.") var preset: HintonMNIST.Preset = .quick
        @Option(parsing: .unconditional, help: "Fraction of the training set used.") var fraction: Double = 0.03
        @Option(parsing: .unconditional, help: "Temperature of the soft targets.") var temperature: Float = 20
        @Option(parsing: .unconditional, help: "Student epochs.") var epochs: Int = 50
        @OptionGroup var experiment: ExperimentOptions

        func validate() throws {
            guard fraction > 0 && fraction <= 1 else { throw ValidationError("--fraction must be in (0, 1], got \(fraction)") }
            guard temperature > 0 && temperature.isFinite else { throw ValidationError("--temperature must be > 0, got \(temperature)") }
            guard epochs >= 1 else { throw ValidationError("--epochs must be >= 1, got \(epochs)") }
        }

        func run() throws {
            let context = try experiment.context()
            var outcomes: [SmallData.Outcome] = []
            for seed in experiment.seeds {
                outcomes.append(try SmallData.run(preset: preset, seed: seed, fraction: fraction, temperature: temperature,
                                                  epochs: epochs, context: context, epochScale: experiment.epochScale))
            }
            if experiment.json {
                try printJSON(["experiment": "small-data", "preset": preset.rawValue,
                               "per_seed": try JSONSerialization.jsonObject(with: JSONEncoder().encode(outcomes)),
                               "paper": ["hard_accuracy": SmallData.paper.hardAccuracy, "soft_accuracy": SmallData.paper.softAccuracy]])
            } else {
                print(SmallData.table(outcomes))
            }
        }
    }
}

func parseTemperatures(_ text: String) throws -> [Float] {
    let values = text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
    guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 && ($0 ?? 0).isFinite }) else {
        throw ValidationError("--temperatures expects positive numbers separated by commas (e.g. 1,2.5,20), got '\(text)'")
    }
    return values.compactMap { $0 }
}
