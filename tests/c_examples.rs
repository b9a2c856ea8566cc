//! Builds the C examples (examples-c/) with the system C compiler against the cdylib that
//! cargo built for this test run, and runs them as separate processes on 127.0.0.1:
//! broker (zmq_proxy_stream), 2 CURVE workers with 4 connections each, 4 CURVE clients;
//! and the dial-out topology: the broker connecting to 2 bound CURVE workers, with the
//! access log printing the proxy's events.
//! This exercises the generated header and the shared library from C exactly as a user
//! would, and checks the worker rules of the README with real libzmq peers.
//!
//! Needs `cc` (or $CC), pkg-config and the libzmq development files. Every child process is
//! killed when a test fails (the `Proc` guard); every wait has a deadline.

mod common;
mod programs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use programs::{KeyPair, Peers, Proc};
use zmq_proxy_stream::api::*;

/// Deadline for a process to be ready or to exit once asked.
const STARTUP: Duration = Duration::from_secs(20);
/// Deadline each client gets for all its replies (passed to it), and our margin on top.
const CLIENT_DEADLINE_S: u64 = 40;
const WARNINGS: &[&str] = &["-Wall", "-Wextra", "-Werror", "-std=c11", "-pthread"];

// ---------------------------------------------------------------------------------------
// Building

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding the libzmq_proxy_stream.so that cargo built for this test run.
///
/// Cargo builds the package's library with all its crate types (cdylib included) before its
/// integration tests, into target/<profile>/deps/, next to this test binary; unlike
/// `cargo build`, `cargo test` does not copy it up to target/<profile>/, so a .so found
/// there may be stale. Use deps/ first, the profile directory only as a fallback.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    let candidates = [Some(deps), deps.parent()];
    for dir in candidates.into_iter().flatten() {
        if dir.join("libzmq_proxy_stream.so").exists() {
            return dir.to_path_buf();
        }
    }
    panic!(
        "libzmq_proxy_stream.so not found in {} or its parent: cargo should have built the \
         cdylib before this test",
        deps.display()
    );
}

/// `pkg-config --cflags --libs libzmq`, split; plain -lzmq when pkg-config is missing.
fn zmq_flags() -> (Vec<String>, Vec<String>) {
    let run = |what: &str| -> Option<Vec<String>> {
        let out = Command::new("pkg-config")
            .args([what, "libzmq"])
            .output()
            .ok()?;
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
    };
    (
        run("--cflags").unwrap_or_default(),
        run("--libs").unwrap_or_else(|| vec!["-lzmq".to_owned()]),
    )
}

/// The compiled example programs, built once per test process into a private directory.
struct Programs {
    dir: PathBuf,
}

impl Programs {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Removes the build directories of earlier test processes that are gone (one directory
/// per process, so that concurrent `cargo test` runs never share one).
fn remove_stale_build_dirs(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("c_examples-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The library's SONAME is libzmq_proxy_stream.so.0 (build.rs), so a program linked with
/// -lzmq_proxy_stream needs that name at run time, which cargo does not make: a directory
/// under `build` with both names linked to the library cargo built.
fn soname_link_dir(libdir: &Path, build: &Path) -> PathBuf {
    let dir = build.join("lib");
    std::fs::create_dir_all(&dir).expect("create lib directory");
    for name in ["libzmq_proxy_stream.so", "libzmq_proxy_stream.so.0"] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(libdir.join("libzmq_proxy_stream.so"), &link)
            .expect("symlink the library");
    }
    dir
}

/// Compiles every example with `cc -Wall -Wextra -Werror -std=c11` (the Makefile's flags),
/// in parallel; panics with the compiler's output on any warning or error.
fn programs() -> &'static Programs {
    static PROGRAMS: OnceLock<Programs> = OnceLock::new();
    PROGRAMS.get_or_init(|| {
        let src = manifest_dir().join("examples-c");
        let include = manifest_dir().join("include");
        let libdir = library_dir();
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        remove_stale_build_dirs(&tmp);
        let dir = tmp.join(format!("c_examples-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create build directory");
        let libdir = soname_link_dir(&libdir, &dir);
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
        let (zmq_cflags, zmq_libs) = zmq_flags();
        let builds: Vec<(&str, bool)> = vec![
            ("broker", true),
            ("check_api", true),
            ("worker", false),
            ("client", false),
            ("keygen", false),
            ("ctl", false),
            ("access_log", false),
        ];
        let children: Vec<(&str, Child)> = builds
            .iter()
            .map(|&(name, links_proxy)| {
                let mut cmd = Command::new(&cc);
                cmd.args(WARNINGS).args(["-O2", "-g"]);
                cmd.arg(format!("-I{}", include.display()));
                cmd.args(&zmq_cflags);
                cmd.arg("-o").arg(dir.join(name));
                cmd.arg(src.join(format!("{name}.c")));
                if links_proxy {
                    cmd.arg(format!("-L{}", libdir.display()));
                    cmd.arg(format!("-Wl,-rpath,{}", libdir.display()));
                    cmd.arg("-lzmq_proxy_stream");
                }
                cmd.args(&zmq_libs);
                cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
                let child = cmd
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
                (name, child)
            })
            .collect();
        for (name, child) in children {
            let out = child.wait_with_output().expect("wait for cc");
            assert!(
                out.status.success() && out.stderr.is_empty(),
                "compiling examples-c/{name}.c failed or warned:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Programs { dir }
    })
}

// ---------------------------------------------------------------------------------------
// Child processes (the `Proc` guard lives in tests/programs/, shared with the tests of the
// installed library and of the command)

/// Runs a short-lived program to completion and returns (status, stdout lines).
fn run(name: &str, cmd: &mut Command, timeout: Duration) -> (ExitStatus, Vec<String>) {
    let mut p = Proc::spawn(name, cmd);
    let status = p.wait_exit(timeout);
    (status, p.lines())
}

// ---------------------------------------------------------------------------------------
// The scene: keys, broker, workers, clients

/// A key pair from examples-c/keygen (the same parsing as the other program tests).
fn keygen(progs: &Programs) -> KeyPair {
    Peers {
        dir: progs.dir.clone(),
    }
    .keygen()
}

struct Broker {
    proc: Proc,
    frontend: String,
    /// The bound backend, or "dial-out".
    backend: String,
    control: String,
    /// The events socket (PUB), with --events.
    events: Option<String>,
}

/// Port * lets the OS pick free ports: no race with other tests or programs.
const ANY_PORT: &str = "tcp://127.0.0.1:*";

fn start_broker(progs: &Programs) -> Broker {
    start_broker_with(progs, &[ANY_PORT, ANY_PORT, ANY_PORT])
}

/// Starts the broker with these arguments and reads the endpoints it printed.
fn start_broker_with(progs: &Programs, args: &[&str]) -> Broker {
    let proc = Proc::spawn("broker", Command::new(progs.path("broker")).args(args));
    let line = proc.wait_line("listening", STARTUP, |l| {
        l.starts_with("broker: listening ")
    });
    let field = |key: &str| -> Option<String> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(str::to_owned)
    };
    let endpoint =
        |key: &str| -> String { field(key).unwrap_or_else(|| panic!("no {key} in {line:?}")) };
    Broker {
        frontend: endpoint("frontend="),
        backend: endpoint("backend="),
        control: endpoint("control="),
        events: field("events="),
        proc,
    }
}

/// Starts a broker in dial-out mode: no backend bound, the proxy connects to
/// `worker_endpoints`; events published on a PUB socket; `extra` options added.
fn start_dial_out_broker(progs: &Programs, worker_endpoints: &[String], extra: &[&str]) -> Broker {
    let mut args: Vec<&str> = Vec::new();
    for endpoint in worker_endpoints {
        args.extend(["--worker-endpoint", endpoint.as_str()]);
    }
    args.extend(["--events", ANY_PORT]);
    args.extend(extra);
    args.extend([ANY_PORT, "-", ANY_PORT]);
    let broker = start_broker_with(progs, &args);
    assert_eq!(broker.backend, "dial-out", "{}", broker.proc.log());
    assert!(broker.events.is_some(), "{}", broker.proc.log());
    let workers = format!("workers={}", worker_endpoints.join(","));
    broker.proc.wait_line("worker list", STARTUP, |l| {
        l.starts_with("broker: listening ") && l.split_whitespace().any(|w| w == workers)
    });
    broker
}

/// Starts a worker with `connections` slots and waits until all of them are connected.
fn start_worker(
    progs: &Programs,
    broker: &Broker,
    keys: &KeyPair,
    name: &str,
    connections: u32,
) -> Proc {
    let worker = Proc::spawn(
        name,
        Command::new(progs.path("worker"))
            .env("STREAMQ_SERVER_SECRET", &keys.secret)
            .args(["--backend", &broker.backend])
            .args(["--connections", &connections.to_string()])
            .args(["--name", name])
            // A safety net: it stops by itself even if this test forgot it.
            .args(["--max-seconds", "300"]),
    );
    let banner = worker.wait_line("banner", STARTUP, |l| l.contains(": CURVE server "));
    assert!(
        banner.contains(&keys.public),
        "the worker derives the public key keygen printed: {banner}"
    );
    worker.wait_line("all connections up", STARTUP, |l| {
        l == format!(
            "worker {name}: ready, {connections}/{connections} connections up to {}",
            broker.backend
        )
    });
    worker
}

/// Starts a dial-out worker (`worker --bind`, port chosen by the OS); returns it and the
/// endpoint it bound.
fn start_bound_worker(progs: &Programs, keys: &KeyPair, name: &str) -> (Proc, String) {
    let worker = Proc::spawn(
        name,
        Command::new(progs.path("worker"))
            .env("STREAMQ_SERVER_SECRET", &keys.secret)
            .args(["--bind", ANY_PORT])
            .args(["--name", name])
            // A safety net: it stops by itself even if this test forgot it.
            .args(["--max-seconds", "300"]),
    );
    let prefix = format!("worker {name}: ready, bound to ");
    let line = worker.wait_line("bound", STARTUP, |l| l.starts_with(&prefix));
    let endpoint = line[prefix.len()..].to_owned();
    assert!(
        endpoint.starts_with("tcp://127.0.0.1:") && !endpoint.ends_with('*'),
        "the worker prints the port it really bound: {line}"
    );
    (worker, endpoint)
}

/// Starts examples-c/access_log on the broker's events socket and waits until its
/// subscription's connection is up (events published before that are not seen: PUB/SUB).
/// With `count`, it exits by itself after that many events.
fn start_access_log(progs: &Programs, broker: &Broker, count: Option<u32>) -> Proc {
    let events = broker
        .events
        .as_deref()
        .expect("a broker started with --events");
    let mut cmd = Command::new(progs.path("access_log"));
    if let Some(count) = count {
        cmd.args(["--count", &count.to_string()]);
    }
    // A safety net: it stops by itself even if this test forgot it.
    cmd.args(["--max-seconds", "300"]).arg(events);
    let log = Proc::spawn("access_log", &mut cmd);
    log.wait_line("connected", STARTUP, |l| {
        l == format!("stderr: access_log: connected to {events}")
    });
    log
}

/// One line of the access log: `2026-11-25T14:00:00Z CLOSE pair=3 client=... up=... ...`.
#[derive(Debug)]
struct AccessEvent {
    kind: String,
    fields: HashMap<String, String>,
}

impl AccessEvent {
    /// Parses an event line; None for the access log's status lines (stderr) and raw lines.
    fn parse(line: &str) -> Option<AccessEvent> {
        let mut words = line.split(' ');
        let stamp = words.next()?;
        // 2026-11-25T14:00:00Z
        let b = stamp.as_bytes();
        let stamp_ok = b.len() == 20
            && b[10] == b'T'
            && b[19] == b'Z'
            && [4, 7].iter().all(|&i| b[i] == b'-')
            && [13, 16].iter().all(|&i| b[i] == b':');
        let kind = words.next()?;
        if !stamp_ok || !matches!(kind, "OPEN" | "CLOSE" | "REJECT") {
            return None;
        }
        let fields = words
            .take_while(|w| *w != "|")
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some(AccessEvent {
            kind: kind.to_owned(),
            fields,
        })
    }

    fn get(&self, key: &str) -> &str {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("no {key}= in {self:?}"))
    }

    fn number(&self, key: &str) -> u64 {
        self.get(key)
            .parse()
            .unwrap_or_else(|_| panic!("{key}= is not a number in {self:?}"))
    }
}

/// The events the access log printed so far, of one kind (OPEN, CLOSE, REJECT).
fn access_events(log: &Proc, kind: &str) -> Vec<AccessEvent> {
    log.lines()
        .iter()
        .filter_map(|l| AccessEvent::parse(l))
        .filter(|e| e.kind == kind)
        .collect()
}

fn start_client(
    progs: &Programs,
    broker: &Broker,
    server_public: &str,
    id: u32,
    requests: u32,
    deadline_s: f64,
) -> Proc {
    Proc::spawn(
        &format!("client {id}"),
        Command::new(progs.path("client"))
            .args(["--frontend", &broker.frontend])
            .args(["--server-key", server_public])
            .args(["--id", &id.to_string()])
            .args(["--requests", &requests.to_string()])
            .args(["--deadline", &deadline_s.to_string()]),
    )
}

/// Waits for a client and checks its exit status and summary line; returns the payload
/// bytes it reported ("B bytes each way").
fn expect_client_ok(client: &mut Proc, id: u32, requests: u32) -> u64 {
    let status = client.wait_exit(Duration::from_secs(CLIENT_DEADLINE_S + 10));
    let prefix = format!("client {id}: {requests}/{requests} replies ok, ");
    let lines = client.lines();
    let summary = lines
        .iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| {
            panic!(
                "client {id} ({status}) printed no {prefix:?} line:\n{}",
                client.log()
            )
        });
    assert!(
        status.success(),
        "client {id} exited with {status}:\n{}",
        client.log()
    );
    summary[prefix.len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no byte count in {summary:?}"))
}

/// Runs clients 1..=`n` at once (`requests` each), checks that every one succeeded, and
/// returns the payload bytes they reported in all.
fn run_clients_ok(
    progs: &Programs,
    broker: &Broker,
    server_public: &str,
    n: u32,
    requests: u32,
) -> u64 {
    let mut clients: Vec<Proc> = (1..=n)
        .map(|id| {
            start_client(
                progs,
                broker,
                server_public,
                id,
                requests,
                CLIENT_DEADLINE_S as f64,
            )
        })
        .collect();
    let mut payload = 0;
    for (i, client) in clients.iter_mut().enumerate() {
        payload += expect_client_ok(client, i as u32 + 1, requests);
    }
    payload
}

/// Sends one command with examples-c/ctl; returns its stdout lines.
fn ctl(progs: &Programs, broker: &Broker, command: &str) -> Vec<String> {
    let (status, lines) = run(
        &format!("ctl {command}"),
        Command::new(progs.path("ctl")).args([&broker.control, command, "10000"]),
        Duration::from_secs(20),
    );
    assert!(status.success(), "ctl {command}: {status}: {lines:?}");
    lines
}

/// STATISTICS as printed by ctl: frontend msgs_in, bytes_in, msgs_out, bytes_out, then the
/// same for the backend.
fn statistics(progs: &Programs, broker: &Broker) -> [u64; 8] {
    let lines = ctl(progs, broker, "STATISTICS");
    let mut values = Vec::new();
    for side in ["frontend: ", "backend: "] {
        let line = lines
            .iter()
            .find_map(|l| l.strip_prefix(side))
            .unwrap_or_else(|| panic!("no {side:?} line in {lines:?}"));
        for (word, key) in
            line.split_whitespace()
                .zip(["msgs_in=", "bytes_in=", "msgs_out=", "bytes_out="])
        {
            let value = word
                .strip_prefix(key)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("expected {key}N in {line:?}"));
            values.push(value);
        }
    }
    values
        .try_into()
        .unwrap_or_else(|v| panic!("8 counters expected: {v:?}"))
}

/// TERMINATE: empty reply, and the broker returns 0 from zmq_proxy_stream and exits 0.
fn terminate(progs: &Programs, mut broker: Broker) {
    let reply = ctl(progs, &broker, "TERMINATE");
    assert_eq!(reply, ["TERMINATE: empty reply"]);
    let status = broker.proc.wait_exit(STARTUP);
    assert!(
        status.success(),
        "broker exited with {status}:\n{}",
        broker.proc.log()
    );
    broker.proc.wait_line("result", STARTUP, |l| {
        l.starts_with("broker: zmq_proxy_stream returned 0 ")
    });
}

/// The number of CURVE sessions in a worker's summary line ("..., N sessions, ...").
fn sessions_of(summary: &str) -> u32 {
    summary
        .split(", ")
        .find_map(|part| part.strip_suffix(" sessions"))
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no session count in {summary:?}"))
}

/// SIGTERM: the worker stops cleanly, exits 0 and prints its summary; returns that line.
fn stop_worker(worker: &mut Proc) -> String {
    worker.signal(libc::SIGTERM);
    let status = worker.wait_exit(STARTUP);
    assert!(
        status.success(),
        "{} exited with {status}:\n{}",
        worker.name,
        worker.log()
    );
    worker.wait_line("summary", STARTUP, |l| l.contains(": stopped (signal): "))
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn broker_two_workers_four_clients_over_curve() {
    const REQUESTS: u32 = 40;
    let progs = programs();
    let keys = keygen(progs);
    let broker = start_broker(progs);
    let mut workers: Vec<Proc> = (1..=2)
        .map(|w| start_worker(progs, &broker, &keys, &format!("w{w}"), 4))
        .collect();

    let payload = run_clients_ok(progs, &broker, &keys.public, 4, REQUESTS);

    let s = statistics(progs, &broker);
    let [fe_msgs_in, fe_bytes_in, fe_msgs_out, fe_bytes_out] = [s[0], s[1], s[2], s[3]];
    let [be_msgs_in, be_bytes_in, be_msgs_out, be_bytes_out] = [s[4], s[5], s[6], s[7]];
    for (name, v) in [
        ("frontend msgs_in", fe_msgs_in),
        ("frontend msgs_out", fe_msgs_out),
        ("backend msgs_in", be_msgs_in),
        ("backend msgs_out", be_msgs_out),
    ] {
        assert!(v > 0, "{name} is 0: {s:?}");
    }
    // Every payload byte went client -> proxy -> worker and back, inside CURVE, so each
    // byte counter is at least the payload the clients sent (CURVE and ZMTP add overhead).
    for (name, v) in [
        ("frontend bytes_in", fe_bytes_in),
        ("backend bytes_out", be_bytes_out),
        ("backend bytes_in", be_bytes_in),
        ("frontend bytes_out", fe_bytes_out),
    ] {
        assert!(
            v >= payload,
            "{name} = {v} < {payload} payload bytes: {s:?}"
        );
    }

    terminate(progs, broker);
    let mut sessions = 0;
    for worker in &mut workers {
        sessions += sessions_of(&stop_worker(worker));
    }
    assert_eq!(
        sessions, 4,
        "each client had one CURVE session with a worker"
    );
}

/// A client with the wrong server key makes each CURVE handshake it is paired into fail
/// with a protocol error; libzmq then ends that worker connection for good. The example
/// worker sees HANDSHAKE_FAILED_PROTOCOL on its monitor and connects again, so good clients
/// that come afterwards still find its slots.
#[test]
fn worker_keeps_its_slots_after_a_client_with_the_wrong_key() {
    let progs = programs();
    let keys = keygen(progs);
    let wrong = keygen(progs);
    let broker = start_broker(progs);
    let mut worker = start_worker(progs, &broker, &keys, "w1", 2);

    let mut bad = start_client(progs, &broker, &wrong.public, 99, 1, 1.5);
    let status = bad.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "{}", bad.log());
    bad.wait_line("failure summary", STARTUP, |l| {
        l.starts_with("client 99: 0/1 replies ok, FAILED")
    });
    worker.wait_line("replaced a slot", STARTUP, |l| {
        l.contains("handshake failed (protocol error") && l.ends_with("connected again (2 slots)")
    });

    // Both slots must still be there: two clients at once, each needing its own.
    let mut good: Vec<Proc> = (1..=2)
        .map(|id| {
            start_client(
                progs,
                &broker,
                &keys.public,
                id,
                10,
                CLIENT_DEADLINE_S as f64,
            )
        })
        .collect();
    for (i, client) in good.iter_mut().enumerate() {
        expect_client_ok(client, i as u32 + 1, 10);
    }
    terminate(progs, broker);
    let summary = stop_worker(&mut worker);
    assert!(!summary.contains("reconnects=0"), "{summary}");
}

/// Dial-out: the broker binds no backend; the proxy connects to two workers that bound a
/// ROUTER (worker --bind), one connection per client, to the endpoint with the fewest open
/// pairs. The access log, subscribed to the broker's events socket, prints one OPEN and one
/// CLOSE per client session, with the client's mechanism and the bytes relayed.
#[test]
fn dial_out_to_two_bound_workers_with_access_log() {
    const CLIENTS: u32 = 4;
    const REQUESTS: u32 = 40;
    let progs = programs();
    let keys = keygen(progs);
    let (mut w1, ep1) = start_bound_worker(progs, &keys, "w1");
    let (mut w2, ep2) = start_bound_worker(progs, &keys, "w2");
    let endpoints = [ep1, ep2];
    let broker = start_dial_out_broker(progs, &endpoints, &[]);
    // One OPEN and one CLOSE per client: it exits by itself after them.
    let mut log = start_access_log(progs, &broker, Some(2 * CLIENTS));

    let payload = run_clients_ok(progs, &broker, &keys.public, CLIENTS, REQUESTS);

    // The clients closed their connections on exit: the proxy closed each pair and said so.
    let status = log.wait_exit(STARTUP);
    assert!(
        status.success(),
        "access_log exited with {status}:\n{}",
        log.log()
    );
    let summary = format!(
        "stderr: access_log: stopped (count reached): {} events, 0 printed raw",
        2 * CLIENTS
    );
    log.wait_line("summary", STARTUP, |l| l == summary);
    let opens = access_events(&log, "OPEN");
    let closes = access_events(&log, "CLOSE");
    assert_eq!(
        (opens.len(), closes.len()),
        (CLIENTS as usize, CLIENTS as usize),
        "one OPEN and one CLOSE per client:\n{}",
        log.log()
    );
    let mut pairs = HashMap::new();
    for open in &opens {
        assert_eq!(open.get("mech"), "CURVE", "{open:?}");
        assert!(open.get("client").starts_with("127.0.0.1:"), "{open:?}");
        assert!(
            endpoints.iter().any(|e| e == open.get("worker")),
            "the worker is a dialed endpoint: {open:?}"
        );
        let pair = open.number("pair");
        assert!(
            pairs.insert(pair, open).is_none(),
            "pair {pair} opened twice:\n{}",
            log.log()
        );
    }
    for endpoint in &endpoints {
        assert!(
            opens.iter().any(|o| o.get("worker") == endpoint),
            "fewest pairs first, ties in turn: both workers get clients:\n{}",
            log.log()
        );
    }
    let (mut up, mut down) = (0, 0);
    for close in &closes {
        let open = pairs
            .get(&close.number("pair"))
            .unwrap_or_else(|| panic!("CLOSE of a pair never opened: {close:?}\n{}", log.log()));
        for key in ["client", "worker", "mech"] {
            assert_eq!(close.get(key), open.get(key), "{key}: {open:?} / {close:?}");
        }
        assert_eq!(close.get("reason"), "client-closed", "{close:?}");
        let _ms = close.number("ms");
        up += close.number("up");
        down += close.number("down");
    }
    // Every payload byte went through both ways, inside CURVE (which adds its overhead).
    assert!(
        up >= payload && down >= payload,
        "bytes up {up}, down {down}, payload {payload}:\n{}",
        log.log()
    );

    terminate(progs, broker);
    let mut sessions = 0;
    for worker in [&mut w1, &mut w2] {
        sessions += sessions_of(&stop_worker(worker));
    }
    assert_eq!(sessions, CLIENTS, "one CURVE session per client");
}

/// Dial-out with a client that uses the wrong server key: the bound worker loses only the
/// connection the proxy made for it (there is nothing to reconnect), and the access log
/// shows `CLOSE ... reason=handshake-failed`. libzmq retries the handshake by itself, so
/// with --fail-ban 2 the client's address is then refused (`REJECT ... reason=banned`) for
/// --fail-ban-time. A good client from the same address afterwards is served once the ban
/// has run out (libzmq reconnects until then), by the same worker.
#[test]
fn dial_out_wrong_key_costs_one_connection_then_bans_the_address() {
    let progs = programs();
    let keys = keygen(progs);
    let wrong = keygen(progs);
    let (mut worker, endpoint) = start_bound_worker(progs, &keys, "w1");
    let broker = start_dial_out_broker(
        progs,
        std::slice::from_ref(&endpoint),
        &["--fail-ban", "2", "--fail-ban-time", "1000"],
    );
    let mut log = start_access_log(progs, &broker, None);

    let mut bad = start_client(progs, &broker, &wrong.public, 99, 1, 3.0);
    let failed = |l: &str| {
        AccessEvent::parse(l).is_some_and(|e| {
            e.kind == "CLOSE"
                && e.get("reason") == "handshake-failed"
                && e.get("mech") == "CURVE"
                && e.get("worker") == endpoint
        })
    };
    log.wait_line("a failed handshake", STARTUP, failed);
    log.wait_line("the address banned", STARTUP, |l| {
        AccessEvent::parse(l).is_some_and(|e| {
            e.kind == "REJECT"
                && e.get("reason") == "banned"
                && e.get("client").starts_with("127.0.0.1:")
        })
    });
    let banned_after = log
        .lines()
        .iter()
        .take_while(|l| !l.contains(" REJECT "))
        .filter(|l| failed(l))
        .count();
    assert!(
        banned_after >= 2,
        "banned after 2 failed handshakes in a row, not {banned_after}:\n{}",
        log.log()
    );
    worker.wait_line("dropped one connection", STARTUP, |l| {
        l.starts_with("worker w1: handshake failed (protocol error")
            && l.ends_with(&format!(
                "that connection is gone, still bound to {endpoint}"
            ))
    });
    let status = bad.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "{}", bad.log());
    bad.wait_line("failure summary", STARTUP, |l| {
        l.starts_with("client 99: 0/1 replies ok, FAILED")
    });

    let mut good = start_client(
        progs,
        &broker,
        &keys.public,
        1,
        10,
        CLIENT_DEADLINE_S as f64,
    );
    expect_client_ok(&mut good, 1, 10);
    log.wait_line("the good session", STARTUP, |l| {
        AccessEvent::parse(l).is_some_and(|e| {
            e.kind == "CLOSE" && e.get("reason") == "client-closed" && e.get("mech") == "CURVE"
        })
    });

    terminate(progs, broker);
    log.signal(libc::SIGTERM);
    let status = log.wait_exit(STARTUP);
    assert!(
        status.success(),
        "access_log exited with {status}:\n{}",
        log.log()
    );
    log.wait_line("summary", STARTUP, |l| {
        l.starts_with("stderr: access_log: stopped (signal): ") && l.ends_with(", 0 printed raw")
    });
    let summary = stop_worker(&mut worker);
    assert_eq!(
        sessions_of(&summary),
        1,
        "only the good client's: {summary}"
    );
    assert!(
        summary.contains(" reconnects=0, accepted=") && !summary.contains(" protocol=0 "),
        "a bound worker just drops the failed connections: {summary}"
    );
}

/// SIGTERM while clients are being served: the broker's signal thread turns it into
/// TERMINATE, zmq_proxy_stream returns 0, and the broker exits 0.
#[test]
fn broker_stops_cleanly_on_sigterm_under_load() {
    let progs = programs();
    let keys = keygen(progs);
    let mut broker = start_broker(progs);
    let _worker = start_worker(progs, &broker, &keys, "w1", 2);
    // Far more requests than it can finish: it is still busy when the signal comes.
    let mut busy = start_client(progs, &broker, &keys.public, 1, 10_000_000, 60.0);
    let s = wait_for_statistics(progs, &broker, |s| s[1] > 1_000_000);
    assert!(s[5] > 0, "backend traffic too: {s:?}");
    broker.proc.signal(libc::SIGTERM);
    let status = broker.proc.wait_exit(STARTUP);
    assert!(
        status.success(),
        "broker exited with {status}:\n{}",
        broker.proc.log()
    );
    broker.proc.wait_line("clean stop", STARTUP, |l| {
        l == "broker: terminated cleanly (signal 15)"
    });
    // The client loses its session: it notices at once (not at its 60 s deadline) and fails.
    let status = busy.wait_exit(STARTUP);
    assert_eq!(status.code(), Some(1), "{}", busy.log());
    busy.wait_line("lost session", STARTUP, |l| {
        l.starts_with("client 1: ") && l.contains(" FAILED: connection lost with replies ")
    });
}

/// Polls STATISTICS until `cond` holds (deadline STARTUP); returns the last counters.
fn wait_for_statistics(
    progs: &Programs,
    broker: &Broker,
    cond: impl Fn(&[u64; 8]) -> bool,
) -> [u64; 8] {
    let end = Instant::now() + STARTUP;
    loop {
        let s = statistics(progs, broker);
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < end,
            "statistics never reached the condition: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The header's contract checked from C: EFAULT, EINVAL, ENOTSOCK, ETERM, EINTR, and the
/// PAIR/REP control protocol (see examples-c/check_api.c).
#[test]
fn c_api_contract() {
    let progs = programs();
    let (status, lines) = run(
        "check_api",
        &mut Command::new(progs.path("check_api")),
        Duration::from_secs(60),
    );
    // The last line is "check_api: N/N checks passed".
    let counts = lines
        .last()
        .and_then(|l| l.strip_prefix("check_api: "))
        .and_then(|l| l.strip_suffix(" checks passed"))
        .and_then(|l| l.split_once('/'))
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert!(
        status.success() && counts.as_ref().is_some_and(|(a, b)| a == b && b != "0"),
        "check_api: {status}\n{}",
        lines.join("\n")
    );
    for expected in [
        "ok: NULL, NULL, NULL gives EFAULT",
        "ok: ROUTER, DEALER gives EINVAL",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "missing {expected:?} in:\n{}",
            lines.join("\n")
        );
    }
}

/// check_api again, built with AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer,
/// as rustls-ffi runs its C tests: the C contract holds without a memory error, a leak or
/// undefined behaviour on the C side of the boundary.
#[test]
fn c_api_contract_under_sanitizers() {
    let progs = programs();
    let exe = progs.path("check_api_sanitized");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let (zmq_cflags, zmq_libs) = zmq_flags();
    let libdir = progs.dir.join("lib");
    let out = Command::new(&cc)
        .args(WARNINGS)
        .args(["-O1", "-g", "-fno-omit-frame-pointer"])
        .args(["-fsanitize=address,undefined", "-fno-sanitize-recover=all"])
        .arg(format!("-I{}", manifest_dir().join("include").display()))
        .args(&zmq_cflags)
        .arg("-o")
        .arg(&exe)
        .arg(manifest_dir().join("examples-c/check_api.c"))
        .arg(format!("-L{}", libdir.display()))
        .arg(format!("-Wl,-rpath,{}", libdir.display()))
        .arg("-lzmq_proxy_stream")
        .args(&zmq_libs)
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "compiling check_api with sanitizers:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, lines) = run(
        "check_api (sanitized)",
        Command::new(&exe).env("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0"),
        Duration::from_secs(60),
    );
    assert!(
        status.success()
            && lines
                .last()
                .is_some_and(|l| l.starts_with("check_api: ") && l.ends_with(" checks passed")),
        "check_api under ASan/UBSan: {status}\n{}",
        lines.join("\n")
    );
    assert!(
        !lines.iter().any(|l| l.contains("Sanitizer")),
        "a sanitizer reported:\n{}",
        lines.join("\n")
    );
}

/// STREAMSTATS over the broker's REP control socket: the counters by ZMQ_PROXY_STREAM_STAT_*
/// (examples-c/ctl prints only STATISTICS).
fn stream_stats(broker: &Broker) -> Vec<u64> {
    let ctx = zmq::Context::new();
    let req = ctx.socket(zmq::REQ).unwrap();
    req.set_linger(0).unwrap();
    req.connect(&broker.control).unwrap();
    req.send("STREAMSTATS", 0).unwrap();
    let frames = common::recv_within(&req, STARTUP).expect("a STREAMSTATS reply");
    assert_eq!(frames.len(), 1, "STREAMSTATS replies one frame");
    frames[0]
        .chunks(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8-byte counters")))
        .collect()
}

/// A worker process killed mid-stream (SIGKILL: no goodbye, the kernel closes its
/// connection): the broker, relaying the taken-over pair itself (default options), ends the
/// pair and closes the client at once, long before the client's own deadline; a pair with
/// another worker goes on without noticing.
#[test]
fn a_worker_killed_mid_stream_closes_its_client_promptly_and_no_other_pair() {
    let progs = programs();
    let keys = keygen(progs);
    let broker = start_broker(progs);
    let mut doomed = start_worker(progs, &broker, &keys, "doomed", 1);
    // Its only slot is the only idle worker connection: client 1 pairs with it, and streams
    // far more requests than it can finish before its 60 s deadline.
    let mut streaming = start_client(progs, &broker, &keys.public, 1, 10_000_000, 60.0);
    wait_for_statistics(progs, &broker, |s| s[5] > 1_000_000);

    // Now a second worker, the only idle one, and a client of its own in this process, with a
    // socket monitor that would see any disconnection.
    let mut survivor = start_worker(progs, &broker, &keys, "survivor", 1);
    let decode = |z85: &str| -> [u8; 32] {
        zmq::z85_decode(z85)
            .expect("a Z85 key")
            .try_into()
            .expect("32 bytes")
    };
    let server = common::Mechanism::Curve(Arc::new(zmq::CurveKeyPair {
        public_key: decode(&keys.public),
        secret_key: decode(&keys.secret),
    }));
    let ctx = zmq::Context::new();
    let other = common::monitored_client(&ctx, &broker.frontend, &server, |_| {});
    for n in 0..20u64 {
        common::round_trip(&other, &[b"before", &common::payload(n, 5000)]);
    }
    let s = stream_stats(&broker);
    assert_eq!(
        s[ZMQ_PROXY_STREAM_STAT_PAIRS_TAKEN_OVER as usize], 2,
        "both pairs are relayed by the broker itself: {s:?}"
    );
    assert_eq!(s[ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN as usize], 2);

    doomed.signal(libc::SIGKILL);
    let killed_at = Instant::now();
    let status = doomed.wait_exit(STARTUP);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    // The client notices a lost session only when its connection is closed: it then fails
    // at once (its deadline is 60 s away).
    let status = streaming.wait_exit(Duration::from_secs(5));
    let noticed_after = killed_at.elapsed();
    assert_eq!(status.code(), Some(1), "{}", streaming.log());
    streaming.wait_line("lost session", STARTUP, |l| {
        l.starts_with("client 1: ") && l.contains(" FAILED: connection lost with replies ")
    });
    eprintln!("the client of the killed worker was closed {noticed_after:?} after the kill");
    common::wait_until("the killed worker's pair ends", common::DEADLINE, || {
        stream_stats(&broker)[ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN as usize] == 1
    });

    // The other pair never noticed: its round trips go on, on the same connection.
    for n in 0..50u64 {
        common::round_trip(&other, &[b"after", &common::payload(n, 5000)]);
    }
    let mut events = Vec::new();
    while let Some((event, _)) = other.monitor.next(Duration::ZERO) {
        events.push(event);
    }
    assert!(
        !events.iter().any(|e| matches!(
            e,
            zmq::SocketEvent::DISCONNECTED | zmq::SocketEvent::CONNECTED
        )),
        "the other client's connection was never lost nor made again: {events:?}"
    );
    let s = stream_stats(&broker);
    assert_eq!(s[ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN as usize], 1, "{s:?}");
    assert_eq!(s[ZMQ_PROXY_STREAM_STAT_TAKEOVER_VIOLATIONS as usize], 0);
    assert_eq!(s[ZMQ_PROXY_STREAM_STAT_HANDSHAKES_FAILED as usize], 0);

    drop(other);
    terminate(progs, broker);
    assert_eq!(sessions_of(&stop_worker(&mut survivor)), 1);
}

/// A client process killed mid-stream (SIGKILL): the broker ends its taken-over pair and
/// closes the worker's connection, the worker (libzmq reconnecting by itself) is back in
/// the pool within moments, and the next client is served by it.
#[test]
fn a_client_killed_mid_stream_frees_its_worker_for_the_next_client() {
    let progs = programs();
    let keys = keygen(progs);
    let broker = start_broker(progs);
    // One slot: the next client can only be served once it is free again.
    let mut worker = start_worker(progs, &broker, &keys, "w1", 1);
    let mut doomed = start_client(progs, &broker, &keys.public, 1, 10_000_000, 60.0);
    wait_for_statistics(progs, &broker, |s| s[1] > 1_000_000);
    assert_eq!(
        stream_stats(&broker)[ZMQ_PROXY_STREAM_STAT_PAIRS_TAKEN_OVER as usize],
        1
    );

    doomed.signal(libc::SIGKILL);
    let killed_at = Instant::now();
    let status = doomed.wait_exit(STARTUP);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    // Closing its connection is prompt; libzmq then reconnects it within its reconnect
    // interval (100 ms).
    common::wait_until(
        "the worker's slot is idle again",
        Duration::from_secs(5),
        || {
            let s = stream_stats(&broker);
            s[ZMQ_PROXY_STREAM_STAT_PAIRS_OPEN as usize] == 0
                && s[ZMQ_PROXY_STREAM_STAT_WORKERS_IDLE_CURVE as usize] == 1
        },
    );
    eprintln!(
        "the worker's slot was idle again {:?} after the kill",
        killed_at.elapsed()
    );

    let mut next = start_client(
        progs,
        &broker,
        &keys.public,
        2,
        10,
        CLIENT_DEADLINE_S as f64,
    );
    expect_client_ok(&mut next, 2, 10);
    let s = stream_stats(&broker);
    assert_eq!(
        s[ZMQ_PROXY_STREAM_STAT_PAIRS_TAKEN_OVER as usize], 2,
        "{s:?}"
    );
    assert_eq!(s[ZMQ_PROXY_STREAM_STAT_TAKEOVER_VIOLATIONS as usize], 0);
    terminate(progs, broker);
    assert_eq!(
        sessions_of(&stop_worker(&mut worker)),
        2,
        "one CURVE session per client, on one slot"
    );
}
