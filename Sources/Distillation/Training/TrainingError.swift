/// A user-facing failure of a training run or its configuration: one line naming the flag, file or place and what
/// was expected.
public struct TrainingError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
