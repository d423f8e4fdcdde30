import KexecModel

extension Engine where Arch.Register: CaseIterable {
    /// Whether the guest stopped at `pc` is caught in a spin: from `pc`, 720720 instructions
    /// (lcm(1…16), so a loop of up to 16 instructions ends where it began) run over at most 16
    /// addresses and come back to `pc` with every register of the architecture's register file as
    /// it was (`while (true) cpu_relax();`, `1: hlt; jmp 1b` with interrupts off). With one CPU,
    /// no interrupt delivered and no other agent writing memory, such a state repeats forever; a
    /// loop that waits on a counter (CNTVCT, the TSC) that did not move within the sample would
    /// pass too.
    ///
    /// Runs the guest outside any follow machine (an exception in the sample is not delivered):
    /// call it only once the run is over. Returns the loop's words (as `sampleLoop` gives them)
    /// when the state repeated, nil otherwise.
    public func provableSpin(at pc: VirtAddr) -> String? {
        let registers = Arch.Register.allCases.map(\.ucID)
        let before = registers.map { readRegister($0) }
        let loop = sampleLoop(at: pc, instructions: 720_720)
        let after = registers.map { readRegister($0) }
        guard programCounter == pc.raw, before == after, loop.hasPrefix("tight loop") else { return nil }
        return loop
    }
}
