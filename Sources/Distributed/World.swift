import Foundation

/// The job this process belongs to: MPI_COMM_WORLD when started by Open MPI's `mpirun`, else one process.
public enum World {
    /// The launcher's view, from the environment alone (nothing is loaded): Open MPI's `OMPI_COMM_WORLD_RANK` and
    /// `OMPI_COMM_WORLD_SIZE`, nil when the process was not started by `mpirun`.
    public static var launched: (rank: Int, size: Int)? {
        let environment = ProcessInfo.processInfo.environment
        guard let sizeText = environment["OMPI_COMM_WORLD_SIZE"], let size = Int(sizeText), size >= 1,
              let rankText = environment["OMPI_COMM_WORLD_RANK"], let rank = Int(rankText), rank >= 0, rank < size
        else { return nil }
        return (rank, size)
    }

    /// The communicator of this process, made by `start()`; ``SingleProcess`` until then.
    nonisolated(unsafe) public private(set) static var current: Communicator = SingleProcess()

    /// Initialises MPI when `launched` says the process runs under `mpirun` (once); returns the communicator.
    /// Throws when the launcher is Open MPI's but its library cannot be loaded or initialised.
    @discardableResult
    public static func start() throws -> Communicator {
        if current is MPICommunicator || launched == nil { return current }
        current = try MPICommunicator()
        return current
    }

    /// Ends MPI when it was started (MPI_Finalize); call before a normal exit.
    public static func finish() {
        (current as? MPICommunicator)?.finalize()
    }
}
