/// The crashkernel reservation of a Machine, recomputable for another kernel version.

/// Where a machine's crashkernel ranges came from.
public enum CrashkernelOrigin: String, Sendable, Equatable {
    /// No crashkernel ranges.
    case none
    /// Given as `crashkernel_ranges`: kept as they are under any version.
    case given
    /// Reserved from `crashkernel=` by the machine's kernel version (CrashkernelByVersion).
    case parameter
    /// What an imported log says its kernel reserved: kept as they are.
    case log
}

extension Machine {
    /// What this machine's kernel, or `version`, does with `text` (default: the machine's
    /// `crashkernel=`); nil when there is no crashkernel= value.
    public func crashkernelOutcome(_ text: String? = nil, for version: KernelVersion? = nil)
        throws(CrashkernelError) -> CrashkernelOutcome?
    {
        guard let value = text ?? crashkernel else { return nil }
        let v = version ?? kernelVersion
        return try Crashkernel.reserve(
            value, in: memory,
            arch: CrashkernelArch.of(arch, dmaLimit: dmaZoneLimit ?? (arch == .arm64 ? arm64DmaLimit(for: v) : nil)),
            version: v, early: earlyReservations)
    }

    /// This machine with the ranges that came from `crashkernel=` reserved again as `version`
    /// reserves them (for `--kernel`): given ranges and a log's stay. Ranges are lowest first, as in
    /// `crashkernelRanges`; a reservation that fails there leaves none. `kernel` is not changed.
    public func reservingCrashkernel(for version: KernelVersion) throws(CrashkernelError) -> Machine {
        guard crashkernelOrigin == .parameter, let o = try crashkernelOutcome(for: version) else { return self }
        var m = self
        m.crashkernelRanges = o.ranges.sorted()
        return m
    }
}
