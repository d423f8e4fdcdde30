/// `--kernel X.Y[.Z]`: running a scenario as if its first kernel were another version.

extension Scenario {
    /// This scenario with its first kernel's version set to `version` (the `--kernel` option of
    /// `run`, `plan`, `tables`, `render` and `matrix`, and each column of `matrix --kernels`).
    ///
    /// Everything the version selects follows from `machine.kernel` when the scenario is planned;
    /// what the decoder already derived from the old version is recomputed here through
    /// `Machine.reservationsChangedForKernel()`.
    ///
    /// Coordination (crashkernel= by version): a reservation that came from `crashkernel=` depends
    /// on the version (the x86 rules before 6.7, reserve_crashkernel_generic from 6.7); recompute it
    /// inside `reservationsChangedForKernel()`, so this function stays one line per derived value.
    public func overridingKernel(_ version: KernelVersion) -> Scenario {
        var sc = self
        sc.machine.kernel = version
        sc.machine.reservationsChangedForKernel()
        return sc
    }
}

extension Machine {
    /// Recomputes what was derived from `kernel` when the machine was decoded, after `kernel`
    /// changed (`Scenario.overridingKernel`): the crashkernel= reservation, which depends on the
    /// version (`reservingCrashkernel(for:)`; given `crashkernel_ranges` and imported ranges stay as
    /// they are). The parameter was checked when the fixture was decoded, so a failure here keeps
    /// the ranges the decoder found.
    public mutating func reservationsChangedForKernel() {
        guard let v = kernel, let m = try? reservingCrashkernel(for: v) else { return }
        self = m
    }
}
