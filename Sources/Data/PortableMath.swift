// Elementary functions from +, −, ×, ÷ alone. libm's sin, exp and log may differ in
// their last bits between platforms and library versions; these give the same
// bits on every IEEE-754 machine, so a seed produces the same images and the same
// partitions on a laptop and on every host of a cluster. Relative error ≈ 1e-15,
// far below what 8-bit pixels or a Dirichlet draw can notice.

enum PortableMath {
    static let twoPi = 6.283185307179586
    static let ln2 = 0.6931471805599453
    static let ln2Hi = 0.6931471803691238
    static let ln2Lo = 1.9082149292705877e-10

    /// 1/((2k)(2k+1)), 1/((2k−1)(2k)), 1/n! and 1/(2k+1): the series' coefficients.
    static let sinSteps: [Double] = (0...13).map { (k: Int) -> Double in
        let d = Double(2 * k * (2 * k + 1))
        return k == 0 ? 0 : 1 / d
    }
    static let cosSteps: [Double] = (0...13).map { (k: Int) -> Double in
        let d = Double((2 * k - 1) * (2 * k))
        return k == 0 ? 0 : 1 / d
    }
    static let expSteps: [Double] = (0...14).map { (n: Int) -> Double in n == 0 ? 0 : 1 / Double(n) }
    static let logTerms: [Double] = (0...12).map { (k: Int) -> Double in 1 / Double(2 * k + 1) }

    /// x reduced to [−π, π].
    @inline(__always) static func reduce(_ x: Double) -> Double {
        x - (x / twoPi).rounded() * twoPi
    }

    /// sin x (Taylor series to degree 27 on [−π, π]).
    static func sin(_ x: Double) -> Double {
        let r = reduce(x), r2 = r * r
        var s = 1.0
        for k in stride(from: 13, through: 1, by: -1) { s = 1 - r2 * sinSteps[k] * s }
        return r * s
    }

    /// cos x (Taylor series to degree 26 on [−π, π]).
    static func cos(_ x: Double) -> Double {
        let r = reduce(x), r2 = r * r
        var c = 1.0
        for k in stride(from: 13, through: 1, by: -1) { c = 1 - r2 * cosSteps[k] * c }
        return c
    }

    /// e^x (x = k ln 2 + r, |r| ≤ ln 2 / 2, Taylor series to degree 14).
    static func exp(_ x: Double) -> Double {
        if x.isNaN { return x }
        if x > 709.7 { return .infinity }
        if x < -745.2 { return 0 }
        let k = (x / ln2).rounded()
        let r = (x - k * ln2Hi) - k * ln2Lo
        var e = 1.0
        for n in stride(from: 14, through: 1, by: -1) { e = 1 + r * expSteps[n] * e }
        return Double(sign: .plus, exponent: Int(k), significand: e)
    }

    /// ln x for x > 0 (x = m 2^e, m in [√½, √2), ln m = 2 atanh((m − 1)/(m + 1))).
    static func log(_ x: Double) -> Double {
        precondition(x > 0, "PortableMath.log needs a positive argument")
        if x == .infinity { return x }
        var e = Double(x.exponent), m = x.significand
        if m > 1.4142135623730951 { m /= 2; e += 1 }
        let s = (m - 1) / (m + 1), s2 = s * s
        var series = 0.0
        for k in stride(from: 12, through: 0, by: -1) { series = logTerms[k] + s2 * series }
        return e * ln2 + 2 * s * series
    }

    /// x^y for x > 0.
    static func pow(_ x: Double, _ y: Double) -> Double { exp(y * log(x)) }
}

@inline(__always) func psin(_ x: Float) -> Float { Float(PortableMath.sin(Double(x))) }
@inline(__always) func pcos(_ x: Float) -> Float { Float(PortableMath.cos(Double(x))) }
@inline(__always) func pexp(_ x: Float) -> Float { Float(PortableMath.exp(Double(x))) }
