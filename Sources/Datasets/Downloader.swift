import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A synchronous HTTP GET with a timeout, for `MNIST.fetch`.
final class Downloader: @unchecked Sendable {
    private var result: Result<[UInt8], DataError>?
    private let lock = NSLock()

    /// Downloads `url` and returns its body, or throws `DataError.download` with the reason.
    static func download(_ url: URL, file: String, timeout: TimeInterval, maximumBytes: Int) throws -> [UInt8] {
        let box = Downloader()
        let done = DispatchSemaphore(value: 0)
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout * 4
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        let address = url.absoluteString
        let task = session.dataTask(with: url) { data, response, error in
            let outcome: Result<[UInt8], DataError>
            if let error {
                outcome = .failure(.download(file: file, url: address, reason: error.localizedDescription))
            } else if let http = response as? HTTPURLResponse, !(200..<300).contains(http.statusCode) {
                outcome = .failure(.download(file: file, url: address, reason: "HTTP status \(http.statusCode)"))
            } else if let data {
                outcome = data.count > maximumBytes
                    ? .failure(.download(file: file, url: address, reason: "response larger than \(maximumBytes) bytes"))
                    : .success([UInt8](data))
            } else {
                outcome = .failure(.download(file: file, url: address, reason: "empty response"))
            }
            box.lock.lock()
            box.result = outcome
            box.lock.unlock()
            done.signal()
        }
        task.resume()
        if done.wait(timeout: .now() + timeout * 4 + 5) == .timedOut {
            task.cancel()
            throw DataError.download(file: file, url: address, reason: "timed out after \(Int(timeout * 4 + 5)) s")
        }
        box.lock.lock()
        defer { box.lock.unlock() }
        switch box.result {
        case .success(let bytes): return bytes
        case .failure(let error): throw error
        case nil: throw DataError.download(file: file, url: address, reason: "no response")
        }
    }
}
