import Distillation
import Foundation
import Runs
import XCTest

final class ExperimentFileTests: XCTestCase {
    let good = """
        name: tiny
        data:
          file: d.csv
          label_column: last
        teacher:
          train: {hidden: [8], epochs: 2, learning_rate: 0.1}
        student:
          hidden: [4]
          epochs: 3
          schedule: "warmup:1:cosine"
        loss:
          temperature: 4
          hard_weight: 0.25
        seeds: [1, 2]
        compare: {label_only: false, temperatures: [2, 8]}
        """

    func testParsesEverySection() throws {
        let e = try ExperimentFile.parse(good, file: "e.yaml")
        XCTAssertEqual(e.name, "tiny")
        XCTAssertEqual(e.data.data, "d.csv")
        XCTAssertEqual(e.teacherTraining?.model, .mlp(hidden: [8]))
        XCTAssertEqual(e.teacherTraining?.epochs, 2)
        XCTAssertEqual(e.student.model, .mlp(hidden: [4]))
        XCTAssertEqual(e.student.optimizer.schedule, .warmup(epochs: 1, startFactor: 0.1, then: .cosine(totalEpochs: 2, minimum: 0)))
        XCTAssertEqual(e.loss.temperature, 4)
        XCTAssertEqual(e.loss.hardWeight, 0.25)
        XCTAssertEqual(e.seeds, [1, 2])
        XCTAssertFalse(e.labelOnly)
        XCTAssertEqual(e.temperatures, [2, 8])
        // JSON is YAML too.
        let json = #"{"data": {"file": "d.csv"}, "teacher": {"file": "t.safetensors"}, "student": {"hidden": [4]}}"#
        let j = try ExperimentFile.parse(json, file: "e.json")
        XCTAssertEqual(j.teacherFile, "t.safetensors")
        XCTAssertEqual(j.temperatures, [4], "the loss's temperature when compare lists none")
    }

    /// Ensembles: trained members, or a list of files, with the combination rule.
    func testEnsembleTeachers() throws {
        let trained = try ExperimentFile.parse(good.replacingOccurrences(of: "  train: {hidden: [8], epochs: 2, learning_rate: 0.1}",
                                                                         with: "  train: {hidden: [8], epochs: 2, learning_rate: 0.1}\n  members: 3"), file: "e.yaml")
        XCTAssertEqual(trained.teacherMembers, 3)
        XCTAssertEqual(trained.ensembleCombination, .meanProbabilities)
        XCTAssertEqual(trained.teacherFiles, [])
        let files = try ExperimentFile.parse(good.replacingOccurrences(of: "  train: {hidden: [8], epochs: 2, learning_rate: 0.1}",
                                                                       with: "  files: [a.safetensors, b.safetensors]\n  ensemble: mean-logits"), file: "e.yaml")
        XCTAssertEqual(files.teacherFiles, ["a.safetensors", "b.safetensors"])
        XCTAssertEqual(files.ensembleCombination, .meanLogits)
        let camel = try ExperimentFile.parse(good.replacingOccurrences(of: "  train: {hidden: [8], epochs: 2, learning_rate: 0.1}",
                                                                       with: "  files: [a.safetensors]\n  ensemble: meanLogits"), file: "e.yaml")
        XCTAssertEqual(camel.ensembleCombination, .meanLogits, "the command line's spelling")
        XCTAssertNil(files.teacherTraining)
        XCTAssertEqual(message(good.replacingOccurrences(of: "  train: {hidden: [8], epochs: 2, learning_rate: 0.1}", with: "  files: [a.safetensors]\n  ensemble: median")),
                       "e.yaml: teacher.ensemble: must be mean-probabilities or mean-logits, got 'median', line 7")
        XCTAssertTrue(message(good.replacingOccurrences(of: "  train: {hidden: [8], epochs: 2, learning_rate: 0.1}", with: "  files: [a.safetensors]\n  members: 2"))
            .hasPrefix("e.yaml: teacher.members: goes with train"))
        XCTAssertTrue(message(good.replacingOccurrences(of: "  train: {hidden: [8], epochs: 2, learning_rate: 0.1}", with: "  train: {hidden: [8]}\n  members: 0"))
            .hasPrefix("e.yaml: teacher.members: must be in 1...100, got 0"))
    }

    /// Decoupled KD and feature terms in `loss`: parsed with their defaults, and their problems named.
    func testDecoupledKDAndFeatureTerms() throws {
        let loss = """
            loss:
              temperature: 4
              hard_weight: 1
              logit: dkd
              dkd: {beta: 2, warmup: 3}
              features:
                - {kind: hint, student: 3, teacher: 9}
                - {kind: similarity, student: 1, teacher: 8, weight: 30}
            """
        let e = try ExperimentFile.parse(good.replacingOccurrences(of: "loss:\n  temperature: 4\n  hard_weight: 0.25", with: loss), file: "e.yaml")
        XCTAssertEqual(e.decoupled, DecoupledKDWeights(alpha: 1, beta: 2, warmupEpochs: 3))
        XCTAssertEqual(e.features, [FeatureTerm(kind: .hint, studentLayer: 3, teacherLayer: 9, weight: 100),
                                    FeatureTerm(kind: .similarity, studentLayer: 1, teacherLayer: 8, weight: 30)])
        XCTAssertNil(try ExperimentFile.parse(good, file: "e.yaml").decoupled)
        func problem(_ replacement: String) -> String {
            message(good.replacingOccurrences(of: "  hard_weight: 0.25", with: replacement))
        }
        XCTAssertEqual(problem("  logit: soft"), "e.yaml: loss.logit: must be hinton or dkd, got 'soft', line 13")
        XCTAssertEqual(problem("  dkd: {beta: 2}"), "e.yaml: loss.dkd: goes with logit: dkd, line 13")
        XCTAssertEqual(problem("  logit: dkd\n  dkd: {beta: -2}"), "e.yaml: loss.dkd.beta: must be >= 0, got -2.0, line 14")
        XCTAssertEqual(problem("  logit: dkd\n  dkd: {warmup: -1}"), "e.yaml: loss.dkd.warmup: must be >= 0, got -1, line 14")
        XCTAssertEqual(problem("  features: [{kind: gram, student: 1, teacher: 2}]"),
                       "e.yaml: loss.features[0].kind: must be hint, attention or similarity, got 'gram', line 13")
        XCTAssertEqual(problem("  features: [{kind: hint, student: 1}]"),
                       "e.yaml: loss.features[0]: needs student and teacher (top-level layer indices), line 13")
        XCTAssertEqual(problem("  features: [{kind: hint, student: 1, teacher: 2, weight: -1}]"),
                       "e.yaml: loss.features[0].weight: must be >= 0, got -1.0, line 13")
        let ensemble = good.replacingOccurrences(of: "  train: {hidden: [8], epochs: 2, learning_rate: 0.1}",
                                                 with: "  train: {hidden: [8], epochs: 2, learning_rate: 0.1}\n  members: 2")
            .replacingOccurrences(of: "  hard_weight: 0.25", with: "  features: [{kind: hint, student: 1, teacher: 2}]")
        XCTAssertTrue(message(ensemble).hasPrefix("e.yaml: loss.features: need one teacher model"), message(ensemble))
    }

    /// Every experiment file shipped in Examples/experiments parses.
    func testShippedExamplesParse() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appendingPathComponent("Examples/experiments")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }.sorted()
        XCTAssertEqual(files, ["digits-ensemble.yaml", "digits-features.yaml", "digits.yaml"])
        for name in files {
            let e = try ExperimentFile.read(url: folder.appendingPathComponent(name))
            XCTAssertEqual(e.name + ".yaml", name)
            if name == "digits-features.yaml" {
                XCTAssertEqual(e.decoupled, DecoupledKDWeights(alpha: 1, beta: 2))
                XCTAssertEqual(e.features, [FeatureTerm(kind: .similarity, studentLayer: 1, teacherLayer: 5, weight: 3000)])
            }
        }
    }

    func message(_ text: String) -> String {
        do { _ = try ExperimentFile.parse(text, file: "e.yaml"); return "accepted" } catch { return "\(error)" }
    }

    /// An unknown field, a wrong type or a value out of range: its path and line.
    func testProblemsNameThePathAndLine() {
        XCTAssertEqual(message(good.replacingOccurrences(of: "temperature: 4", with: "temperature: -1")),
                       "e.yaml: loss.temperature: must be > 0, got -1, line 12")
        XCTAssertEqual(message(good.replacingOccurrences(of: "hard_weight: 0.25", with: "hard_wieght: 0.25")),
                       "e.yaml: loss.hard_wieght: unknown field (expected one of temperature, hard_weight, soft_weight, scale_soft_by_t2, logit, dkd, features), line 13")
        XCTAssertEqual(message(good.replacingOccurrences(of: "epochs: 3", with: "epochs: three")),
                       "e.yaml: student.epochs: must be a whole number, got 'three', line 9")
        XCTAssertEqual(message(good.replacingOccurrences(of: "hidden: [4]", with: "hidden: [4, 0]")),
                       "e.yaml: student.hidden[1]: must be in 1...65536, got 0, line 8")
        XCTAssertEqual(message(good.replacingOccurrences(of: "seeds: [1, 2]", with: "seeds: [-1]")),
                       "e.yaml: seeds[0]: must be >= 0, got -1, line 14")
        XCTAssertTrue(message(good.replacingOccurrences(of: "  train: {hidden: [8], epochs: 2, learning_rate: 0.1}", with: "  file: t.safetensors\n  train: {hidden: [8]}"))
            .hasPrefix("e.yaml: teacher: needs exactly one of train, file or files"))
        XCTAssertTrue(message(good.replacingOccurrences(of: "\"warmup:1:cosine\"", with: "\"warmup:5:cosine\"")).contains("student.schedule: must be cosine"))
        XCTAssertTrue(message("data: [1, 2\n").hasPrefix("e.yaml: is not valid YAML or JSON"))
        XCTAssertEqual(message(""), "e.yaml: is empty; expected an experiment (data, teacher, student, ...)")
        XCTAssertTrue(message("teacher: {file: t}\nstudent: {}\n").hasPrefix("e.yaml: data: is required"))
        XCTAssertTrue(message(good.replacingOccurrences(of: "learning_rate: 0.1", with: "learning_rate: 0")).hasPrefix("e.yaml: teacher.train.learning_rate: must be > 0"))
    }
}
