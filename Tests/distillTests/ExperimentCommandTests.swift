import Experiments
import Foundation
import XCTest
import Datasets

/// `distill reproduce ...` on a tiny synthetic MNIST (1,500 training images; omitted-class holds 1,000 out for
/// validation), with --epoch-scale 0.1 so every schedule shrinks to a few epochs: every experiment runs in a few
/// seconds. (ExperimentRunTests checks the experiments' outcomes in the library.)
final class ExperimentCommandTests: TinyMNISTTestCase {
    override var trainCount: Int { 1500 }
    var workDirectory: URL { directory.appendingPathComponent("runs") }

    func reproduce(_ experiment: String, _ extra: [String], dataDir: URL? = nil) throws -> CommandResult {
        try runDistill(["reproduce", experiment, "--preset", "quick", "--epoch-scale", "0.1", "--threads", "2",
                        "--data-dir", (dataDir ?? dataDirectory).path, "--work-dir", workDirectory.path, "--json"] + extra,
                       in: directory)
    }

    func testHintonMNISTRunsAndReusesCachedModels() throws {
        let first = try reproduce("hinton-mnist", ["--seeds", "0,1"])
        assertSucceeded(first, "hinton-mnist")
        guard first.status == 0 else { return }
        let report = try lastLineJSON(first.stdout)
        for key in ["teacher_errors", "student_errors", "distilled_errors", "wall_seconds"] {
            XCTAssertNotNil(report[key] as? Double, "\(key) in \(first.stdout)")
        }
        let paper = try XCTUnwrap(report["paper"] as? [String: Any])
        XCTAssertEqual(paper["teacher_errors"] as? Int, 67)
        XCTAssertEqual(paper["student_errors"] as? Int, 146)
        XCTAssertEqual(paper["distilled_errors"] as? Int, 74)
        let perSeed = try XCTUnwrap(report["per_seed"] as? [[String: Any]])
        XCTAssertEqual(perSeed.compactMap { $0["seed"] as? Int }, [0, 1])
        for entry in perSeed {
            for key in ["teacher_errors", "student_errors", "distilled_errors"] {
                let value = entry[key] as? Int
                XCTAssertNotNil(value, "\(key) in \(entry)")
                if let value { XCTAssertTrue((0...100).contains(value), "\(key) \(value) of 100 test images") }
            }
        }
        XCTAssertFalse(first.stderr.contains("reusing"), first.stderr)
        // The second run reuses every model from the work directory and reports the same numbers.
        let second = try reproduce("hinton-mnist", ["--seeds", "0,1"])
        assertSucceeded(second, "hinton-mnist again")
        XCTAssertTrue(second.stderr.contains("reusing"), second.stderr)
        // Teacher, student and distilled student of both seeds: nothing retrained.
        XCTAssertEqual(second.stderrLines.filter { $0.contains(": reusing ") }.count, 6, second.stderr)
        XCTAssertFalse(second.stderr.contains("epoch 1/"), second.stderr)
        let again = try lastLineJSON(second.stdout)
        for key in ["teacher_errors", "student_errors", "distilled_errors", "teacher_last_epoch_errors",
                    "student_last_epoch_errors", "distilled_last_epoch_errors"] {
            XCTAssertEqual(again[key] as? Double, report[key] as? Double, key)
        }
        let perSeedAgain = try XCTUnwrap(again["per_seed"] as? [[String: Any]])
        for (a, b) in zip(perSeed, perSeedAgain) {
            for key in ["teacher_errors", "student_errors", "distilled_errors"] { XCTAssertEqual(a[key] as? Int, b[key] as? Int, key) }
        }
    }

    /// The per-seed JSON carries each model's health and the share of the teacher's lead kept.
    func testHintonMNISTReportsHealth() throws {
        let result = try reproduce("hinton-mnist", ["--seeds", "3"])
        assertSucceeded(result, "hinton-mnist")
        guard result.status == 0 else { return }
        let report = try lastLineJSON(result.stdout)
        XCTAssertNotNil(report["healthy"] as? Bool)
        let seed = try XCTUnwrap((report["per_seed"] as? [[String: Any]])?.first)
        for key in ["teacher_health", "student_health", "distilled_health"] {
            let health = try XCTUnwrap(seed[key] as? [String: Any], key)
            XCTAssertNotNil(health["dead_fraction"] as? Double, key)
            XCTAssertNotNil(health["healthy"] as? Bool, key)
            let layers = try XCTUnwrap(health["layers"] as? [[String: Any]], key)
            XCTAssertEqual(layers.count, 3, "three Linear layers in \(key)")
            XCTAssertTrue(layers.allSatisfy { ($0["weight_norm"] as? Double ?? -1) > 0 }, "\(layers)")
        }
        XCTAssertNotNil(seed["teacher_seconds"] as? Double)
    }

    /// `reproduce ensemble`: the four keys of the issue, members from distinct seeds, and a reused rerun.
    func testEnsembleRunsAndReusesCachedModels() throws {
        let first = try reproduce("ensemble", ["--members", "3"])
        assertSucceeded(first, "ensemble")
        guard first.status == 0 else { return }
        let report = try lastLineJSON(first.stdout)
        for key in ["single_errors", "ensemble_errors", "distilled_errors"] {
            let value = try XCTUnwrap(report[key] as? Double, "\(key) in \(first.stdout)")
            XCTAssertTrue((0...100).contains(value), "\(key) \(value) of 100 test images")
        }
        XCTAssertTrue(report["gain_kept"] is Double || report["gain_kept"] is NSNull, "\(report)")
        XCTAssertEqual(report["members"] as? Int, 3)
        let seed = try XCTUnwrap((report["per_seed"] as? [[String: Any]])?.first)
        let memberSeeds = try XCTUnwrap(seed["member_seeds"] as? [Int])
        XCTAssertEqual(Set(memberSeeds).count, 3)
        XCTAssertEqual((seed["member_errors"] as? [Int])?.count, 3)
        let second = try reproduce("ensemble", ["--members", "3"])
        assertSucceeded(second, "ensemble again")
        XCTAssertEqual(second.stderrLines.filter { $0.contains(": reusing ") }.count, 4, second.stderr)
        let again = try lastLineJSON(second.stdout)
        for key in ["single_errors", "ensemble_errors", "distilled_errors"] {
            XCTAssertEqual(again[key] as? Double, report[key] as? Double, key)
        }
    }

    /// The CNN experiment: a ResNet-8 teacher, both students with every loss for one seed (each loss whose pairs
    /// a student has), errors on the 100 test images; a second run reuses every model; `--similarity-weight` and the
    /// DKD warm-up reach the plan and retrain only what they change.
    func testCNNRunsEveryLossAndReusesCachedModels() throws {
        let first = try reproduce("cnn", ["--seeds", "0"])
        assertSucceeded(first, "cnn")
        guard first.status == 0 else { return }
        let report = try lastLineJSON(first.stdout)
        let outcome = try XCTUnwrap(report["outcome"] as? [String: Any])
        let results = try XCTUnwrap(outcome["results"] as? [[String: Any]])
        let pairs = Set(results.compactMap { r in (r["student"] as? String).flatMap { s in (r["loss"] as? String).map { "\(s) \($0)" } } })
        XCTAssertEqual(pairs, ["mlp-800x2 labels", "mlp-800x2 hinton", "mlp-800x2 fitnets", "mlp-800x2 dkd", "mlp-800x2 similarity",
                               "lenet5 labels", "lenet5 hinton", "lenet5 fitnets", "lenet5 attention", "lenet5 dkd", "lenet5 similarity"])
        for r in results {
            let errors = try XCTUnwrap(r["testErrors"] as? Int, "\(r)")
            XCTAssertTrue((0...100).contains(errors), "\(r)")
        }
        XCTAssertEqual((report["plan"] as? [String: Any])?["similarityWeight"] as? Double, 3000)
        XCTAssertEqual((report["plan"] as? [String: Any])?["dkdAndSimilarityGradientClip"] as? Double, 5)

        let second = try reproduce("cnn", ["--seeds", "0"])
        assertSucceeded(second, "cnn again")
        XCTAssertEqual(second.stderrLines.filter { $0.contains(": reusing ") }.count, 12, second.stderr)  // teacher + 11
        let again = try XCTUnwrap((try lastLineJSON(second.stdout)["outcome"] as? [String: Any])?["results"] as? [[String: Any]])
        XCTAssertEqual(again.map { $0["testErrors"] as? Int }, results.map { $0["testErrors"] as? Int })

        let changed = try reproduce("cnn", ["--seeds", "0", "--losses", "similarity,dkd", "--similarity-weight", "30", "--dkd-warmup", "1",
                                            "--clip-grad-norm", "5"])
        assertSucceeded(changed, "cnn with other weights")
        XCTAssertEqual(changed.stderrLines.filter { $0.contains(": reusing ") }.count, 1, changed.stderr)  // the teacher only
        let plan = try XCTUnwrap(try lastLineJSON(changed.stdout)["plan"] as? [String: Any])
        XCTAssertEqual(plan["similarityWeight"] as? Double, 30)
        XCTAssertEqual((plan["decoupled"] as? [String: Any])?["warmupEpochs"] as? Int, 1)
        XCTAssertEqual(((plan["student"] as? [String: Any])?["optimizer"] as? [String: Any])?["gradientClip"] as? Double, 5)
    }

    func testBadExperimentFlagsFailCleanly() throws {
        let cases: [(String, [String], String)] = [
            ("hinton-mnist", ["--seeds", "x"], "--seeds"),
            ("hinton-mnist", ["--epoch-scale", "0"], "--epoch-scale"),
            ("temperature-sweep", ["--temperatures", "0"], "--temperatures"),
            ("small-data", ["--fraction", "0"], "--fraction"),
            ("small-data", ["--fraction", "1.5"], "--fraction"),
            // Negative values must reach validation, not be taken for a flag ("Missing value for ...").
            ("hinton-mnist", ["--epoch-scale", "-1"], "--epoch-scale must be > 0"),
            ("hinton-mnist", ["--threads", "-2"], "--threads must be in 1...256"),
            ("hinton-mnist", ["--seeds", "-1"], "--seeds expects non-negative integers"),
            ("temperature-sweep", ["--temperatures", "-1,4"], "--temperatures expects positive numbers"),
            ("temperature-sweep", ["--hard-weight", "-1"], "--hard-weight"),
            ("temperature-sweep", ["--epochs", "-1"], "--epochs must be >= 1"),
            ("small-data", ["--fraction", "-0.5"], "--fraction must be in (0, 1]"),
            ("small-data", ["--temperature", "-1"], "--temperature must be > 0"),
            ("small-data", ["--epochs", "-2"], "--epochs must be >= 1"),
            ("ensemble", ["--members", "1"], "--members must be in 2...100"),
            ("hinton-mnist", ["--preset", "huge"], "--preset"),
            ("cnn", ["--similarity-weight", "-1"], "--similarity-weight must be a finite number >= 0"),
            ("cnn", ["--dkd-warmup", "-1"], "--dkd-warmup must be a number of epochs >= 0"),
            ("cnn", ["--clip-grad-norm", "0"], "--clip-grad-norm must be a finite number > 0"),
            ("cnn", ["--losses", "hinton,foo"], "--losses: unknown loss 'foo'"),
        ]
        for (experiment, flags, needle) in cases {
            let result = try reproduce(experiment, flags)
            assertFailedCleanly(result, naming: needle, "\(experiment) \(flags)")
        }
    }

    func testOmittedClassJSONShape() throws {
        let omitted = try reproduce("omitted-class", [])
        assertSucceeded(omitted, "omitted-class")
        guard omitted.status == 0 else { return }
        let report = try lastLineJSON(omitted.stdout)
        XCTAssertEqual(report["experiment"] as? String, "omitted-class")
        let perSeed = try XCTUnwrap(report["per_seed"] as? [[String: Any]])
        XCTAssertEqual(perSeed.count, 1)
        let outcomes = try XCTUnwrap(perSeed.first?["outcomes"] as? [[String: Any]], "\(perSeed)")
        XCTAssertEqual(outcomes.compactMap { $0["name"] as? String }, ["without-3", "only-7-and-8"])
        for (outcome, range) in zip(outcomes, [0.0...10.0, -15.0...0.0]) {
            let shift = try XCTUnwrap(outcome["chosen_shift"] as? Double, "\(outcome)")
            XCTAssertTrue(range.contains(shift), "chosen shift \(shift) outside \(range)")
            for key in ["errors", "errors_at_chosen_shift", "errors_at_paper_shift"] {
                let value = try XCTUnwrap(outcome[key] as? Int, "\(key) in \(outcome)")
                XCTAssertTrue((0...100).contains(value), "\(key) \(value) of 100 test images")
            }
        }
        XCTAssertNotNil(report["paper"] as? [String: Any])
    }

    func testTemperatureSweepJSONShape() throws {
        let sweep = try reproduce("temperature-sweep", ["--widths", "8", "--temperatures", "1,4"])
        assertSucceeded(sweep, "temperature-sweep")
        guard sweep.status == 0 else { return }
        let report = try lastLineJSON(sweep.stdout)
        XCTAssertEqual(report["experiment"] as? String, "temperature-sweep")
        let perSeed = try XCTUnwrap(report["per_seed"] as? [[String: Any]])
        XCTAssertEqual(perSeed.count, 1)
        let cells = try XCTUnwrap(perSeed.first?["cells"] as? [[String: Any]], "\(perSeed)")
        // The label-only baseline (no temperature) and one cell per temperature.
        XCTAssertEqual(cells.count, 3, "one width: a baseline and two temperatures: \(cells)")
        XCTAssertEqual(cells.compactMap { $0["temperature"] as? Double }.sorted(), [1, 4], "\(cells)")
        XCTAssertTrue(cells.allSatisfy { $0["width"] as? Int == 8 && $0["errors"] is Int }, "\(cells)")
        XCTAssertEqual((perSeed.first?["verdict"] as? [String])?.count, 1)
    }

    func testSmallDataJSONShape() throws {
        let small = try reproduce("small-data", ["--fraction", "0.5", "--epochs", "2"])
        assertSucceeded(small, "small-data")
        guard small.status == 0 else { return }
        let report = try lastLineJSON(small.stdout)
        XCTAssertEqual(report["experiment"] as? String, "small-data")
        let perSeed = try XCTUnwrap(report["per_seed"] as? [[String: Any]])
        XCTAssertEqual(perSeed.count, 1)
        XCTAssertEqual(perSeed.first?["training_examples"] as? Int, 750, "half of 1,500: \(perSeed)")
        XCTAssertNotNil(report["paper"] as? [String: Any])
    }
}
