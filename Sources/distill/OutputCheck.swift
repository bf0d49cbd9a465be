import Foundation
import Distillation

extension DataLocation {
    /// Refuses to start a run whose output exists (without `force`) or whose directory is missing, before any work.
    static func checkOutput(_ path: String, force: Bool, flag: String = "--output") throws {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { throw TrainingError("\(flag) \(path) is a directory; expected a file path") }
            if !force { throw TrainingError("\(path) exists; pass --force to overwrite") }
        }
        let parent = url.deletingLastPathComponent().path
        if !FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) || !isDirectory.boolValue {
            throw TrainingError("\(flag) \(path): directory \(parent) does not exist")
        }
    }
}
