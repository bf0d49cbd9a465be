import Foundation
import Checkpoints

extension ModelCheckpoint {
    /// The training configuration recorded in the file's `training` metadata, if any.
    public var training: TrainingConfiguration? {
        metadata["training"].flatMap { try? JSONDecoder().decode(TrainingConfiguration.self, from: Data($0.utf8)) }
    }
}
