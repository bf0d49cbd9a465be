import Experiments
import Foundation
import XCTest
import TensorCore
import Datasets
import Distillation

/// `OmittedClass.run`, `TemperatureSweep.run` and `SmallData.run` end to end on a tiny synthetic problem (10 x 10
/// images, 1,500 training and 200 test images; the quick preset at a tenth of its epochs): the structure of their
/// outcomes and the invariants that hold whatever the models learn. The tests share one work directory, so the
/// teacher trains once.
final class ExperimentRunTests: XCTestCase {
    static let side = 10
    static var workDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("experiment-run-tests-\(UUID().uuidString)")

    override class func tearDown() {
        try? FileManager.default.removeItem(at: workDirectory)
        super.tearDown()
    }

    /// Class k lights up a 3 x 2 block whose position depends on k, over seeded noise.
    static func images(count: Int, seed: UInt64) throws -> LabeledDataset {
        var g = RandomGenerator(seed: seed)
        let n = side * side
        var values = [Float](repeating: 0, count: count * n)
        var labels: [Int] = []
        for i in 0..<count {
            let k = Int(g.nextUInt64() % 10)
            labels.append(k)
            for j in 0..<n { values[i * n + j] = g.uniform() < 0.1 ? g.uniform() : 0 }
            let top = (k / 5) * 5, left = (k % 5) * 2
            for r in top..<(top + 3) { for c in left..<(left + 2) { values[i * n + r * side + c] = 1 } }
        }
        return try LabeledDataset(inputs: Tensor(shape: [count, n], scalars: values), labels: labels, classCount: 10,
                                  sampleShape: [side, side])
    }

    var log: [String] = []

    func context(trainCount: Int = 1500) throws -> ExperimentContext {
        let data = (train: try Self.images(count: trainCount, seed: 1), test: try Self.images(count: 200, seed: 2))
        return try ExperimentContext(data: data, workDirectory: Self.workDirectory, threads: 1,
                                     progress: ProgressReporter(enabled: false), log: { [weak self] in self?.log.append($0) })
    }

    func testOmittedClass() throws {
        let context = try context()
        let outcomes = try OmittedClass.run(preset: .quick, seed: 0, context: context, epochScale: 0.1)
        XCTAssertEqual(outcomes.map(\.name), ["without-3", "only-7-and-8"])
        let test = context.data.test
        let expected: [(transfer: [Int], shifted: [Int], paperShift: Float, range: ClosedRange<Float>)] = [
            (Array(0..<10).filter { $0 != 3 }, [3], OmittedClass.paper.shift, 0...10),
            ([7, 8], [7, 8], -OmittedClass.paper.sevensAndEightsShift, -15...0),
        ]
        for (o, e) in zip(outcomes, expected) {
            XCTAssertEqual(o.transferClasses, e.transfer, o.name)
            XCTAssertEqual(o.shiftedClasses, e.shifted, o.name)
            XCTAssertEqual(o.paperShift, e.paperShift, o.name)
            // The shift is chosen from the searched grid: the range in steps of 0.25.
            XCTAssertTrue(e.range.contains(o.chosenShift), "\(o.name): chosen shift \(o.chosenShift) outside \(e.range)")
            XCTAssertEqual((o.chosenShift - e.range.lowerBound) * 4, ((o.chosenShift - e.range.lowerBound) * 4).rounded(),
                           "\(o.name): chosen shift \(o.chosenShift) is not on the 0.25 grid")
            XCTAssertEqual(o.testCountOfShiftedClasses, test.labels.filter { e.shifted.contains($0) }.count, o.name)
            XCTAssertGreaterThan(o.testCountOfShiftedClasses, 0, o.name)
            for (all, onShifted) in [(o.errors, o.errorsOnShiftedClasses), (o.errorsAtChosenShift, o.errorsOnShiftedClassesAtChosenShift),
                                     (o.errorsAtPaperShift, o.errorsOnShiftedClassesAtPaperShift)] {
                XCTAssertTrue((0...test.count).contains(all), "\(o.name): \(all) errors of \(test.count)")
                XCTAssertTrue((0...o.testCountOfShiftedClasses).contains(onShifted), "\(o.name): \(onShifted) errors on the shifted classes")
                XCTAssertLessThanOrEqual(onShifted, all, o.name)
            }
            // Raising the shifted classes' bias can only turn predictions into those classes, lowering it only turn
            // them away: errors on the other classes can only rise with a positive shift and fall with a negative
            // one, errors on the shifted classes the other way round.
            let others = o.errors - o.errorsOnShiftedClasses
            for (shift, all, onShifted) in [(o.chosenShift, o.errorsAtChosenShift, o.errorsOnShiftedClassesAtChosenShift),
                                            (o.paperShift, o.errorsAtPaperShift, o.errorsOnShiftedClassesAtPaperShift)] {
                if shift > 0 {
                    XCTAssertGreaterThanOrEqual(all - onShifted, others, "\(o.name) shift \(shift)")
                    XCTAssertLessThanOrEqual(onShifted, o.errorsOnShiftedClasses, "\(o.name) shift \(shift)")
                } else if shift < 0 {
                    XCTAssertLessThanOrEqual(all - onShifted, others, "\(o.name) shift \(shift)")
                    XCTAssertGreaterThanOrEqual(onShifted, o.errorsOnShiftedClasses, "\(o.name) shift \(shift)")
                } else {
                    XCTAssertEqual(all, o.errors, "\(o.name) shift 0")
                }
            }
        }
        XCTAssertTrue(OmittedClass.table(outcomes, testCount: test.count).contains("without-3: shift \(outcomes[0].chosenShift) (chosen on validation)"))

        // Run again: every model comes from the work directory and the outcomes are the same.
        log = []
        let again = try OmittedClass.run(preset: .quick, seed: 0, context: context, epochScale: 0.1)
        XCTAssertEqual(log.filter { $0.contains(": reusing ") }.count, 3, "\(log)")  // teacher and both students
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        XCTAssertEqual(try encoder.encode(again), try encoder.encode(outcomes))
    }

    func testOmittedClassRefusesTooFewTrainingImages() throws {
        let context = try context(trainCount: 600)
        XCTAssertThrowsError(try OmittedClass.run(preset: .quick, seed: 0, context: context, epochScale: 0.1)) { error in
            XCTAssertTrue("\(error)".contains("1000 validation images"), "\(error)")
        }
    }

    func testTemperatureSweep() throws {
        let context = try context()
        let widths = [8, 16], temperatures: [Float] = [1, 4]
        let cells = try TemperatureSweep.run(preset: .quick, seed: 0, widths: widths, temperatures: temperatures,
                                             hardWeight: 0.5, softWeight: 0.5, epochs: 1, context: context, epochScale: 0.1)
        // A label-only baseline and a cell per temperature for every width, in that order.
        XCTAssertEqual(cells.map(\.width), [8, 8, 8, 16, 16, 16])
        XCTAssertEqual(cells.map(\.temperature), [nil, 1, 4, nil, 1, 4])
        let test = context.data.test.count
        for c in cells {
            XCTAssertTrue((0...test).contains(c.errors) && (0...test).contains(c.lastEpochErrors), "\(c)")
            // Without a validation split the selected weights are the last epoch's.
            XCTAssertEqual(c.errors, c.lastEpochErrors, "\(c)")
        }
        let verdict = TemperatureSweep.verdict(cells)
        XCTAssertEqual(verdict.count, widths.count, "\(verdict)")
        for (line, w) in zip(verdict, widths) {
            let best = cells.filter { $0.width == w && $0.temperature != nil }.min { $0.errors < $1.errors }
            XCTAssertTrue(line.hasPrefix("2x\(w): best T = \(best?.temperature ?? -1) (\(best?.errors ?? -1) errors)"), line)
        }
        let table = TemperatureSweep.table(cells, temperatures: temperatures)
        XCTAssertTrue(table.contains("2x8") && table.contains("2x16") && table.contains("T=4.0"), table)
    }

    func testSmallData() throws {
        let context = try context()
        // epochScale 0.1 as in the other tests (the same teacher); 10 epochs become 1.
        let outcome = try SmallData.run(preset: .quick, seed: 0, fraction: 0.1, temperature: 4, epochs: 10, context: context,
                                        epochScale: 0.1)
        XCTAssertEqual(outcome.fraction, 0.1)
        XCTAssertEqual(outcome.trainingExamples, 150, "10% of 1,500")
        XCTAssertEqual(outcome.testCount, context.data.test.count)
        for e in [outcome.hardErrors, outcome.hardLastEpochErrors, outcome.softErrors, outcome.softLastEpochErrors] {
            XCTAssertTrue((0...outcome.testCount).contains(e), "\(outcome)")
        }
        // The floor of 20 examples.
        let tiny = try SmallData.run(preset: .quick, seed: 0, fraction: 0.001, temperature: 4, epochs: 10, context: context,
                                     epochScale: 0.1)
        XCTAssertEqual(tiny.trainingExamples, 20)
        XCTAssertTrue(SmallData.table([outcome]).hasPrefix("150 training examples (10.0%)"), SmallData.table([outcome]))
    }
}
