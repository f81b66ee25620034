//! Domain isolation on a real Incus server: every flow between the machines of a
//! three-domain deployment (tests/e2e/fixtures/isolation.yml), probed from inside the
//! containers, from the host and from a network namespace that plays the outside.
//!
//! The expected reachability is computed from a small table (`MACHINES`, `POLICIES`),
//! never copied from what was observed: within a domain everything is open; between
//! domains everything is closed, in both directions, except what a policy opens (one
//! way unless `bidirectional`; `ports: [..]` opens those TCP ports only, `ports: all`
//! every protocol, ICMP included; a machine end means that address only). The host
//! reaches every machine; the machines reach the outside (NAT or not); the outside
//! opens nothing into a domain. Anti-spoofing: a1 taking a2's address does not get
//! a2's machine-targeted policy.
//!
//! Stages, each followed by the whole matrix (TCP 80 and 81 and ICMP between every
//! ordered pair of machines, host to every machine, machines to and from the outside)
//! and the spoofing check:
//! (a) a fresh `bash deploy.sh`; (b) a second one, which changes nothing; then a rule
//! added by hand to an ACL opens a flow, `anklumec diff` reports it (exit 1), the next
//! deploy.sh removes it (the flow is closed again) and diff exits 0; (c) everything
//! deleted, deployed again with `anklumec apply`; (d) one domain's instances, project
//! and bridge deleted by hand (its ACL stays), deploy.sh recreates the bridge under its
//! ACL; then that bridge taken out from under its ACL by hand (the flows open: the ACL
//! is what closed them), deploy.sh puts it back. Teardown: destroy.sh without FORCE
//! removes the ephemeral domain whole (its bridge and ACL too) and keeps the protected
//! machines, their bridges and the ACLs those still use (and they stay isolated); with
//! FORCE=1 nothing named with the test's prefix is left.
//!
//! Gate and isolation as in tests/e2e_incus.rs (tests/common): skipped without an Incus
//! server holding `anklumec-test`, a failure then under ANKLUMEC_E2E=1; the real-Incus
//! tests' lock; the prefix `isl` and the pid; zone_base 161 (subnets 10.161.0.0/24,
//! 10.171.0.0/24, 10.201.0.0/24); everything named with the prefix, the network
//! namespace and its veth pair are removed at the end, even on a panic. Traffic goes
//! only to the test's own containers, the host and the test's own network namespace
//! (198.51.100.0/30, a documentation range). The outside checks need root (`ip netns`)
//! and are skipped, saying so, without it.

mod common;
use common::{
    Run, Scope, cleanup, incus_run, kill_group, names, query, query_ok, real_incus, run_command, wait_interfaces_gone,
};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

const FIXTURE: &str = include_str!("e2e/fixtures/isolation.yml");
/// The probe script, run by busybox sh in a container, on the host or in the netns.
const PROBE: &str = include_str!("e2e/isolation-probe.sh");
/// Three letters unique to this test: its name prefix, and what cleanup looks for.
const CODE: &str = "isl";
const ZONE_BASE: u32 = 161;
/// How often a flow that looks closed is probed before it is called closed (one
/// `incus exec` in a few hundred loses its output under load). An open one is final.
const ATTEMPTS: usize = 4;
const RETRY_PAUSE: Duration = Duration::from_millis(300);
/// How long to let a network change settle (Incus flushes and re-adds the bridge
/// address on a network update).
const SETTLE: Duration = Duration::from_secs(3);
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);
/// The outside: the host's end and the network namespace's end of the veth pair.
const OUTSIDE_GATEWAY: &str = "198.51.100.1";
const OUTSIDE: &str = "198.51.100.2";

// =====================================================================================
// The expected matrix
// =====================================================================================

struct Machine {
    /// The name in infra.yml after the prefix (`@P@-a1`).
    name: &'static str,
    /// The domain after the prefix (`@P@a`).
    domain: &'static str,
    /// The last octet of its static address.
    host: u8,
}

/// The fixture's machines: admin domain `a`, trusted `w`, untrusted `s`.
const MACHINES: [Machine; 5] = [
    Machine { name: "a1", domain: "a", host: 11 },
    Machine { name: "a2", domain: "a", host: 12 },
    Machine { name: "w1", domain: "w", host: 21 },
    Machine { name: "w2", domain: "w", host: 22 },
    Machine { name: "s1", domain: "s", host: 31 },
];
const DOMAINS: [&str; 3] = ["a", "w", "s"];
const A1: usize = 0;
const A2: usize = 1;
const W1: usize = 2;
const W2: usize = 3;
const S1: usize = 4;

/// The third octet of a domain's zone (admin +0, trusted +10, untrusted +40).
fn zone(domain: &str) -> u32 {
    ZONE_BASE
        + match domain {
            "a" => 0,
            "w" => 10,
            "s" => 40,
            other => panic!("no domain {other}"),
        }
}

fn address(machine: &Machine) -> String {
    format!("10.{}.0.{}", zone(machine.domain), machine.host)
}

fn gateway(domain: &str) -> String {
    format!("10.{}.0.254", zone(domain))
}

fn label(machine: &Machine) -> String {
    format!("{} ({})", machine.name, address(machine))
}

enum End {
    Domain(&'static str),
    Machine(&'static str),
}

impl End {
    fn holds(&self, machine: &Machine) -> bool {
        match self {
            End::Domain(domain) => machine.domain == *domain,
            End::Machine(name) => machine.name == *name,
        }
    }

    fn domain(&self) -> &'static str {
        match self {
            End::Domain(domain) => domain,
            End::Machine(name) => MACHINES.iter().find(|m| m.name == *name).expect("a machine of the table").domain,
        }
    }
}

enum Allowed {
    /// `ports: [..]`, TCP (the default protocol).
    Tcp(&'static [u16]),
    /// `ports: all`: every protocol.
    All,
}

struct Policy {
    from: End,
    to: End,
    allowed: Allowed,
    bidirectional: bool,
}

/// The fixture's policies but the host one (the host is always allowed: no rule).
const POLICIES: [Policy; 3] = [
    Policy { from: End::Domain("a"), to: End::Domain("w"), allowed: Allowed::Tcp(&[80]), bidirectional: false },
    Policy { from: End::Domain("w"), to: End::Domain("s"), allowed: Allowed::All, bidirectional: true },
    Policy { from: End::Machine("a2"), to: End::Machine("w2"), allowed: Allowed::Tcp(&[81]), bidirectional: false },
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Proto {
    Tcp(u16),
    Icmp,
}

const PROTOS: [Proto; 3] = [Proto::Tcp(80), Proto::Tcp(81), Proto::Icmp];

impl Proto {
    /// The probe script's target.
    fn target(self, address: &str) -> String {
        match self {
            Proto::Tcp(port) => format!("{address}:{port}"),
            Proto::Icmp => format!("icmp:{address}"),
        }
    }

    fn describe(self) -> String {
        match self {
            Proto::Tcp(port) => format!("tcp/{port}"),
            Proto::Icmp => "icmp".to_string(),
        }
    }
}

impl Allowed {
    fn admits(&self, proto: Proto) -> bool {
        match (self, proto) {
            (Allowed::All, _) => true,
            (Allowed::Tcp(ports), Proto::Tcp(port)) => ports.contains(&port),
            (Allowed::Tcp(_), Proto::Icmp) => false,
        }
    }
}

/// Whether a connection from `src` to `dst` over `proto` is to succeed.
fn expected_open(src: &Machine, dst: &Machine, proto: Proto) -> bool {
    src.domain == dst.domain
        || POLICIES.iter().any(|policy| {
            policy.allowed.admits(proto)
                && ((policy.from.holds(src) && policy.to.holds(dst))
                    || (policy.bidirectional && policy.from.holds(dst) && policy.to.holds(src)))
        })
}

/// How many ingress rules a domain's ACL has: its own subnet's, plus one per policy
/// (and direction) that reaches it.
fn expected_rules(domain: &str) -> usize {
    1 + POLICIES
        .iter()
        .map(|p| usize::from(p.to.domain() == domain) + usize::from(p.bidirectional && p.from.domain() == domain))
        .sum::<usize>()
}

// =====================================================================================
// The world
// =====================================================================================

struct World {
    prefix: String,
    dir: tempfile::TempDir,
    _scope: Scope,
}

impl World {
    fn project(&self, domain: &str) -> String {
        format!("{}{domain}", self.prefix)
    }

    fn bridge(&self, domain: &str) -> String {
        format!("net-{}{domain}", self.prefix)
    }

    fn instance(&self, machine: &Machine) -> String {
        format!("{}-{}", self.prefix, machine.name)
    }

    fn netns(&self) -> String {
        format!("{}-out", self.prefix)
    }

    fn anklumec(&self, args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_anklumec"));
        command.args(args).current_dir(self.dir.path());
        run_command(command, SCRIPT_TIMEOUT).unwrap_or_else(|e| panic!("anklumec {args:?}: {e}"))
    }

    fn bash(&self, script: &str, env: &[(&str, &str)]) -> Run {
        let mut command = Command::new("bash");
        command.arg(script).envs(env.iter().copied()).current_dir(self.dir.path());
        run_command(command, SCRIPT_TIMEOUT).unwrap_or_else(|e| panic!("bash {script}: {e}"))
    }

    /// `bash deploy.sh`, which must succeed; its output. After Incus 6.0.4's bridge
    /// race (see `incus_race`) it is run again, as deploy.sh is meant to be.
    fn deploy_sh(&self, stage: &str) -> Run {
        let mut run = self.bash("deploy.sh", &[]);
        if !run.ok() && incus_race(&run) {
            eprintln!("{stage}: Incus bridge race (not a deploy.sh bug), running deploy.sh again:\n{}", run.stderr);
            run = self.bash("deploy.sh", &[]);
        }
        assert!(run.ok(), "{stage}: deploy.sh failed\n{}", run.describe());
        eprintln!("{stage}: deploy.sh: {} in {:.1?}", run.summary().unwrap_or("no summary"), run.elapsed);
        run
    }

    /// `anklumec diff infra.yml`: its exit status and output.
    fn diff(&self) -> (Option<i32>, String) {
        let run = self.anklumec(&["diff", "infra.yml"]);
        (run.status.code(), format!("{}{}", run.stdout, run.stderr))
    }

    fn exec_ok(&self, machine: &Machine, script: &str) {
        let (instance, project) = (self.instance(machine), self.project(machine.domain));
        let run = incus_run(&["exec", &instance, "--project", &project, "--", "sh", "-c", script]);
        assert!(run.ok(), "incus exec {instance} -- sh -c '{script}' failed:\n{}", run.describe());
    }

    /// What is left named with the prefix: projects, networks, ACLs, host interfaces.
    fn leftovers(&self) -> Vec<String> {
        let bridge_prefix = format!("net-{}", self.prefix);
        let mut left = Vec::new();
        for project in names(&query_ok("/1.0/projects")) {
            if project.starts_with(&self.prefix) {
                left.push(format!("project {project}"));
            }
        }
        for network in names(&query_ok("/1.0/networks")) {
            if network.starts_with(&bridge_prefix) {
                left.push(format!("network {network}"));
            }
        }
        for acl in names(&query_ok("/1.0/network-acls")) {
            if acl.starts_with(&bridge_prefix) {
                left.push(format!("network ACL {acl}"));
            }
        }
        for entry in fs::read_dir("/sys/class/net").into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(&bridge_prefix) {
                left.push(format!("host interface {name}"));
            }
        }
        left
    }
}

/// A failure of Incus 6.0.4 itself: creating or deleting a bridge fails when a veth on
/// the host is torn down meanwhile. A rerun gets past it.
fn incus_race(run: &Run) -> bool {
    let text = format!("{}{}", run.stdout, run.stderr);
    text.contains("Failed to delete bridge children interfaces")
}

fn incus_ok(args: &[&str]) -> Run {
    let run = incus_run(args);
    assert!(run.ok(), "incus {} failed:\n{}", args.join(" "), run.describe());
    run
}

/// Run a host command; it must succeed.
fn host_ok(args: &[&str]) -> Run {
    let mut command = Command::new(args[0]);
    command.args(&args[1..]);
    let run = run_command(command, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(run.ok(), "{} failed:\n{}", args.join(" "), run.describe());
    run
}

/// Run a host command, whatever comes of it (for cleanup).
fn host_quiet(args: &[&str]) -> String {
    let mut command = Command::new(args[0]);
    command.args(&args[1..]);
    run_command(command, Duration::from_secs(30)).map(|run| run.stdout).unwrap_or_default()
}

// =====================================================================================
// Probes
// =====================================================================================

/// Where a probe runs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Vantage {
    Machine(usize),
    Host,
    Outside,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Open,
    Closed,
    /// Every attempt lost its output.
    NoAnswer,
}

fn probe_command(world: &World, vantage: &Vantage, targets: &[String]) -> Command {
    let mut command;
    match vantage {
        Vantage::Machine(index) => {
            let machine = &MACHINES[*index];
            command = Command::new(real_incus().expect("incus on PATH"));
            command.args(["exec", &world.instance(machine), "--project", &world.project(machine.domain), "--"]);
            command.args(["sh", "-c", PROBE, "probe"]);
        }
        Vantage::Host => {
            command = Command::new("busybox");
            command.args(["sh", "-c", PROBE, "probe"]);
        }
        Vantage::Outside => {
            command = Command::new("ip");
            command.args(["netns", "exec", &world.netns(), "busybox", "sh", "-c", PROBE, "probe"]);
        }
    }
    command.args(targets);
    command
}

/// One run of the probe script: what it said of each target (a target it said
/// nothing of is missing).
fn probe_once(world: &World, vantage: &Vantage, targets: &[String]) -> BTreeMap<String, bool> {
    let Ok(run) = run_command(probe_command(world, vantage, targets), PROBE_TIMEOUT) else {
        return BTreeMap::new();
    };
    run.stdout
        .lines()
        .filter_map(|line| match line.split_once(' ')? {
            ("open", target) => Some((target.to_string(), true)),
            ("closed", target) => Some((target.to_string(), false)),
            _ => None,
        })
        .filter(|(target, _)| targets.contains(target))
        .collect()
}

/// Probe every target; one that is not seen open is probed again, up to ATTEMPTS
/// times in all.
fn probe(world: &World, vantage: &Vantage, targets: &[String]) -> BTreeMap<String, Seen> {
    let mut seen: BTreeMap<String, Seen> = targets.iter().map(|t| (t.clone(), Seen::NoAnswer)).collect();
    for attempt in 0..ATTEMPTS {
        let pending: Vec<String> = seen.iter().filter(|(_, s)| **s != Seen::Open).map(|(t, _)| t.clone()).collect();
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            sleep(RETRY_PAUSE);
        }
        for (target, open) in probe_once(world, vantage, &pending) {
            seen.insert(target, if open { Seen::Open } else { Seen::Closed });
        }
    }
    seen
}

/// One flow to check: from a vantage point to a target, expected open or closed.
struct Flow {
    vantage: Vantage,
    from: String,
    to: String,
    target: String,
    open: bool,
}

impl Flow {
    fn between(src: usize, dst: usize, proto: Proto) -> Flow {
        let (s, d) = (&MACHINES[src], &MACHINES[dst]);
        Flow {
            vantage: Vantage::Machine(src),
            from: label(s),
            to: format!("{} {}", label(d), proto.describe()),
            target: proto.target(&address(d)),
            open: expected_open(s, d, proto),
        }
    }
}

/// Probe every flow (each vantage point on its own thread, its targets at once);
/// the flows that are not as expected, described.
fn verify(world: &World, stage: &str, flows: &[Flow]) -> Vec<String> {
    let started = Instant::now();
    let mut by_vantage: BTreeMap<Vantage, Vec<String>> = BTreeMap::new();
    for flow in flows {
        let targets = by_vantage.entry(flow.vantage.clone()).or_default();
        if !targets.contains(&flow.target) {
            targets.push(flow.target.clone());
        }
    }
    let results: BTreeMap<Vantage, BTreeMap<String, Seen>> = std::thread::scope(|scope| {
        let running: Vec<_> = by_vantage
            .iter()
            .map(|(vantage, targets)| (vantage.clone(), scope.spawn(move || probe(world, vantage, targets))))
            .collect();
        running.into_iter().map(|(vantage, thread)| (vantage, thread.join().expect("a probe thread"))).collect()
    });
    let mut wrong = Vec::new();
    for flow in flows {
        let seen = results[&flow.vantage][&flow.target];
        if (seen == Seen::Open) != flow.open {
            let expected = if flow.open { "open" } else { "closed" };
            let seen = match seen {
                Seen::Open => "open".to_string(),
                Seen::Closed => format!("closed (in {ATTEMPTS} attempts)"),
                Seen::NoAnswer => format!("no answer (in {ATTEMPTS} attempts)"),
            };
            wrong.push(format!("  {} -> {}: expected {expected}, seen {seen}", flow.from, flow.to));
        }
    }
    let open = flows.iter().filter(|f| f.open).count();
    eprintln!(
        "{stage}: {} flows ({open} expected open, {} expected closed) probed in {:.1?}: {} not as expected",
        flows.len(),
        flows.len() - open,
        started.elapsed(),
        wrong.len()
    );
    wrong
}

fn check(world: &World, stage: &str, flows: &[Flow]) {
    let wrong = verify(world, stage, flows);
    assert!(
        wrong.is_empty(),
        "{stage}: {} of {} flows are not as expected:\n{}",
        wrong.len(),
        flows.len(),
        wrong.join("\n")
    );
}

/// Every flow: between every ordered pair of machines over TCP 80, TCP 81 and ICMP;
/// from the host to every machine; with the outside, from every machine to it and
/// from it to every machine.
fn matrix(outside: bool) -> Vec<Flow> {
    let mut flows = Vec::new();
    for src in 0..MACHINES.len() {
        for dst in (0..MACHINES.len()).filter(|dst| *dst != src) {
            flows.extend(PROTOS.iter().map(|proto| Flow::between(src, dst, *proto)));
        }
    }
    for machine in &MACHINES {
        for proto in PROTOS {
            flows.push(Flow {
                vantage: Vantage::Host,
                from: "the host".to_string(),
                to: format!("{} {}", label(machine), proto.describe()),
                target: proto.target(&address(machine)),
                open: true,
            });
        }
    }
    if outside {
        for (index, machine) in MACHINES.iter().enumerate() {
            flows.push(Flow {
                vantage: Vantage::Machine(index),
                from: label(machine),
                to: format!("the outside ({OUTSIDE}) tcp/80"),
                target: Proto::Tcp(80).target(OUTSIDE),
                open: true,
            });
            for proto in PROTOS {
                flows.push(Flow {
                    vantage: Vantage::Outside,
                    from: format!("the outside ({OUTSIDE})"),
                    to: format!("{} {}", label(machine), proto.describe()),
                    target: proto.target(&address(machine)),
                    open: false,
                });
            }
        }
    }
    flows
}

/// a1 takes a2's address: the policy that admits a2 alone does not admit it (nor
/// does anything else: its NIC drops whatever it sends from an address not its own).
/// Its address is restored before any assertion, then checked to work again.
fn spoof_check(world: &World, stage: &str) {
    let (a1, a2, w2) = (&MACHINES[A1], &MACHINES[A2], &MACHINES[W2]);
    let route = gateway(a1.domain);
    world.exec_ok(
        a1,
        &format!(
            "ip addr flush dev eth0 && ip addr add {}/24 dev eth0 && ip route add default via {route}",
            address(a2)
        ),
    );
    let posing = format!("a1 posing as a2 ({})", address(a2));
    let flows: Vec<Flow> = [Proto::Tcp(81), Proto::Tcp(80)]
        .into_iter()
        .map(|proto| Flow {
            vantage: Vantage::Machine(A1),
            from: posing.clone(),
            to: format!("{} {}", label(w2), proto.describe()),
            target: proto.target(&address(w2)),
            open: false,
        })
        .collect();
    let wrong = verify(world, &format!("{stage}, a1 spoofing a2"), &flows);
    world.exec_ok(
        a1,
        &format!(
            "ip addr flush dev eth0 && ip addr add {}/24 dev eth0 && ip route add default via {route}",
            address(a1)
        ),
    );
    assert!(wrong.is_empty(), "{stage}: anti-spoofing:\n{}", wrong.join("\n"));
    // Back to its own address, a1 is reached and reaches as before, and a2 still gets
    // its policy.
    let restored = [
        Flow::between(A1, W1, Proto::Tcp(80)),
        Flow::between(A2, A1, Proto::Tcp(81)),
        Flow::between(A2, W2, Proto::Tcp(81)),
    ];
    check(world, &format!("{stage}, a1 restored"), &restored);
}

fn full_check(world: &World, stage: &str, outside: bool) {
    check(world, stage, &matrix(outside));
    spoof_check(world, stage);
}

/// After a deploy: every machine shows its address, runs its two web servers, and the
/// host (always allowed) reaches them.
fn wait_ready(world: &World, stage: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    for machine in &MACHINES {
        let (instance, project) = (world.instance(machine), world.project(machine.domain));
        let shown = format!("{} (eth0)", address(machine));
        loop {
            let run = incus_run(&["list", &instance, "--project", &project, "-c", "4", "-f", "csv"]);
            if run.ok() && run.stdout.contains(&shown) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{stage}: {instance} does not show {shown} after 90 s:\n{}",
                run.describe()
            );
            sleep(Duration::from_millis(300));
        }
    }
    for machine in &MACHINES {
        // Each httpd daemonizes; one already running makes the next fail to bind.
        world.exec_ok(
            machine,
            &format!(
                "mkdir -p /srv/www && echo {} >/srv/www/index.html; busybox httpd -p 80 -h /srv/www 2>/dev/null; busybox httpd -p 81 -h /srv/www 2>/dev/null; true",
                machine.name
            ),
        );
    }
    let targets: Vec<String> =
        MACHINES.iter().flat_map(|m| [Proto::Tcp(80), Proto::Tcp(81)].map(|proto| proto.target(&address(m)))).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answers = probe_once(world, &Vantage::Host, &targets);
        let closed: Vec<&String> = targets.iter().filter(|t| answers.get(*t) != Some(&true)).collect();
        if closed.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{stage}: 30 s after the deploy the host still cannot reach {closed:?} (the host is always allowed)"
        );
        sleep(Duration::from_millis(500));
    }
}

/// Each bridge is under its ACL (ingress drop, egress allow), the ACL has the rules
/// the table predicts, and the domain's NICs filter MAC and addresses.
fn assert_isolated(world: &World, stage: &str, domains: &[&str]) {
    for domain in domains {
        let bridge = world.bridge(domain);
        let config = &query_ok(&format!("/1.0/networks/{bridge}"))["config"];
        let keys = ["security.acls", "security.acls.default.ingress.action", "security.acls.default.egress.action"]
            .map(|key| config[key].as_str().unwrap_or("(unset)").to_string());
        assert_eq!(keys, [bridge.as_str(), "drop", "allow"], "{stage}: bridge {bridge} is not under its ACL: {config}");
        let acl =
            query(&format!("/1.0/network-acls/{bridge}")).unwrap_or_else(|e| panic!("{stage}: ACL {bridge}: {e}"));
        let ingress = acl["ingress"].as_array().map_or(0, Vec::len);
        assert_eq!(ingress, expected_rules(domain), "{stage}: ingress rules of {bridge}: {acl}");
        assert_eq!(acl["egress"].as_array().map_or(0, Vec::len), 0, "{stage}: egress rules of {bridge}: {acl}");
        let profile = query_ok(&format!("/1.0/profiles/default?project={}", world.project(domain)));
        let eth0 = &profile["devices"]["eth0"];
        for key in ["security.mac_filtering", "security.ipv4_filtering", "security.ipv6_filtering"] {
            assert_eq!(
                eth0[key],
                "true",
                "{stage}: {key} of eth0 in {}'s default profile: {eth0}",
                world.project(domain)
            );
        }
    }
}

// =====================================================================================
// The outside: a network namespace of the test's own
// =====================================================================================

/// A network namespace joined to the host by a veth pair (host 198.51.100.1/30,
/// namespace 198.51.100.2/30), with a web server on port 80. Dropping it stops the
/// server and removes the namespace and the pair.
struct Outside {
    netns: String,
    veth: String,
    httpd: Option<Child>,
}

impl Outside {
    fn create(world: &World) -> Outside {
        let netns = world.netns();
        let veth = format!("{}o", world.prefix);
        let peer = format!("{}i", world.prefix);
        let www = world.dir.path().join("www");
        fs::create_dir_all(&www).expect("the outside's web root");
        fs::write(www.join("index.html"), "outside\n").expect("index.html");
        let mut outside = Outside { netns: netns.clone(), veth: veth.clone(), httpd: None };
        host_ok(&["ip", "netns", "add", &netns]);
        host_ok(&["ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer, "netns", &netns]);
        host_ok(&["ip", "addr", "add", &format!("{OUTSIDE_GATEWAY}/30"), "dev", &veth]);
        host_ok(&["ip", "link", "set", &veth, "up"]);
        host_ok(&["ip", "netns", "exec", &netns, "ip", "addr", "add", &format!("{OUTSIDE}/30"), "dev", &peer]);
        host_ok(&["ip", "netns", "exec", &netns, "ip", "link", "set", &peer, "up"]);
        host_ok(&["ip", "netns", "exec", &netns, "ip", "link", "set", "lo", "up"]);
        let httpd = Command::new("ip")
            .args(["netns", "exec", &netns, "busybox", "httpd", "-f", "-p", "80", "-h"])
            .arg(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("busybox httpd in the namespace");
        outside.httpd = Some(httpd);
        let target = [Proto::Tcp(80).target(OUTSIDE)];
        let deadline = Instant::now() + Duration::from_secs(10);
        while probe_once(world, &Vantage::Host, &target).get(&target[0]) != Some(&true) {
            assert!(Instant::now() < deadline, "the host cannot reach the outside's web server {OUTSIDE}:80");
            sleep(Duration::from_millis(200));
        }
        outside
    }

    /// A route back to the domains: from now on the outside can answer (and try) any
    /// address in 10.0.0.0/8, through the host.
    fn route_back(&self) {
        host_ok(&["ip", "netns", "exec", &self.netns, "ip", "route", "add", "10.0.0.0/8", "via", OUTSIDE_GATEWAY]);
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        if let Some(mut httpd) = self.httpd.take() {
            kill_group(httpd.id());
            let _ = httpd.wait();
        }
        host_quiet(&["ip", "netns", "del", &self.netns]);
        if Path::new("/sys/class/net").join(&self.veth).exists() {
            host_quiet(&["ip", "link", "del", &self.veth]);
        }
    }
}

/// What a killed earlier run of this test left: its namespaces (and the servers in
/// them, which this test started) and veths.
fn remove_stale_outsides() {
    for line in host_quiet(&["ip", "netns", "list"]).lines() {
        let Some(name) = line.split_whitespace().next() else { continue };
        if name.starts_with(CODE) && name.ends_with("-out") {
            for pid in host_quiet(&["ip", "netns", "pids", name]).split_whitespace() {
                host_quiet(&["kill", "-KILL", pid]);
            }
            host_quiet(&["ip", "netns", "del", name]);
        }
    }
    for entry in fs::read_dir("/sys/class/net").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(CODE) && name.len() == CODE.len() + 4 && name.ends_with('o') {
            host_quiet(&["ip", "link", "del", &name]);
        }
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

// =====================================================================================
// The test
// =====================================================================================

#[test]
fn isolation_matrix_holds_through_deploy_apply_drift_and_teardown() {
    let started = Instant::now();
    let Some(scope) = Scope::enter("isolation_incus", CODE) else { return };
    let prefix = scope.prefix.clone();
    let dir = tempfile::Builder::new().prefix(&format!("anklumec-{prefix}-")).tempdir().expect("temp dir");
    let world = World { prefix: prefix.clone(), dir, _scope: scope };
    let root = is_root();
    if root {
        remove_stale_outsides();
    } else {
        eprintln!("SKIPPED the outside checks: they need root (ip netns)");
    }
    // The test's subnets are not on the host already (a manual setup, another test).
    let host_addresses = host_ok(&["ip", "-br", "-4", "addr"]).stdout;
    for subnet in DOMAINS.map(|d| format!("10.{}.0.", zone(d))).into_iter().chain(root.then(|| "198.51.100.".into())) {
        assert!(
            !host_addresses.contains(&subnet),
            "a host interface already has an address in {subnet}0/24:\n{host_addresses}"
        );
    }
    eprintln!("isolation_incus: prefix {prefix}, zone_base {ZONE_BASE}, dir {}", world.dir.path().display());

    // The fixture, compiled by the binary: deploy.sh and destroy.sh.
    let infra = FIXTURE
        .replace("@P@", &prefix)
        .replace("@ZT@", &zone("w").to_string())
        .replace("@ZU@", &zone("s").to_string())
        .replace("@Z@", &zone("a").to_string());
    fs::write(world.dir.path().join("infra.yml"), &infra).expect("write infra.yml");
    let compiled = world.anklumec(&["infra.yml", "-o", "deploy.sh"]);
    assert!(compiled.ok(), "compile:\n{}", compiled.describe());
    assert!(compiled.stderr.contains("N0004"), "the host policy draws note N0004:\n{}", compiled.stderr);
    let compiled = world.anklumec(&["infra.yml", "--emit", "destroy", "-o", "destroy.sh"]);
    assert!(compiled.ok(), "compile destroy.sh:\n{}", compiled.describe());

    // (a) A fresh deploy.sh.
    let stage = "(a) fresh deploy.sh";
    let run = world.deploy_sh(stage);
    for domain in DOMAINS {
        let line = format!("created   network ACL {}", world.bridge(domain));
        assert!(run.stdout.contains(&line), "{stage}: no `{line}`:\n{}", run.stdout);
    }
    wait_ready(&world, stage);
    assert_isolated(&world, stage, &DOMAINS);
    let outside = root.then(|| {
        // Before the outside has a route back: only a masqueraded connection (s1's,
        // from 198.51.100.1) gets an answer.
        let outside = Outside::create(&world);
        let to_outside = |index: usize, open: bool| Flow {
            vantage: Vantage::Machine(index),
            from: label(&MACHINES[index]),
            to: format!("the outside ({OUTSIDE}) tcp/80, which has no route back to the domains"),
            target: Proto::Tcp(80).target(OUTSIDE),
            open,
        };
        check(&world, &format!("{stage}, NAT"), &[to_outside(S1, true), to_outside(A1, false), to_outside(W1, false)]);
        outside.route_back();
        outside
    });
    let with_outside = outside.is_some();
    full_check(&world, stage, with_outside);

    // (b) A second deploy.sh changes nothing.
    let stage = "(b) deploy.sh again";
    let run = world.deploy_sh(stage);
    let summary = run.summary().unwrap_or_default();
    assert!(summary.starts_with("0 created, 0 changed, "), "{stage}: {summary}\n{}", run.stdout);
    assert!(!run.stdout.lines().any(|l| l.starts_with("started")), "{stage}: restarted something:\n{}", run.stdout);
    full_check(&world, stage, with_outside);

    // A rule added by hand: it opens a1 -> w1:81; diff reports it; deploy.sh removes it.
    let stage = "a rule added by hand";
    let (bridge_w, a1, w1) = (world.bridge("w"), &MACHINES[A1], &MACHINES[W1]);
    let (status, text) = world.diff();
    assert_eq!(status, Some(0), "{stage}: diff before the change:\n{text}");
    incus_ok(&[
        "network",
        "acl",
        "rule",
        "add",
        &bridge_w,
        "ingress",
        "action=allow",
        &format!("source={}", address(a1)),
    ]);
    sleep(SETTLE);
    let opened = Flow {
        vantage: Vantage::Machine(A1),
        from: label(a1),
        to: format!("{} tcp/81, which the hand-added rule opens", label(w1)),
        target: Proto::Tcp(81).target(&address(w1)),
        open: true,
    };
    check(&world, stage, &[opened]);
    let (status, text) = world.diff();
    assert_eq!(status, Some(1), "{stage}: diff exits 1 on drift:\n{text}");
    assert!(text.contains(&bridge_w), "{stage}: diff names the ACL {bridge_w}:\n{text}");
    let run = world.deploy_sh(stage);
    let summary = run.summary().unwrap_or_default();
    assert!(summary.starts_with("0 created, 1 changed, "), "{stage}: {summary}\n{}", run.stdout);
    let line = format!("changed   network ACL {bridge_w}");
    assert!(run.stdout.contains(&line), "{stage}: no `{line}`:\n{}", run.stdout);
    sleep(SETTLE);
    assert!(!expected_open(a1, w1, Proto::Tcp(81)), "the table closes a1 -> w1:81");
    check(&world, &format!("{stage}, then deploy.sh"), &[Flow::between(A1, W1, Proto::Tcp(81))]);
    let (status, text) = world.diff();
    assert_eq!(status, Some(0), "{stage}: diff after deploy.sh:\n{text}");
    full_check(&world, &format!("{stage}, then deploy.sh"), with_outside);

    // (c) Everything deleted, deployed again by the runner.
    let stage = "(c) anklumec apply from nothing";
    let errors = cleanup(&prefix);
    assert!(errors.is_empty(), "{stage}: cleanup: {}", errors.join("\n"));
    assert_eq!(world.leftovers(), Vec::<String>::new(), "{stage}: left after cleanup");
    // No retry: the runner changes one bridge at a time (src/run/serial.rs).
    let run = world.anklumec(&["apply", "infra.yml"]);
    assert!(run.ok(), "{stage}: anklumec apply failed:\n{}", run.describe());
    eprintln!("{stage}: {} in {:.1?}", run.stdout.lines().last().unwrap_or_default(), run.elapsed);
    wait_ready(&world, stage);
    assert_isolated(&world, stage, &DOMAINS);
    let (status, text) = world.diff();
    assert_eq!(status, Some(0), "{stage}: diff after apply:\n{text}");
    full_check(&world, stage, with_outside);

    // (d) The untrusted domain's instance, project and bridge deleted by hand (Incus
    // refuses to delete a bridge that a profile or instance uses); its ACL stays.
    let stage = "(d) a bridge deleted by hand, then deploy.sh";
    let s1 = &MACHINES[S1];
    let (project_s, bridge_s, instance_s) = (world.project("s"), world.bridge("s"), world.instance(s1));
    let live = query_ok(&format!("/1.0/instances/{instance_s}?project={project_s}"));
    let veth: Vec<String> =
        live["config"]["volatile.eth0.host_name"].as_str().map(str::to_string).into_iter().collect();
    incus_ok(&["config", "unset", &instance_s, "security.protection.delete", "--project", &project_s]);
    incus_ok(&["delete", "--force", &instance_s, "--project", &project_s]);
    incus_ok(&["project", "delete", &project_s]);
    let mut errors = Vec::new();
    wait_interfaces_gone(&veth, &mut errors);
    assert!(errors.is_empty(), "{stage}: {}", errors.join("\n"));
    let mut deleted = incus_run(&["network", "delete", &bridge_s]);
    for _ in 0..5 {
        if deleted.ok() {
            break;
        }
        sleep(Duration::from_millis(500));
        deleted = incus_run(&["network", "delete", &bridge_s]);
    }
    assert!(deleted.ok(), "{stage}: incus network delete {bridge_s}:\n{}", deleted.describe());
    assert!(query(&format!("/1.0/network-acls/{bridge_s}")).is_ok(), "{stage}: the ACL stays when its bridge goes");
    let run = world.deploy_sh(stage);
    for line in [format!("created   network {bridge_s}"), format!("created   instance {project_s}/{instance_s}")] {
        assert!(run.stdout.contains(&line), "{stage}: no `{line}`:\n{}", run.stdout);
    }
    sleep(SETTLE);
    wait_ready(&world, stage);
    assert_isolated(&world, stage, &DOMAINS);
    full_check(&world, stage, with_outside);

    // The same bridge taken out from under its ACL by hand: what the ACL closed opens
    // (so the ACL, nothing else, closed it); deploy.sh puts the bridge back under it.
    let stage = "(d) a bridge taken out from under its ACL by hand";
    incus_ok(&[
        "network",
        "set",
        &bridge_s,
        "security.acls=",
        "security.acls.default.ingress.action=",
        "security.acls.default.egress.action=",
    ]);
    sleep(SETTLE);
    let config = &query_ok(&format!("/1.0/networks/{bridge_s}"))["config"];
    assert!(config.get("security.acls").is_none(), "{stage}: security.acls is still set: {config}");
    let mut opened = vec![Flow {
        vantage: Vantage::Machine(A1),
        from: label(a1),
        to: format!("{} tcp/80, with no ACL on its bridge", label(s1)),
        target: Proto::Tcp(80).target(&address(s1)),
        open: true,
    }];
    if with_outside {
        opened.push(Flow {
            vantage: Vantage::Outside,
            from: format!("the outside ({OUTSIDE})"),
            to: format!("{} tcp/80, with no ACL on its bridge", label(s1)),
            target: Proto::Tcp(80).target(&address(s1)),
            open: true,
        });
    }
    check(&world, stage, &opened);
    let (status, text) = world.diff();
    assert_eq!(status, Some(1), "{stage}: diff exits 1 on drift:\n{text}");
    assert!(text.contains(&bridge_s), "{stage}: diff names {bridge_s}:\n{text}");
    let run = world.deploy_sh(stage);
    let line = format!("changed   network {bridge_s}");
    assert!(run.stdout.contains(&line), "{stage}: no `{line}`:\n{}", run.stdout);
    sleep(SETTLE);
    wait_ready(&world, stage);
    assert_isolated(&world, stage, &DOMAINS);
    let (status, text) = world.diff();
    assert_eq!(status, Some(0), "{stage}: diff after deploy.sh:\n{text}");
    full_check(&world, &format!("{stage}, then deploy.sh"), with_outside);

    // Teardown without FORCE: the ephemeral domain w goes whole, its ACL after its
    // bridge; the protected machines stay, with their bridges and the ACLs these use.
    let stage = "destroy.sh without FORCE";
    let run = world.bash("destroy.sh", &[]);
    assert!(run.ok(), "{stage}: destroy.sh failed:\n{}", run.describe());
    let out = &run.stdout;
    let mut expected_lines = Vec::new();
    for machine in &MACHINES {
        let (project, instance) = (world.project(machine.domain), world.instance(machine));
        expected_lines.push(match machine.domain {
            "w" => format!("removed   instance {project}/{instance}"),
            _ => format!("kept      instance {project}/{instance} (protected"),
        });
    }
    expected_lines.push(format!("removed   project {}", world.project("w")));
    expected_lines.push(format!("removed   network {bridge_w}"));
    expected_lines.push(format!("removed   network ACL {bridge_w}"));
    for domain in ["a", "s"] {
        let bridge = world.bridge(domain);
        expected_lines.push(format!("kept      network {bridge} (still in use)"));
        expected_lines.push(format!("kept      network ACL {bridge} (still used by networks/{bridge}"));
    }
    for line in &expected_lines {
        assert!(out.contains(line.as_str()), "{stage}: no `{line}`:\n{out}");
    }
    assert!(query(&format!("/1.0/network-acls/{bridge_w}")).is_err(), "{stage}: ACL {bridge_w} is gone");
    assert!(query(&format!("/1.0/networks/{bridge_w}")).is_err(), "{stage}: bridge {bridge_w} is gone");
    assert_isolated(&world, stage, &["a", "s"]);
    // The kept machines stay isolated from one another's domains.
    let kept = [A1, A2, S1];
    let mut flows = Vec::new();
    for src in kept {
        for dst in kept.into_iter().filter(|dst| *dst != src) {
            flows.push(Flow::between(src, dst, Proto::Tcp(80)));
        }
    }
    check(&world, &format!("{stage}, the kept machines"), &flows);

    // FORCE=1: nothing named with the prefix is left.
    let stage = "FORCE=1 destroy.sh";
    let run = world.bash("destroy.sh", &[("FORCE", "1")]);
    assert!(run.ok(), "{stage}: destroy.sh failed:\n{}", run.describe());
    for line in [format!("removed   network ACL {}", world.bridge("a")), format!("removed   network ACL {bridge_s}")] {
        assert!(run.stdout.contains(&line), "{stage}: no `{line}`:\n{}", run.stdout);
    }
    assert_eq!(world.leftovers(), Vec::<String>::new(), "{stage}: left behind");
    drop(outside);
    if root {
        let namespaces = host_quiet(&["ip", "netns", "list"]);
        assert!(!namespaces.contains(&world.netns()), "the namespace is gone: {namespaces}");
        assert!(!Path::new("/sys/class/net").join(format!("{prefix}o")).exists(), "the veth is gone");
    }
    eprintln!("isolation_incus: passed in {:.1?}", started.elapsed());
}
