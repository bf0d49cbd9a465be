// swift-tools-version:6.0
import PackageDescription

// Layering (dependencies point downward only):
//   distill (CLI) -> Distillation -> Optimizers -> NeuralNet -> TensorCore -> CBLAS, CFloatControl, CWorkers, CSparseKernels,
//                                                                          CDNNL (C; oneDNN opened at run time when installed)
//   distill (CLI) -> Experiments (the paper's experiments), Benchmarking (`distill bench`) -> Distillation
//                                 -> Checkpoints (model files) -> NeuralNet, TensorIO
//                                 -> Datasets -> TensorIO (safetensors) -> TensorCore; Datasets -> CZlib
//                                 -> Distributed (MPI: Open MPI's libmpi opened at run time under mpirun; nothing linked)
let package = Package(
    name: "SwiftDistill",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "distill", targets: ["distill"]),
        .library(name: "Distillation", targets: ["Distillation"]),
        // Loads a model file and predicts: no training code, no command-line parser, no Python.
        .library(name: "DistillInference", targets: ["Inference"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .systemLibrary(
            name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .target(name: "CImageDecoders", linkerSettings: [.linkedLibrary("jpeg")]),
        .target(name: "CFloatControl"),
        .target(name: "CLossKernels"),
        .target(name: "CWorkers"),
        .target(name: "CSparseKernels"),
        .target(name: "CDNNL"),
        .target(
            name: "TensorCore",
            dependencies: ["CFloatControl", "CWorkers", "CSparseKernels", "CDNNL", .target(name: "CBLAS", condition: .when(platforms: [.linux]))]),
        .target(name: "TensorIO", dependencies: ["TensorCore"]),
        .target(name: "NeuralNet", dependencies: ["TensorCore"]),
        .target(name: "Optimizers", dependencies: ["TensorCore", "NeuralNet"]),
        .target(name: "Datasets", dependencies: ["TensorCore", "TensorIO", "CZlib"]),
        .target(name: "Checkpoints", dependencies: ["TensorCore", "TensorIO", "NeuralNet"]),
        .target(name: "DataFormats", dependencies: ["TensorCore", "Datasets", "CPNG", "CImageDecoders"]),
        .target(name: "Distributed"),
        .target(name: "Distillation", dependencies: ["TensorCore", "TensorIO", "NeuralNet", "Optimizers", "Datasets", "Checkpoints", "CLossKernels", "Distributed"]),
        .target(name: "Specialists", dependencies: ["TensorCore", "NeuralNet", "Datasets", "Distillation"]),
        .target(name: "Reports"),
        .target(name: "Inference", dependencies: ["TensorCore", "NeuralNet", "Checkpoints"]),
        .target(name: "ONNXProto", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "Export", dependencies: ["TensorCore", "NeuralNet", "Checkpoints", "ONNXProto",
                                               .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "Runs", dependencies: ["TensorCore", "NeuralNet", "Optimizers", "Datasets", "TensorIO", "Checkpoints", "DataFormats", "Distillation",
                                             .product(name: "Yams", package: "Yams")]),
        .target(name: "Experiments", dependencies: ["TensorCore", "NeuralNet", "Optimizers", "Runs", "Datasets", "Checkpoints", "Distillation", "Specialists", "Distributed"]),
        .target(name: "Benchmarking", dependencies: ["TensorCore", "TensorIO", "NeuralNet", "Optimizers", "Datasets", "Checkpoints", "Distillation", "Inference"]),
        .executableTarget(
            name: "distill",
            dependencies: ["Distillation", "Distributed", "Experiments", "Specialists", "Benchmarking", "DataFormats", "Runs", "Reports", "Export", "Inference", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "predict-example", dependencies: ["Inference"], path: "Examples/Predict"),
        .executableTarget(name: "distill-student-example", dependencies: ["Distillation", "Checkpoints"],
                          path: "Examples/DistillStudent"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"]),
        .testTarget(name: "TensorIOTests", dependencies: ["TensorIO"]),
        .testTarget(name: "InferenceTests", dependencies: ["Inference", "NeuralNet", "TensorCore"]),
        .testTarget(name: "NeuralNetTests", dependencies: ["NeuralNet", "TensorIO"], resources: [.copy("Fixtures")]),
        .testTarget(name: "OptimizersTests", dependencies: ["Optimizers", "TensorIO"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets"]),
        .testTarget(name: "RunsTests", dependencies: ["Runs", "Distillation"]),
        .testTarget(name: "ReportsTests", dependencies: ["Reports"]),
        .testTarget(name: "SpecialistsTests", dependencies: ["Specialists", "Distillation", "Datasets", "NeuralNet"]),
        .testTarget(name: "ExportTests", dependencies: ["Export", "Checkpoints", "DataFormats", "TensorIO", "NeuralNet", "TensorCore", "ONNXProto",
                                                         .product(name: "SwiftProtobuf", package: "swift-protobuf")], resources: [.copy("Fixtures")]),
        .testTarget(name: "DataFormatsTests", dependencies: ["DataFormats", "Datasets"], resources: [.copy("Fixtures")]),
        .testTarget(name: "DistillationTests", dependencies: ["Distillation", "Checkpoints", "Experiments", "CLossKernels"], resources: [.copy("Fixtures")]),
        .testTarget(name: "distillTests", dependencies: ["Distillation", "Datasets", "Checkpoints", "Experiments", "Benchmarking"]),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed", "Distillation", "NeuralNet", "TensorCore", "Datasets", "Checkpoints", "TensorIO"]),
    ],
    swiftLanguageModes: [.v5]
)
