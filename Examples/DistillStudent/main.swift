// Distils a small student from a teacher file through the library API, on the embedded MNIST.
//
//     swift run -c release distill-student-example teacher.safetensors [epochs]
import Foundation
import Checkpoints
import Distillation

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: distill-student-example TEACHER.safetensors [EPOCHS]\n".utf8))
    exit(2)
}
do {
    let data = try DataLocation.loadMNIST(nil)
    let teacherFile = try ModelCheckpoint.read(url: URL(fileURLWithPath: arguments[1]))
    let teacher = ModelTeacher(model: teacherFile.model)

    var student = TrainingConfiguration()
    student.model = .mlp(hidden: [300, 300])
    student.epochs = arguments.count > 2 ? Int(arguments[2]) ?? 5 : 5
    student.optimizer.learningRate = 0.05
    student.optimizer.schedule = .warmup(epochs: 1, startFactor: 0.1, then: .cosine(totalEpochs: student.epochs - 1, minimum: 0))
    let loss = DistillationLossConfiguration(temperature: 20, hardWeight: 0.5, softWeight: 0.5)

    let result = try TrainingJob.train(configuration: student, data: data, label: "student") { indices in
        try DistillationObjective(teacher: teacher, loss: loss, exampleIndices: indices)
    }
    print("student 784-300-300-10: \(result.testErrors) test errors of \(result.testCount); \(result.health.summary)")
} catch {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
