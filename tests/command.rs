//! The `zmq-proxy-stream` command as an operator runs it: CURVE sessions between the
//! examples' C client and worker through the command started with flags and with a config
//! file, the access log on stdout, the Prometheus scrape, SIGTERM, and bad input.

mod programs;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use programs::{manifest_dir, Peers, Proc, ANY_PORT, STARTUP};

const COMMAND: &str = env!("CARGO_BIN_EXE_zmq-proxy-stream");

fn peers() -> &'static Peers {
    static PEERS: OnceLock<Peers> = OnceLock::new();
    PEERS.get_or_init(|| {
        let dir = programs::scratch_dir("command");
        programs::build_peers(&dir)
    })
}

/// The command, started; its listening line's `key=value` fields.
struct Broker {
    proc: Proc,
    line: String,
}

impl Broker {
    fn start(name: &str, args: &[&str]) -> Broker {
        let proc = Proc::spawn(name, Command::new(COMMAND).args(args));
        let line = proc.wait_line("listening", STARTUP, |l| {
            l.starts_with("stderr: zmq-proxy-stream: listening ")
        });
        Broker { proc, line }
    }

    fn field(&self, key: &str) -> String {
        let prefix = format!("{key}=");
        self.line
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {key}= in {:?}", self.line))
            .to_owned()
    }

    /// TERMINATE on --control: the command exits 0.
    fn terminate(mut self, peers: &Peers) {
        let reply = peers.ctl(&self.field("control"), "TERMINATE");
        assert_eq!(reply, ["TERMINATE: empty reply"]);
        let status = self.proc.wait_exit(STARTUP);
        assert!(
            status.success(),
            "exit {status} after TERMINATE\n{}",
            self.proc.log()
        );
    }

    /// Waits for the access log's OPEN and CLOSE lines of a CURVE pair closed by its client.
    fn wait_access_log(&self, pair: u32) {
        for kind in ["OPEN", "CLOSE"] {
            self.proc.wait_line(&format!("{kind} line"), STARTUP, |l| {
                let mut words = l.split(' ');
                let stamp_ok = words
                    .next()
                    .is_some_and(|s| s.len() == 20 && s.ends_with('Z'));
                stamp_ok
                    && words.next() == Some(kind)
                    && words.next() == Some(&format!("pair={pair}"))
                    && l.contains(" mech=CURVE")
                    && (kind == "OPEN" || l.ends_with(" reason=client-closed"))
            });
        }
    }

    /// SIGTERM: exits 0 within a second.
    fn sigterm_exits_0_within_a_second(mut self) {
        let asked = Instant::now();
        self.proc.signal(libc::SIGTERM);
        let status = self.proc.wait_exit(Duration::from_secs(5));
        let took = asked.elapsed();
        assert!(
            status.success(),
            "exit {status} after SIGTERM\n{}",
            self.proc.log()
        );
        assert!(
            took < Duration::from_secs(1),
            "SIGTERM took {took:?} to stop the command\n{}",
            self.proc.log()
        );
    }
}

/// GET `path` from `addr`: (status line, body).
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to --metrics");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

fn header() -> String {
    std::fs::read_to_string(manifest_dir().join("include/zmq_proxy_stream.h")).expect("header")
}

/// `#define ZMQ_PROXY_STREAM_<prefix>...` names with a numeric value.
fn header_names(prefix: &str) -> Vec<String> {
    header()
        .lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("#define ")?.split_whitespace();
            let (name, value) = (words.next()?, words.next()?);
            (name.starts_with(prefix) && value.parse::<i64>().is_ok()).then(|| name.to_owned())
        })
        .collect()
}

/// `promtool check metrics` (Debian's prometheus package; .ci/run installs it) finds no
/// problem in a scrape. Skipped, saying so, where promtool is missing.
fn promtool_accepts(scrape: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        eprintln!("promtool is not installed: the scrape is not validated by it");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn curve_session_with_flags_then_metrics_then_sigterm() {
    let peers = peers();
    let keys = peers.keygen();
    let broker = Broker::start(
        "zmq-proxy-stream",
        &[
            "--frontend",
            ANY_PORT,
            "--backend",
            ANY_PORT,
            "--control",
            ANY_PORT,
            "--metrics",
            "127.0.0.1:0",
            "--mechanisms",
            "CURVE",
            "--wait-timeout",
            "10s",
            "--pair-buffer",
            "1MiB",
            "--sndhwm",
            "2000",
        ],
    );
    let mut worker = peers.worker(&keys, &broker.field("backend"), "w", 1);
    peers.client_session(&keys, &broker.field("frontend"), 1, 10);
    broker.wait_access_log(1);

    // The control socket answers at --control too.
    let stats = peers.ctl(&broker.field("control"), "STATISTICS");
    assert!(
        stats.iter().any(|l| l.starts_with("frontend: msgs_in=")),
        "{stats:?}"
    );

    let (status, body) = http_get(&broker.field("metrics"), "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    // Every STREAMSTATS counter of the header, with HELP and TYPE.
    let mut missing = Vec::new();
    for name in header_names("ZMQ_PROXY_STREAM_STAT_") {
        if name == "ZMQ_PROXY_STREAM_STAT_COUNT" {
            continue;
        }
        let metric = format!(
            "zmq_proxy_stream_{}",
            name.trim_start_matches("ZMQ_PROXY_STREAM_STAT_")
                .to_lowercase()
        );
        let family = body
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .find(|l| l.starts_with(&metric))
            .map(|l| l.split(' ').next().unwrap_or("").to_owned());
        match family {
            Some(family)
                if body.contains(&format!("# HELP {family} "))
                    && body.lines().any(|l| l.starts_with(&format!("{family} "))) => {}
            _ => missing.push(name),
        }
    }
    assert!(
        missing.is_empty(),
        "counters without a metric (HELP, TYPE and a sample; add them to \
         src/bin/zmq-proxy-stream/metrics.rs): {missing:?}\n{body}"
    );
    assert!(
        body.contains("\nzmq_proxy_stream_pairs_total 1\n"),
        "{body}"
    );
    for side in ["frontend", "backend"] {
        for name in [
            "messages_received_total",
            "bytes_received_total",
            "messages_sent_total",
            "bytes_sent_total",
        ] {
            let sample = format!("zmq_proxy_stream_{name}{{socket=\"{side}\"}} ");
            let value: u64 = body
                .lines()
                .find_map(|l| l.strip_prefix(&sample))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {sample} in\n{body}"));
            assert!(value > 0, "{sample}{value}: a session went through");
        }
    }
    assert_eq!(
        http_get(&broker.field("metrics"), "/other").0,
        "HTTP/1.1 404 Not Found"
    );
    promtool_accepts(&body);

    broker.sigterm_exits_0_within_a_second();
    worker.signal(libc::SIGTERM);
    worker.wait_exit(STARTUP);
}

#[test]
fn dial_out_session_from_a_config_file_where_flags_win() {
    let peers = peers();
    let keys = peers.keygen();
    let (mut worker, endpoint) = peers.bound_worker(&keys, "bound");
    let dir = programs::scratch_dir("command-config");
    let config = dir.join("zmq-proxy-stream.toml");
    // mechanisms = "NULL" would refuse the CURVE client: the flag must win.
    std::fs::write(
        &config,
        format!(
            "# a broker\nfrontend = \"{ANY_PORT}\"\nworker-endpoint = [\"{endpoint}\"]\n\
             mechanisms = \"NULL\"\nconnect-timeout = \"3s\"\nallow = [\"127.0.0.0/8\"]\n\
             max-pairs = 4\nno-access-log = false\n"
        ),
    )
    .expect("write the config");
    let broker = Broker::start(
        "zmq-proxy-stream (config)",
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--mechanisms",
            "CURVE",
        ],
    );
    assert_eq!(broker.field("backend"), "dial-out");
    assert_eq!(broker.field("workers"), endpoint);
    peers.client_session(&keys, &broker.field("frontend"), 1, 10);
    broker.wait_access_log(1);
    broker.sigterm_exits_0_within_a_second();
    worker.signal(libc::SIGTERM);
    worker.wait_exit(STARTUP);
}

/// Runs the command, which must exit 2 with one line on stderr naming `what`.
fn exits_2_with_one_line(args: &[&str], what: &str) {
    let out = Command::new(COMMAND)
        .args(args)
        .output()
        .expect("run the command");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: {}\n{stderr}",
        out.status
    );
    assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("zmq-proxy-stream: ") && lines[0].contains(what),
        "{args:?}: expected one line about {what:?}, got:\n{stderr}"
    );
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = programs::scratch_dir("command-bad");
    let write = |name: &str, text: &str| -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.to_str().expect("utf-8").to_owned()
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let taken_ep = format!("tcp://{}", taken.local_addr().expect("addr"));
    let f = ["--frontend", ANY_PORT];
    let fb = ["--frontend", ANY_PORT, "--backend", ANY_PORT];
    let with = |base: &[&'static str], more: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(more).copied().collect()
    };
    exits_2_with_one_line(&["--bogus"], "--bogus");
    exits_2_with_one_line(&[], "--frontend");
    exits_2_with_one_line(&f, "--backend");
    exits_2_with_one_line(
        &with(&fb, &["--worker-endpoint", "tcp://127.0.0.1:9"]),
        "exclude",
    );
    exits_2_with_one_line(&with(&fb, &["--wait-timeout", "10x"]), "--wait-timeout");
    exits_2_with_one_line(&with(&fb, &["--max-pairs", "many"]), "--max-pairs");
    exits_2_with_one_line(&with(&fb, &["--allow", "300.0.0.1"]), "--allow 300.0.0.1");
    exits_2_with_one_line(&with(&fb, &["--backpressure", "2"]), "--backpressure 2");
    exits_2_with_one_line(&with(&fb, &["--mechanisms", "TLS"]), "--mechanisms TLS");
    exits_2_with_one_line(
        &with(&f, &["--worker-endpoint", "nowhere"]),
        "--worker-endpoint",
    );
    exits_2_with_one_line(&with(&fb, &["--metrics", "127.0.0.1:99999"]), "--metrics");
    let taken_args = ["--frontend", taken_ep.as_str(), "--backend", ANY_PORT];
    exits_2_with_one_line(&taken_args, "cannot bind frontend");
    let unknown = write(
        "unknown.toml",
        "frontend = \"tcp://127.0.0.1:*\"\ncolour = \"red\"\n",
    );
    exits_2_with_one_line(&["--config", &unknown], "unknown setting 'colour'");
    let broken = write("broken.toml", "frontend = \n");
    exits_2_with_one_line(&["--config", &broken], "broken.toml");
    let bad_value = write(
        "bad.toml",
        "frontend = \"tcp://127.0.0.1:*\"\nbackend = \"tcp://127.0.0.1:*\"\nwait-timeout = true\n",
    );
    exits_2_with_one_line(&["--config", &bad_value], "wait-timeout");
    exits_2_with_one_line(
        &["--config", "/nonexistent/zmq-proxy-stream.toml"],
        "/nonexistent",
    );
}

#[test]
fn help_and_version_and_a_flag_for_every_option() {
    let out = Command::new(COMMAND)
        .arg("--help")
        .output()
        .expect("--help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<String> = header_names("ZMQ_PROXY_STREAM_")
        .into_iter()
        .filter(|n| !n.starts_with("ZMQ_PROXY_STREAM_STAT_"))
        .filter(|n| !n.starts_with("ZMQ_PROXY_STREAM_VERSION_"))
        .map(|n| {
            let name = n.trim_start_matches("ZMQ_PROXY_STREAM_");
            format!("--{}", name.to_lowercase().replace('_', "-"))
        })
        .filter(|flag| !help.contains(&format!("{flag} ")))
        .collect();
    assert!(
        missing.is_empty(),
        "options of the header without a flag (add them to src/bin/zmq-proxy-stream/cli.rs \
         and man/zmq-proxy-stream.1.scd): {missing:?}\n{help}"
    );
    let out = Command::new(COMMAND)
        .arg("--version")
        .output()
        .expect("--version");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("zmq-proxy-stream {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(Path::new(COMMAND).exists());
}

/// The long flags a text names: `--name` followed by a space, `=`, `*` (scdoc bold) or the
/// end of a word.
fn long_flags(text: &str) -> std::collections::BTreeSet<String> {
    let mut flags = std::collections::BTreeSet::new();
    for (at, _) in text.match_indices("--") {
        let rest = &text[at + 2..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        let starts_word = at == 0 || !text.as_bytes()[at - 1].is_ascii_alphanumeric();
        if starts_word && name.len() > 1 && !name.ends_with('-') {
            flags.insert(format!("--{name}"));
        }
    }
    flags
}

#[test]
fn the_man_page_and_help_name_the_same_flags() {
    let out = Command::new(COMMAND)
        .arg("--help")
        .output()
        .expect("--help");
    let help = long_flags(&String::from_utf8_lossy(&out.stdout));
    let page = std::fs::read_to_string(manifest_dir().join("man/zmq-proxy-stream.1.scd"))
        .expect("the page");
    let options = page
        .split_once("\n# OPTIONS\n")
        .and_then(|(_, rest)| rest.split_once("\n# EXIT STATUS\n"))
        .map(|(options, _)| options)
        .expect("an OPTIONS section");
    let documented = long_flags(options);
    assert!(
        help.len() > 25 && help.contains("--frontend") && help.contains("--fail-ban-time"),
        "{help:?}"
    );
    assert_eq!(
        documented, help,
        "man/zmq-proxy-stream.1.scd's OPTIONS and --help name different flags"
    );
}

/// Several brokers for capacity and failover (README, "Several brokers"): two commands that
/// share nothing dial out to the same two bound workers; a client connected to both has a
/// session through each; after one broker is TERMINATEd, the next client, still given both,
/// gets all its replies through the other.
#[test]
fn two_brokers_share_the_workers_and_one_can_go() {
    let peers = peers();
    let keys = peers.keygen();
    let (mut w1, e1) = peers.bound_worker(&keys, "shared-1");
    let (mut w2, e2) = peers.bound_worker(&keys, "shared-2");
    let start = |name: &str| {
        Broker::start(
            name,
            &[
                "--frontend",
                ANY_PORT,
                "--control",
                ANY_PORT,
                "--worker-endpoint",
                &e1,
                "--worker-endpoint",
                &e2,
            ],
        )
    };
    let a = start("broker A");
    let b = start("broker B");
    let (fa, fb) = (a.field("frontend"), b.field("frontend"));

    peers.client_through(&keys, &[&fa, &fb], 1, 20);
    a.wait_access_log(1);
    b.wait_access_log(1);

    a.terminate(peers);
    peers.client_through(&keys, &[&fa, &fb], 2, 20);
    b.wait_access_log(2);

    b.terminate(peers);
    for w in [&mut w1, &mut w2] {
        w.signal(libc::SIGTERM);
        w.wait_exit(STARTUP);
    }
}
