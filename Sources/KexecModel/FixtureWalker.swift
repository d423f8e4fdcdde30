/// The walk from a composed fixture to typed values: the document (a scenario, or a bare machine
/// file) and the scenario's top-level keys. The sections live in extensions: FixtureWalker+Machine,
/// +Kexec, +PolicyExpect; the scalar values and node kinds in FixtureWalker+Values.
///
/// Contract: every method either returns a fully checked value or throws an InputError naming the
/// fixture file, the line of the offending node and the dotted field; unknown keys are errors.
import Yams

private let scenarioKeys = [
    "name", "machine", "kexec", "policy", "next_kernel_touches", "expect", "expect_by_policy", "budget", "follow",
    "purgatory", "follow_timeout",
]

struct Walker {
    let file: String
    let base: String

    // MARK: Documents

    func document(_ root: Node) throws(InputError) -> Scenario {
        guard case .mapping(let m) = root else {
            throw fail(root, "document", "expected a mapping at the top level, found \(Self.describe(root))")
        }
        let keys = Set(m.compactMap { $0.key.scalar?.string })
        if keys.contains("arch") || (keys.contains("memory") && !keys.contains("machine")) {
            let machine = try machine(root, path: "")
            return Scenario(
                name: machine.name ?? FixtureDecoder.stem(of: file), machine: machine, kexec: nil, file: file)
        }
        return try scenario(root, m)
    }

    func scenario(_ root: Node, _ m: Node.Mapping) throws(InputError) -> Scenario {
        let f = try Fields(root, m, path: "", allowed: scenarioKeys, file: file)
        let name = try text(required(f, "name"), f.field("name"), allowEmpty: false)
        let machineNode = try required(f, "machine")
        let machine: Machine
        if case .scalar = machineNode {
            machine = try machineFile(machineNode, field: f.field("machine"))
        } else {
            machine = try self.machine(machineNode, path: f.field("machine"))
        }
        var scenario = Scenario(name: name, machine: machine, kexec: nil, file: file)
        if let n = f.value("kexec") {
            if case .sequence = n {
                let loads = try kexecChain(n, path: f.field("kexec"), machine: machine)
                scenario.kexec = loads.first
                scenario.chain = Array(loads.dropFirst())
            } else {
                scenario.kexec = try kexec(n, path: f.field("kexec"))
            }
        }
        if let n = f.value("policy") {
            scenario.policy = try policy(n, path: f.field("policy"), arch: machine.arch)
        }
        if let n = f.value("next_kernel_touches") {
            let field = f.field("next_kernel_touches")
            scenario.nextKernelTouches = []
            for (i, e) in try list(n, field, "a list of addresses").enumerated() {
                scenario.nextKernelTouches.append(try address(e, "\(field)[\(i)]"))
            }
        }
        if let n = f.value("expect") { scenario.expect = try expectation(n, path: f.field("expect")) }
        if let n = f.value("expect_by_policy") {
            let field = f.field("expect_by_policy")
            guard machine.arch == .x86_64 else {
                throw fail(
                    f.key("expect_by_policy"), field,
                    "expect_by_policy names x86_64 identity-map policies, but machine.arch is \(machine.arch.rawValue)")
            }
            let m = try mapping(n, field, "a mapping from policy name to expectation")
            for (k, v) in m {
                let p: IdentityMapPolicy = try choice(k, field, IdentityMapPolicy.allCases)
                scenario.expectByPolicy[p] = try expectation(v, path: Walker.join(field, p.rawValue))
            }
        }
        if let n = f.value("follow") { scenario.follow = try followGoal(n, f.field("follow")) }
        if let n = f.value("follow_timeout") {
            let t = try number(n, f.field("follow_timeout"), what: "a number of seconds")
            guard t > 0 else {
                throw fail(n, f.field("follow_timeout"), "the follow time limit must be more than 0 seconds")
            }
            scenario.followTimeoutSeconds = t
        }
        if let n = f.value("budget") {
            let b = try number(n, f.field("budget"))
            guard b > 0 else { throw fail(n, f.field("budget"), "the instruction budget must be more than 0") }
            scenario.budget = b
        }
        if let n = f.value("purgatory") {
            scenario.purgatory = try choice(n, f.field("purgatory"), PurgatoryMode.allCases)
        }
        return scenario
    }

    func machineFile(_ node: Node, field: String) throws(InputError) -> Machine {
        let given = try text(node, field, allowEmpty: false)
        let path = FixtureDecoder.resolve(given, against: base)
        let contents: String
        do throws(InputError) {
            contents = try FixtureDecoder.readText(path)
        } catch {
            throw fail(node, field, "cannot read machine file \"\(path)\": \(error.message)")
        }
        return try FixtureDecoder.decodeMachine(
            yaml: contents, file: path, baseDirectory: FixtureDecoder.directory(of: path))
    }
}
