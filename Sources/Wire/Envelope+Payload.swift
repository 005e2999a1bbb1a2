extension Envelope {
    /// The tensors carried by this envelope's body, for the bodies that carry tensors
    /// (FitRequest, FitResult, EvaluateRequest); `nil` for the others or when unset.
    ///
    /// Setting it on a body that carries no tensors does nothing.
    public var payload: Fedkit_V1_Payload? {
        get {
            switch body {
            case .fitRequest(let m) where m.hasParameters: return m.parameters
            case .fitResult(let m) where m.hasParameters: return m.parameters
            case .evaluateRequest(let m) where m.hasParameters: return m.parameters
            default: return nil
            }
        }
        set {
            switch body {
            case .fitRequest(var m):
                if let newValue { m.parameters = newValue } else { m.clearParameters() }
                body = .fitRequest(m)
            case .fitResult(var m):
                if let newValue { m.parameters = newValue } else { m.clearParameters() }
                body = .fitResult(m)
            case .evaluateRequest(var m):
                if let newValue { m.parameters = newValue } else { m.clearParameters() }
                body = .evaluateRequest(m)
            default:
                break
            }
        }
    }
}
