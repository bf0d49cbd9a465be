import Foundation
import Datasets
import Distillation
import TensorIO

/// A run's record on disk: what was run, how it went epoch by epoch, how it ended, and the model it made.
///
///     configuration.json     the resolved configuration (sorted keys) and configuration.sha256, its hash
///     command.txt            the command line, shell-quoted
///     metrics.jsonl          one JSON object per finished epoch: epoch, learning_rate, train_loss, loss_parts,
///                            validation_errors, seconds, examples_per_second (appended as epochs end; rewritten
///                            from the run's history when it finishes, so a resumed run has each epoch once)
///     result.json            the final report (test errors, per-class figures, health, ...)
///     model.safetensors      the model (a hard link to, or a copy of, the output file)
///
/// Files are written atomically; the directory never holds a half-written file.
public struct RunDirectory {
    public let url: URL
    /// Examples per epoch (for `examples_per_second`).
    public let examplesPerEpoch: Int

    /// Creates the directory (or reopens it to resume) and writes the configuration, its hash and the command line.
    public static func open(at url: URL, configuration: some Encodable, command: [String], examplesPerEpoch: Int) throws -> RunDirectory {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return try open(at: url, configurationJSON: try encoder.encode(configuration), command: command, examplesPerEpoch: examplesPerEpoch)
    }

    /// As above, with the configuration already as JSON (sorted keys).
    public static func open(at url: URL, configurationJSON json: Data, command: [String], examplesPerEpoch: Int) throws -> RunDirectory {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw TrainingError("\(url.path): cannot create the run directory (\(error.localizedDescription))")
        }
        let run = RunDirectory(url: url, examplesPerEpoch: examplesPerEpoch)
        try run.write("configuration.json", json + Data("\n".utf8))
        try run.write("configuration.sha256", Data((SHA256.hexHash(Array(json)) + "\n").utf8))
        try run.write("command.txt", Data((command.map(RunDirectory.shellQuoted).joined(separator: " ") + "\n").utf8))
        return run
    }

    /// One line of metrics.jsonl.
    public func line(_ record: EpochRecord) -> [String: Any] {
        var object: [String: Any] = ["epoch": record.epoch, "learning_rate": Double("\(record.learningRate)") ?? Double(record.learningRate), "train_loss": record.trainLoss,
                                     "loss_parts": record.lossParts, "seconds": record.seconds,
                                     "examples_per_second": record.seconds > 0 ? Double(examplesPerEpoch) / record.seconds : 0]
        if let v = record.validationErrors { object["validation_errors"] = v }
        return object
    }

    /// Appends one finished epoch to metrics.jsonl.
    public func appendEpoch(_ record: EpochRecord) {
        guard let data = try? JSONSerialization.data(withJSONObject: line(record), options: [.sortedKeys]) else { return }
        let file = url.appendingPathComponent("metrics.jsonl")
        if !FileManager.default.fileExists(atPath: file.path) { _ = FileManager.default.createFile(atPath: file.path, contents: nil) }
        guard let handle = try? FileHandle(forWritingTo: file) else { return }
        defer { try? handle.close() }
        _ = try? handle.seekToEnd()
        try? handle.write(contentsOf: data + Data("\n".utf8))
    }

    /// Rewrites metrics.jsonl from a finished run's history (each epoch once, in order).
    public func writeMetrics(_ epochs: [EpochRecord]) throws {
        var text = Data()
        for record in epochs {
            text += try JSONSerialization.data(withJSONObject: line(record), options: [.sortedKeys]) + Data("\n".utf8)
        }
        try write("metrics.jsonl", text)
    }

    /// Writes result.json.
    public func writeResult(_ object: [String: Any]) throws {
        try write("result.json", try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted]) + Data("\n".utf8))
    }

    /// Puts the model file into the directory as model.safetensors: a hard link when the file system allows, else a copy.
    public func addModel(from file: URL) throws {
        let target = url.appendingPathComponent("model.safetensors")
        if file.standardizedFileURL == target.standardizedFileURL { return }
        try? FileManager.default.removeItem(at: target)
        do { try FileManager.default.linkItem(at: file, to: target) } catch {
            do { try write("model.safetensors", try Data(contentsOf: file)) } catch {
                throw TrainingError("\(target.path): cannot place the model in the run directory (\(error))")
            }
        }
    }

    func write(_ name: String, _ data: Data) throws {
        do { try AtomicFile.write(data: data, to: url.appendingPathComponent(name), overwrite: true) } catch {
            throw TrainingError("\(url.appendingPathComponent(name).path): cannot write (\(error))")
        }
    }

    /// `word` as a POSIX shell word.
    static func shellQuoted(_ word: String) -> String {
        let safe = word.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
        return safe && !word.isEmpty ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}
