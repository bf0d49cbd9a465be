/// The weights and temperature of the distillation loss (see ``distillationLoss(studentLogits:teacherProbabilities:labels:configuration:)``).
///
/// L = hardWeight * H(y, softmax(z_s)) + softWeight * s * H(p_t, softmax(z_s / T)),  s = T^2 when
/// `scaleSoftBySquaredTemperature`, else 1.
///
/// Hinton, Vinyals & Dean (2015), section 2: the gradients of the soft term scale as 1/T^2, so it is multiplied by
/// T^2 to keep the relative contribution of hard and soft targets roughly unchanged when T changes.
public struct DistillationLossConfiguration: Codable, Equatable, Sendable {
    /// Softmax temperature T applied to student and teacher logits in the soft term (> 0; 1 = ordinary softmax).
    public var temperature: Float
    /// Weight of the hard-label cross-entropy (computed at T = 1), >= 0.
    public var hardWeight: Float
    /// Weight of the soft-target term, >= 0.
    public var softWeight: Float
    /// Multiply the soft term by T^2 (the paper's recommendation; default true).
    public var scaleSoftBySquaredTemperature: Bool
    /// How a top-k teacher's missing classes enter the soft term (see ``MissingMass``); no effect with a teacher
    /// that gives every class. Default ``MissingMass/renormalize``.
    public var missingMass: MissingMass

    public init(temperature: Float, hardWeight: Float, softWeight: Float, scaleSoftBySquaredTemperature: Bool = true,
                missingMass: MissingMass = .renormalize) {
        self.temperature = temperature
        self.hardWeight = hardWeight
        self.softWeight = softWeight
        self.scaleSoftBySquaredTemperature = scaleSoftBySquaredTemperature
        self.missingMass = missingMass
    }

    enum CodingKeys: String, CodingKey {
        case temperature, hardWeight, softWeight, scaleSoftBySquaredTemperature, missingMass
    }

    /// Decodes files written before `missingMass` existed as ``MissingMass/renormalize``.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        temperature = try c.decode(Float.self, forKey: .temperature)
        hardWeight = try c.decode(Float.self, forKey: .hardWeight)
        softWeight = try c.decode(Float.self, forKey: .softWeight)
        scaleSoftBySquaredTemperature = try c.decode(Bool.self, forKey: .scaleSoftBySquaredTemperature)
        missingMass = try c.decodeIfPresent(MissingMass.self, forKey: .missingMass) ?? .renormalize
    }

    /// The factor s applied to the soft cross-entropy: T^2 or 1.
    public var softScale: Float { scaleSoftBySquaredTemperature ? temperature * temperature : 1 }

    /// Checks user-supplied values.
    /// - Throws: ``ConfigurationError`` naming the field: `loss.temperature must be > 0, got -1`,
    ///   `loss.hardWeight must be >= 0, got -0.5`, `loss.softWeight ... cannot both be 0`, or a non-finite value
    ///   (`loss.softWeight must be finite, got nan`).
    public func validate() throws {
        guard temperature.isFinite else { throw ConfigurationError(field: "loss.temperature", "must be finite, got \(temperature)") }
        guard temperature > 0 else { throw ConfigurationError(field: "loss.temperature", "must be > 0, got \(Self.format(temperature))") }
        for (field, value) in [("loss.hardWeight", hardWeight), ("loss.softWeight", softWeight)] {
            guard value.isFinite else { throw ConfigurationError(field: field, "must be finite, got \(value)") }
            guard value >= 0 else { throw ConfigurationError(field: field, "must be >= 0, got \(Self.format(value))") }
        }
        if hardWeight == 0 && softWeight == 0 {
            throw ConfigurationError(field: "loss.softWeight", "and the hard weight cannot both be 0")
        }
        if scaleSoftBySquaredTemperature && !(temperature * temperature).isFinite {
            throw ConfigurationError(field: "loss.temperature", "\(temperature) is too large: T^2 overflows")
        }
    }

    /// `-1` rather than `-1.0` for whole numbers.
    static func format(_ v: Float) -> String {
        v == v.rounded() && abs(v) < 1e7 ? String(Int(v)) : String(v)
    }
}
