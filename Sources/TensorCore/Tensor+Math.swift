import Foundation

/// Unary elementwise math.
extension Tensor {
    /// e^x elementwise.
    public func exp() -> Tensor { map { Foundation.exp($0) } }
    /// Natural logarithm elementwise (log(0) = -inf, log of a negative number = NaN, as PyTorch).
    public func log() -> Tensor { map { Foundation.log($0) } }
    /// max(x, 0) elementwise.
    public func relu() -> Tensor { map { $0 > 0 ? $0 : 0 } }
    public func squared() -> Tensor { map { $0 * $0 } }
    public func sqrt() -> Tensor { map { $0.squareRoot() } }

    /// The transpose of a matrix `[rows, columns]` -> `[columns, rows]`.
    public func transposed() -> Tensor {
        precondition(rank == 2, "transposed() needs a matrix, got shape \(shape)")
        let rows = shape[0], cols = shape[1]
        let a = storage.pointer
        return Tensor(shape: [cols, rows]) { out in
            for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = a[r * cols + c] } }
        }
    }
}
