import Foundation
import TensorCore
import Datasets
import CPNG
import CImageDecoders

/// A folder of images, one subfolder per class (`data/cat/1.png`, `data/dog/7.jpg`): PNG through libpng, JPEG
/// through libjpeg. Classes are the subfolders' names, sorted. Every image is read as grey (1 channel) or RGB (3),
/// and must have one size unless a size is given, to which each is resized (bilinear). The pixels stay bytes
/// (decoded to `byte / 255` a batch at a time), sample shape `[channels, height, width]`.
public enum ImageFolderReader {
    public struct Options: Sendable {
        /// 1 (grey) or 3 (RGB); nil: RGB when any image has colour, else grey.
        public var channels: Int? = nil
        /// Resize every image to this height and width; nil: every image must have the first image's size.
        public var size: (height: Int, width: Int)? = nil
        public init() {}
    }

    static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    public static func read(directory: URL, options: Options = Options()) throws -> TabularData {
        let fm = FileManager.default
        let root = directory.path
        let entries: [URL]
        do { entries = try fm.contentsOfDirectory(at: directory, includingPropertiesForKeys: [.isDirectoryKey]) } catch {
            throw DataError.io(file: root, reason: error.localizedDescription)
        }
        let classes = entries.filter { (try? $0.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true && !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
        guard classes.count >= 2 else {
            throw DataError.format(file: root, expected: "one subfolder of images per class (at least two)", found: "\(classes.count) subfolder(s)")
        }
        var files: [(url: URL, label: Int)] = []
        for (label, folder) in classes.enumerated() {
            let images = ((try? fm.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? [])
                .filter { extensions.contains($0.pathExtension.lowercased()) }
                .sorted { $0.lastPathComponent < $1.lastPathComponent }
            guard !images.isEmpty else {
                throw DataError.format(file: folder.path, expected: "PNG or JPEG images (.png, .jpg, .jpeg)", found: "none")
            }
            files += images.map { ($0, label) }
        }
        // Decode every image as RGB (grey comes from our own BT.601 luma of the encoded values, as Pillow's and
        // torchvision's Grayscale compute it, not libpng's gamma-correct conversion).
        var decoded: [(pixels: [UInt8], channels: Int, height: Int, width: Int)] = []
        decoded.reserveCapacity(files.count)
        for file in files { decoded.append(try decode(file.url, channels: 3)) }
        let channels = options.channels ?? (decoded.contains { image in !isGrey(image.pixels) } ? 3 : 1)
        let height = options.size?.height ?? decoded[0].height, width = options.size?.width ?? decoded[0].width
        guard height > 0, width > 0, height <= 4096, width <= 4096 else {
            throw DataError.invalidArgument(context: "image size", expected: "1...4096 pixels a side", found: "\(height)x\(width)")
        }
        let perImage = channels * height * width
        var bytes = [UInt8]()
        bytes.reserveCapacity(files.count * perImage)
        for (i, image) in decoded.enumerated() {
            var pixels = image.pixels
            if channels == 1 && image.channels == 3 { pixels = grey(pixels) }
            if image.height != height || image.width != width {
                guard options.size != nil else {
                    throw DataError.format(file: files[i].url.path, expected: "\(height)x\(width) pixels like \(files[0].url.lastPathComponent) (or give a size to resize to)",
                                           found: "\(image.height)x\(image.width)")
                }
                pixels = resize(pixels, channels: channels, from: (image.height, image.width), to: (height, width))
            }
            bytes += planar(pixels, channels: channels, pixels: height * width)
        }
        let dataset = try LabeledDataset(bytes: bytes, sampleShape: [channels, height, width], labels: files.map(\.label),
                                         classCount: classes.count)
        return TabularData(dataset: dataset, classNames: classes.map(\.lastPathComponent), featureNames: nil, source: root)
    }

    /// Pixels interleaved (HWC, as decoders give them) to channel planes (CHW, as networks take them).
    static func planar(_ pixels: [UInt8], channels: Int, pixels count: Int) -> [UInt8] {
        guard channels > 1 else { return pixels }
        var out = [UInt8](repeating: 0, count: pixels.count)
        for p in 0..<count { for c in 0..<channels { out[c * count + p] = pixels[p * channels + c] } }
        return out
    }

    static func isGrey(_ rgb: [UInt8]) -> Bool {
        var i = 0
        while i + 2 < rgb.count {
            if rgb[i] != rgb[i + 1] || rgb[i] != rgb[i + 2] { return false }
            i += 3
        }
        return true
    }

    /// ITU-R BT.601 luma of interleaved RGB.
    static func grey(_ rgb: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rgb.count / 3)
        for p in 0..<out.count {
            let r = 299 * Int(rgb[3 * p]), g = 587 * Int(rgb[3 * p + 1]), b = 114 * Int(rgb[3 * p + 2])
            out[p] = UInt8((r + g + b + 500) / 1000)
        }
        return out
    }

    /// Bilinear resampling of interleaved pixels (pixel centres aligned, as PIL's and PyTorch's `align_corners=False`).
    static func resize(_ pixels: [UInt8], channels: Int, from: (Int, Int), to: (Int, Int)) -> [UInt8] {
        let (h0, w0) = from, (h1, w1) = to
        var out = [UInt8](repeating: 0, count: h1 * w1 * channels)
        for y in 0..<h1 {
            let sy = Swift.max(0, Swift.min(Double(h0 - 1), (Double(y) + 0.5) * Double(h0) / Double(h1) - 0.5))
            let y0 = Int(sy), y1 = Swift.min(y0 + 1, h0 - 1), fy = sy - Double(y0)
            for x in 0..<w1 {
                let sx = Swift.max(0, Swift.min(Double(w0 - 1), (Double(x) + 0.5) * Double(w0) / Double(w1) - 0.5))
                let x0 = Int(sx), x1 = Swift.min(x0 + 1, w0 - 1), fx = sx - Double(x0)
                for c in 0..<channels {
                    func at(_ yy: Int, _ xx: Int) -> Double { Double(pixels[(yy * w0 + xx) * channels + c]) }
                    let v = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1))
                    out[(y * w1 + x) * channels + c] = UInt8(Swift.max(0, Swift.min(255, v.rounded())))
                }
            }
        }
        return out
    }

    /// One image as interleaved 8-bit pixels with `channels` per pixel.
    static func decode(_ url: URL, channels: Int) throws -> (pixels: [UInt8], channels: Int, height: Int, width: Int) {
        let data: [UInt8]
        do { data = [UInt8](try Data(contentsOf: url)) } catch { throw DataError.io(file: url.path, reason: error.localizedDescription) }
        if data.starts(with: [0x89, 0x50, 0x4E, 0x47]) { return try decodePNG(data, url: url, channels: channels) }
        if data.starts(with: [0xFF, 0xD8]) { return try decodeJPEG(data, url: url, channels: channels) }
        throw DataError.format(file: url.path, expected: "a PNG or JPEG image", found: data.isEmpty ? "an empty file" : "other bytes")
    }

    static func decodePNG(_ data: [UInt8], url: URL, channels: Int) throws -> (pixels: [UInt8], channels: Int, height: Int, width: Int) {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        let ok = data.withUnsafeBytes { png_image_begin_read_from_memory(&image, $0.baseAddress, $0.count) }
        func message() -> String {
            withUnsafeBytes(of: image.message) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        }
        guard ok != 0 else { throw DataError.format(file: url.path, expected: "a readable PNG image", found: "an error: \(message())") }
        defer { png_image_free(&image) }
        guard image.width > 0, image.height > 0, image.width <= 65535, image.height <= 65535 else {
            throw DataError.format(file: url.path, expected: "an image of 1...65535 pixels a side", found: "\(image.width)x\(image.height)")
        }
        image.format = channels == 1 ? 0 : 2  // PNG_FORMAT_GRAY, PNG_FORMAT_RGB (8-bit, no alpha: composited onto black)
        let count = Int(image.width) * Int(image.height) * channels
        var pixels = [UInt8](repeating: 0, count: count)
        let finished = data.withUnsafeBytes { _ in
            pixels.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
        }
        guard finished != 0 else { throw DataError.format(file: url.path, expected: "a readable PNG image", found: "an error: \(message())") }
        return (pixels, channels, Int(image.height), Int(image.width))
    }

    static func decodeJPEG(_ data: [UInt8], url: URL, channels: Int) throws -> (pixels: [UInt8], channels: Int, height: Int, width: Int) {
        var width: Int32 = 0, height: Int32 = 0
        var pixels: UnsafeMutablePointer<UInt8>? = nil
        var message = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBufferPointer { buffer in
            message.withUnsafeMutableBufferPointer { m in
                distill_decode_jpeg(buffer.baseAddress, UInt(buffer.count), Int32(channels), &width, &height, &pixels, m.baseAddress, Int32(m.count))
            }
        }
        guard status == 0, let pixels else {
            let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw DataError.format(file: url.path, expected: "a readable JPEG image", found: "an error: \(text)")
        }
        defer { free(pixels) }
        let count = Int(width) * Int(height) * channels
        return (Array(UnsafeBufferPointer(start: pixels, count: count)), channels, Int(height), Int(width))
    }
}
