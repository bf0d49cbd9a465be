import Datasets
import NeuralNet

/// A content hash of a model: SHA-256 (lowercase hex) over the tag `Sequential/v1`, then for each parameter in
/// order (then each buffer, e.g. batch-norm statistics) its name, its rank and shape (little-endian Int64) and every element's IEEE-754 bit pattern
/// (little-endian UInt32). Two models with equal names, shapes and bit-identical weights get the same identity.
public func modelIdentity(_ model: Sequential) -> String {
    var hasher = SHA256()
    hasher.update(Array("Sequential/v1".utf8))
    for (name, parameter) in model.namedState {
        let nameBytes = Array(name.utf8)
        var header: [Int64] = [Int64(nameBytes.count)]
        header.withUnsafeBytes { hasher.update($0) }
        hasher.update(nameBytes)
        header = [Int64(parameter.value.rank)] + parameter.value.shape.map { Int64($0) }
        header = header.map { $0.littleEndian }
        header.withUnsafeBytes { hasher.update($0) }
        parameter.value.withUnsafeBufferPointer { floats in
            let bits = floats.map { $0.bitPattern.littleEndian }
            bits.withUnsafeBytes { hasher.update($0) }
        }
    }
    return SHA256.hex(hasher.finalize())
}
