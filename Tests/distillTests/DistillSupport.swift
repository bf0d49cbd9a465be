import Foundation
import XCTest

/// Helpers shared by the `Distill*` / `Experiment*` CLI tests (the same checks as `CLITests`).

/// The last stdout line parsed as a JSON object.
func lastLineJSON(_ text: String, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
    let lastLine = text.split(separator: "\n").last.map(String.init) ?? ""
    let object = try JSONSerialization.jsonObject(with: Data(lastLine.utf8))
    return try XCTUnwrap(object as? [String: Any], "stdout is not a JSON object: \(text)", file: file, line: line)
}

/// A command that succeeded: exited normally with status 0.
func assertSucceeded(_ result: CommandResult, _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(result.reason, .exit, "\(message): killed by a signal; stderr: \(result.stderr)", file: file, line: line)
    XCTAssertEqual(result.status, 0, "\(message): \(result.stderr)", file: file, line: line)
}

/// A failed command: exited (no signal), non-zero status, the first stderr line starts with "Error:" and names
/// `needle`, no crash text, nothing on stdout.
func assertFailedCleanly(_ result: CommandResult, naming needle: String, _ message: String = "",
                         file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(result.reason, .exit, "\(message): terminated by a signal (trap?) status \(result.status); stderr: \(result.stderr)", file: file, line: line)
    XCTAssertNotEqual(result.status, 0, "\(message): should fail", file: file, line: line)
    let first = result.stderrLines.first.map(String.init) ?? ""
    XCTAssertTrue(first.hasPrefix("Error:"), "\(message): first stderr line should be the error, got \(result.stderr)", file: file, line: line)
    XCTAssertTrue(first.contains(needle), "\(message): error should name \(needle): \(first)", file: file, line: line)
    XCTAssertFalse(result.stderr.contains("Fatal error"), "\(message): \(result.stderr)", file: file, line: line)
    XCTAssertTrue(result.stdout.isEmpty, "\(message): nothing on stdout, got \(result.stdout)", file: file, line: line)
}
