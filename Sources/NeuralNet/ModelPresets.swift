/// Named networks, sized to the data: `lenet5` and CIFAR-style ResNets (`resnet8`, `resnet14`, `resnet20`, ...).
///
/// - `lenet5` (LeCun et al. 1998, as commonly written today with ReLU and max pooling): conv 5x5 (6 channels,
///   padding 2) - ReLU - max pool 2 - conv 5x5 (16) - ReLU - max pool 2 - flatten - 120 - ReLU - 84 - ReLU - classes.
///   61,706 parameters on 1x28x28 images with 10 classes.
/// - `resnet<6n+2>` (He et al. 2016, section 4.2): conv 3x3 (16) - BN - ReLU, three stages of n basic blocks with
///   16, 32 and 64 channels (the first block of stages 2 and 3 strides by 2 and its shortcut is a 1x1 convolution
///   with stride 2 and a batch norm, the paper's option B), global average pooling, a linear layer to the classes.
///   Each basic block: conv 3x3 - BN - ReLU - conv 3x3 - BN, added to the shortcut, then ReLU. Convolutions before
///   a batch norm have no bias. `resnet8`: 77,754 parameters on 1x28x28 images with 10 classes.
public enum ModelPresets {
    /// The names `description(named:...)` knows (ResNets: any depth 6n + 2).
    public static let names = ["lenet5", "resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56"]

    /// The network `name` for per-example input `inputShape` (`[channels, height, width]`) and `classCount` classes.
    public static func description(named name: String, inputShape: [Int], classCount: Int) throws -> ModelDescription {
        guard classCount >= 1 else { throw ModelDescriptionError("model '\(name)': needs at least one class") }
        guard inputShape.count == 3, inputShape.allSatisfy({ $0 > 0 }) else {
            throw ModelDescriptionError("model '\(name)' needs image input [channels, height, width], the data has samples of shape \(inputShape) (give image data or a description with a flatten first)")
        }
        if name == "lenet5" { return try lenet5(inputShape: inputShape, classCount: classCount) }
        if let depth = resnetDepth(name) {
            return try resnet(blocksPerStage: (depth - 2) / 6, inputShape: inputShape, classCount: classCount)
        }
        throw ModelDescriptionError("unknown model '\(name)' (known: \(names.joined(separator: ", ")), or resnet<6n+2>, or a model description file .json)")
    }

    /// Whether `description(named:...)` knows `name` (before any data fits it).
    public static func isKnown(_ name: String) -> Bool { name == "lenet5" || resnetDepth(name) != nil }

    /// The depth of `resnet<6n+2>` (8 to 1202), else nil.
    static func resnetDepth(_ name: String) -> Int? {
        guard name.hasPrefix("resnet"), let depth = Int(name.dropFirst("resnet".count)), depth >= 8, (depth - 2) % 6 == 0,
              depth <= 1202 else { return nil }
        return depth
    }

    static func lenet5(inputShape: [Int], classCount: Int) throws -> ModelDescription {
        guard inputShape[1] >= 16, inputShape[2] >= 16 else {
            throw ModelDescriptionError("model 'lenet5' needs images of at least 16x16, got \(inputShape[1])x\(inputShape[2])")
        }
        let features: [LayerDescription] = [
            Conv2d.description(inChannels: inputShape[0], outChannels: 6, kernelSize: 5, padding: 2),
            LayerDescription(kind: ReLU.kind),
            MaxPool2d.description(kernelSize: 2),
            Conv2d.description(inChannels: 6, outChannels: 16, kernelSize: 5),
            LayerDescription(kind: ReLU.kind),
            MaxPool2d.description(kernelSize: 2),
            LayerDescription(kind: Flatten.kind),
        ]
        let flat = try ModelDescription(inputShape: inputShape, layers: features).plan().outputShape[0]
        return ModelDescription(inputShape: inputShape, layers: features + [
            Linear.description(inputCount: flat, outputCount: 120), LayerDescription(kind: ReLU.kind),
            Linear.description(inputCount: 120, outputCount: 84), LayerDescription(kind: ReLU.kind),
            Linear.description(inputCount: 84, outputCount: classCount),
        ])
    }

    static func resnet(blocksPerStage n: Int, inputShape: [Int], classCount: Int) throws -> ModelDescription {
        guard inputShape[1] >= 4, inputShape[2] >= 4 else {
            throw ModelDescriptionError("model 'resnet\(6 * n + 2)' needs images of at least 4x4, got \(inputShape[1])x\(inputShape[2])")
        }
        var layers: [LayerDescription] = [
            Conv2d.description(inChannels: inputShape[0], outChannels: 16, kernelSize: 3, padding: 1, bias: false),
            BatchNorm2d.description(numFeatures: 16), LayerDescription(kind: ReLU.kind),
        ]
        var channels = 16
        for (stage, width) in [16, 32, 64].enumerated() {
            for block in 0..<n {
                let stride = stage > 0 && block == 0 ? 2 : 1
                let body = [
                    Conv2d.description(inChannels: channels, outChannels: width, kernelSize: 3, stride: stride, padding: 1, bias: false),
                    BatchNorm2d.description(numFeatures: width), LayerDescription(kind: ReLU.kind),
                    Conv2d.description(inChannels: width, outChannels: width, kernelSize: 3, padding: 1, bias: false),
                    BatchNorm2d.description(numFeatures: width),
                ]
                let shortcut = stride == 1 && channels == width ? [] : [
                    Conv2d.description(inChannels: channels, outChannels: width, kernelSize: 1, stride: stride, bias: false),
                    BatchNorm2d.description(numFeatures: width),
                ]
                layers.append(Residual.description(body: body, shortcut: shortcut))
                layers.append(LayerDescription(kind: ReLU.kind))
                channels = width
            }
        }
        layers.append(LayerDescription(kind: GlobalAvgPool.kind))
        layers.append(Linear.description(inputCount: 64, outputCount: classCount))
        return ModelDescription(inputShape: inputShape, layers: layers)
    }
}
