//! Client hosts in network namespaces, for tests that need clients on distinct real addresses
//! (the per-address rules) or behind a lossy link. Each `Host` is a namespace joined to the
//! root namespace, where the proxy and the workers run, by a veth pair with a /30 of its own;
//! dropping the host deletes the namespace, and its veth pair goes with it.
//!
//! Made with iproute2 as root. Where that cannot be done a test calls `skip`, which prints one
//! line to stderr ("netns: skipped: <reason>"), or fails when STREAMQ_REQUIRE_NETNS=1 (CI sets
//! it, so CI cannot skip silently).

use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use super::tun_link;

/// The /30 subnets of the hosts come from 10.213.0.0/16. Which are free is decided under a
/// file lock by looking at the root namespace's addresses, so test threads and concurrent
/// test processes never share one.
const POOL: [u8; 2] = [10, 213];
const POOL_LOCK: &str = "/tmp/streamq-netns.lock";
/// Namespace names start with this, then the test process's pid (see `remove_stale`).
const NS_PREFIX: &str = "sqp-";

static NEXT_HOST: AtomicUsize = AtomicUsize::new(0);

/// A test that cannot make its namespaces says why and returns; with STREAMQ_REQUIRE_NETNS=1
/// it fails instead.
pub fn skip(reason: &str) {
    if std::env::var("STREAMQ_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("netns: required by STREAMQ_REQUIRE_NETNS=1, but: {reason}");
    }
    // Straight to the stderr handle, not eprintln!: the test harness captures the macros'
    // output of passing tests, and a skip must show in a plain `cargo test` run.
    note(&format!("skipped: {reason}"));
}

/// A line about the namespaces a test made (how its lossy link is made), shown in a plain
/// `cargo test` run.
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "netns: {text}");
}

/// One host per label, or None after `skip` said why they cannot be made.
pub fn hosts_or_skip(labels: &[&str]) -> Option<Vec<Host>> {
    match labels.iter().map(|l| Host::new(l)).collect() {
        Ok(hosts) => Some(hosts),
        Err(reason) => {
            skip(&reason);
            None
        }
    }
}

/// Runs `ip ARGS`; the error says what failed and why.
pub fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

/// Runs a system command; the error names it and quotes its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program} (iproute2): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace with a veth link to the root namespace.
pub struct Host {
    /// The namespace's name (`sqp-<pid>-<n>-<label>`).
    pub name: String,
    /// The host's address, in the namespace: what the proxy sees as the client's address.
    pub addr: Ipv4Addr,
    /// The root namespace's end of the link (the host's default route). The proxy may listen
    /// here; the other hosts reach it too, through their own links.
    pub gateway: Ipv4Addr,
    /// The veth interface in the root namespace, and its peer in the host's namespace.
    pub root_if: String,
    pub host_if: String,
    /// The user-space link of a lossy host on a kernel without netem.
    link: Option<tun_link::TunLink>,
}

impl Host {
    /// Makes the namespace and its veth link; the error says why it could not.
    pub fn new(label: &str) -> Result<Host, String> {
        let host = Host::namespace(label)?;
        let _lock = PoolLock::take()?;
        let (gateway, addr) = free_subnet()?;
        let (ns, rif, hif) = (&host.name, &host.root_if, &host.host_if);
        ip(&[
            "link", "add", rif, "type", "veth", "peer", "name", hif, "netns", ns,
        ])?;
        host.configure(gateway, addr, "/30")
    }

    /// A host whose link delays each packet by `delay_ms` and loses `loss_pct` percent of
    /// them, both ways: `tc netem` on both ends of its veth link, or, where this kernel has
    /// no netem, the same made in user space over TUN devices (tun_link.rs); the second
    /// value says which, and why.
    pub fn lossy(label: &str, delay_ms: u32, loss_pct: f64) -> Result<(Host, String), String> {
        let host = Host::new(label)?;
        let (delay, loss) = (format!("{delay_ms}ms"), format!("{loss_pct}%"));
        let netem = |dev| {
            [
                "qdisc", "add", "dev", dev, "root", "netem", "delay", &delay, "loss", &loss,
            ]
        };
        let mut in_host = vec!["-n", host.name.as_str()];
        in_host.extend(netem(&host.host_if));
        let netem_failed = match run("tc", &netem(&host.root_if)).and_then(|_| run("tc", &in_host))
        {
            Ok(_) => {
                return Ok((
                    host,
                    format!("tc netem delay {delay} loss {loss} on both ends"),
                ))
            }
            Err(e) if e.contains("Specified qdisc kind is unknown") => format!(
                "{e} (this kernel has no sch_netem: CONFIG_NET_SCH_NETEM is off, or its module \
                 cannot be loaded)"
            ),
            Err(e) => e,
        };
        // No netem: the veth pair goes (deleting one end deletes both) and a TUN link with
        // the same delay and loss takes its place.
        ip(&["link", "del", &host.root_if])?;
        let mut host = host;
        let root_tun = tun_link::open_tun(&host.root_if)?;
        let name = host.host_if.clone();
        let host_tun = host.in_ns(move || tun_link::open_tun(&name))?;
        host.link = Some(tun_link::TunLink::start(
            root_tun,
            host_tun,
            Duration::from_millis(delay_ms.into()),
            loss_pct / 100.0,
        )?);
        let _lock = PoolLock::take()?;
        let (gateway, addr) = free_subnet()?;
        let host = host.configure(gateway, addr, "")?;
        let how = format!(
            "{netem_failed}; the same delay and loss are made in user space on a TUN link instead"
        );
        Ok((host, how))
    }

    /// A namespace with no link yet.
    fn namespace(label: &str) -> Result<Host, String> {
        static STALE: Once = Once::new();
        STALE.call_once(remove_stale);
        // SAFETY: geteuid has no preconditions.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Err(format!(
                "network namespaces need root (running as uid {euid})"
            ));
        }
        let pid = std::process::id();
        let n = NEXT_HOST.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NS_PREFIX}{pid}-{n}-{label}");
        ip(&["netns", "add", &name])?;
        // From here on, dropping the host removes what was made.
        Ok(Host {
            name,
            addr: Ipv4Addr::UNSPECIFIED,
            gateway: Ipv4Addr::UNSPECIFIED,
            // Interface names are at most 15 bytes: "sq" + pid (7 digits at most) + "r"/"h" + n.
            root_if: format!("sq{pid}r{n}"),
            host_if: format!("sq{pid}h{n}"),
            link: None,
        })
    }

    /// Addresses both ends of the link (`prefix` "/30" for veth, "" for a point-to-point TUN
    /// link, whose ends name their peer), brings it up and routes the host through it. Call
    /// with the pool lock held.
    fn configure(
        mut self,
        gateway: Ipv4Addr,
        addr: Ipv4Addr,
        prefix: &str,
    ) -> Result<Host, String> {
        self.gateway = gateway;
        self.addr = addr;
        let (ns, rif, hif) = (&self.name, &self.root_if, &self.host_if);
        let (g, a) = (format!("{gateway}{prefix}"), format!("{addr}{prefix}"));
        let (mut root_addr, mut host_addr) =
            (vec!["addr", "add", &g], vec!["-n", ns, "addr", "add", &a]);
        if prefix.is_empty() {
            root_addr.extend(["peer", &a]);
            host_addr.extend(["peer", &g]);
        }
        root_addr.extend(["dev", rif]);
        host_addr.extend(["dev", hif]);
        ip(&root_addr)?;
        ip(&["link", "set", rif, "up"])?;
        ip(&host_addr)?;
        ip(&["-n", ns, "link", "set", hif, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            ns,
            "route",
            "add",
            "default",
            "via",
            &gateway.to_string(),
        ])?;
        Ok(self)
    }

    /// The /30 network of the host's link ("10.213.x.y/30").
    pub fn network(&self) -> String {
        let o = self.addr.octets();
        format!("{}.{}.{}.{}/30", o[0], o[1], o[2], o[3] & !3)
    }

    /// Runs `f` on a thread of its own that has joined the host's namespace (a network
    /// namespace belongs to a thread: the caller's stays where it is), and returns its result.
    pub fn in_ns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: `ns` is an open namespace file; setns changes only this thread's
            // network namespace, which is all this thread is for.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("the thread in the namespace panicked")
    }

    /// TCP segments the host has retransmitted (RetransSegs of its namespace's
    /// /proc/net/snmp): more than none shows that its link loses packets.
    pub fn tcp_retransmits(&self) -> u64 {
        self.in_ns(|| {
            // thread-self: /proc/self/net would show the namespace of the process's main thread.
            let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
            let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
            let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
            let i = names.split(' ').position(|n| n == "RetransSegs").unwrap();
            values.split(' ').nth(i).unwrap().parse().unwrap()
        })
    }

    /// How long a TCP connect from the host to `to` (in the root namespace) takes: one round
    /// trip on its link.
    pub fn connect_time(&self, to: std::net::SocketAddr) -> Duration {
        self.in_ns(move || {
            let start = std::time::Instant::now();
            std::net::TcpStream::connect(to).expect("connect from the host");
            start.elapsed()
        })
    }

    /// A libzmq context whose connections are made from this host. libzmq starts a context's
    /// I/O threads with its first socket, here on a thread inside the namespace; threads
    /// inherit their creator's namespace, and the I/O threads are where libzmq calls
    /// connect(2), so every socket of this context connects from the host's address, whatever
    /// thread uses it later.
    pub fn context(&self) -> zmq::Context {
        self.in_ns(|| {
            let ctx = zmq::Context::new();
            drop(
                ctx.socket(zmq::DEALER)
                    .expect("a first socket starts the I/O threads"),
            );
            ctx
        })
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("netns: could not remove {}: {e}", self.name);
        }
    }
}

/// An exclusive flock on POOL_LOCK for as long as it lives (per open file: threads of one
/// process exclude each other too).
struct PoolLock(File);

impl PoolLock {
    fn take() -> Result<PoolLock, String> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(POOL_LOCK)
            .map_err(|e| format!("open {POOL_LOCK}: {e}"))?;
        // SAFETY: a valid open descriptor; the lock is released when the file is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!(
                "flock {POOL_LOCK}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(PoolLock(file))
    }
}

/// The first /30 of the pool with no address of the root namespace in it: (the root's end,
/// the host's end). Call with the pool lock held, and add the address before releasing it.
fn free_subnet() -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let listing = ip(&["-o", "-4", "addr", "show"])?;
    let used: Vec<u16> = listing
        .split_whitespace()
        .filter_map(|w| w.split('/').next()?.parse::<Ipv4Addr>().ok())
        .filter(|a| a.octets()[..2] == POOL)
        .map(|a| u16::from_be_bytes([a.octets()[2], a.octets()[3]]) / 4)
        .collect();
    let free = (0..16384u16)
        .find(|i| !used.contains(i))
        .ok_or("every /30 of 10.213.0.0/16 is in use")?;
    let [hi, lo] = (free * 4).to_be_bytes();
    Ok((
        Ipv4Addr::new(POOL[0], POOL[1], hi, lo + 1),
        Ipv4Addr::new(POOL[0], POOL[1], hi, lo + 2),
    ))
}

/// Removes the namespaces of earlier test processes that are gone (killed before their hosts
/// were dropped), so their addresses return to the pool.
fn remove_stale() {
    let Ok(listing) = ip(&["netns", "list"]) else {
        return;
    };
    for name in listing.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}
