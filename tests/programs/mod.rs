//! Harness for the tests that run programs as a user would (tests/install.rs,
//! tests/command.rs): a private scratch directory per test process, C compilation with the
//! system compiler, child processes whose output is watched line by line (every wait has a
//! deadline; a dropped child is killed), and the examples-c peers of a CURVE session
//! (keygen, worker, client).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Deadline for a process to be ready or to exit once asked.
pub const STARTUP: Duration = Duration::from_secs(20);
/// The client's own deadline for all its replies, and our margin on top.
pub const CLIENT_DEADLINE_S: u64 = 30;
pub const WARNINGS: &[&str] = &["-Wall", "-Wextra", "-Werror", "-std=c11", "-pthread"];
/// Port * lets the OS pick free ports: no race with other tests or programs.
pub const ANY_PORT: &str = "tcp://127.0.0.1:*";

pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory `<CARGO_TARGET_TMPDIR>/<name>-<pid>`; those of earlier test processes
/// that are gone are removed first (one per process: concurrent runs never share one).
pub fn scratch_dir(name: &str) -> PathBuf {
    scratch_dir_in(&PathBuf::from(env!("CARGO_TARGET_TMPDIR")), name)
}

/// The same in the system's temporary directory, outside the source tree and the target
/// directory (which may lie inside the source tree).
pub fn scratch_dir_outside(name: &str) -> PathBuf {
    scratch_dir_in(&std::env::temp_dir(), &format!("streamq-{name}"))
}

fn scratch_dir_in(tmp: &Path, name: &str) -> PathBuf {
    if let Ok(entries) = std::fs::read_dir(tmp) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(pid) = file_name
                .to_str()
                .and_then(|n| n.strip_prefix(name))
                .and_then(|n| n.strip_prefix('-'))
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = tmp.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch directory");
    dir
}

/// The directory holding the libzmq_proxy_stream.so and .a that cargo built for this test
/// run: target/<profile>/deps/ next to this test binary (`cargo test` does not copy them up
/// to target/<profile>/, so copies there may be stale), the profile directory as a fallback.
pub fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    for dir in [Some(deps), deps.parent()].into_iter().flatten() {
        if dir.join("libzmq_proxy_stream.so").exists() && dir.join("libzmq_proxy_stream.a").exists()
        {
            return dir.to_path_buf();
        }
    }
    panic!(
        "libzmq_proxy_stream.so and .a not found in {} or its parent: cargo builds them \
         before the integration tests",
        deps.display()
    );
}

/// Runs a command to completion; panics with its output unless it succeeds. Returns stdout.
pub fn check_output(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{cmd:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `pkg-config ARGS` with PKG_CONFIG_PATH set to `path` (None: the system's), split into
/// words.
pub fn pkg_config(path: Option<&Path>, args: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("pkg-config");
    cmd.args(args);
    if let Some(path) = path {
        cmd.env("PKG_CONFIG_PATH", path);
    }
    check_output(&format!("pkg-config {args:?}"), &mut cmd)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Compiles `src` into `out` with `cc` and the project's warning flags; `flags` come after
/// the source (include and library flags). Panics on any warning or error.
pub fn compile_c(src: &Path, out: &Path, flags: &[String]) {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    let mut cmd = Command::new(&cc);
    cmd.args(WARNINGS)
        .args(["-O2", "-g", "-o"])
        .arg(out)
        .arg(src)
        .args(flags);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {cc:?}: {e}"));
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "compiling {} failed or warned:\n{cmd:?}\n{}{}",
        src.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds the plain-libzmq peers of examples-c (keygen, worker, client, ctl) into `dir`.
pub fn build_peers(dir: &Path) -> Peers {
    let zmq = pkg_config(None, &["--cflags", "--libs", "libzmq"]);
    let src = manifest_dir().join("examples-c");
    std::thread::scope(|s| {
        for name in ["keygen", "worker", "client", "ctl"] {
            let zmq = &zmq;
            let src = &src;
            s.spawn(move || compile_c(&src.join(format!("{name}.c")), &dir.join(name), zmq));
        }
    });
    Peers {
        dir: dir.to_path_buf(),
    }
}

/// The compiled examples-c peers.
pub struct Peers {
    pub dir: PathBuf,
}

pub struct KeyPair {
    pub public: String,
    pub secret: String,
}

impl Peers {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn keygen(&self) -> KeyPair {
        let out = check_output("keygen", &mut Command::new(self.path("keygen")));
        let field = |label: &str| -> String {
            let key = out
                .lines()
                .find_map(|l| l.strip_prefix(label))
                .unwrap_or_else(|| panic!("keygen printed no {label:?} line: {out}"))
                .to_owned();
            assert_eq!(key.len(), 40, "a Z85 key is 40 characters: {key:?}");
            key
        };
        KeyPair {
            public: field("public: "),
            secret: field("secret: "),
        }
    }

    /// A dial-in CURVE worker with `connections` slots to `backend`, once all are up.
    pub fn worker(&self, keys: &KeyPair, backend: &str, name: &str, connections: u32) -> Proc {
        let worker = Proc::spawn(
            name,
            Command::new(self.path("worker"))
                .env("STREAMQ_SERVER_SECRET", &keys.secret)
                .args(["--backend", backend])
                .args(["--connections", &connections.to_string()])
                .args(["--name", name])
                // A safety net: it stops by itself even if a test forgot it.
                .args(["--max-seconds", "120"]),
        );
        worker.wait_line("all connections up", STARTUP, |l| {
            l == format!(
                "worker {name}: ready, {connections}/{connections} connections up to {backend}"
            )
        });
        worker
    }

    /// A dial-out CURVE worker bound at a port the OS picks; returns it and its endpoint.
    pub fn bound_worker(&self, keys: &KeyPair, name: &str) -> (Proc, String) {
        let worker = Proc::spawn(
            name,
            Command::new(self.path("worker"))
                .env("STREAMQ_SERVER_SECRET", &keys.secret)
                .args(["--bind", ANY_PORT, "--name", name])
                .args(["--max-seconds", "120"]),
        );
        let prefix = format!("worker {name}: ready, bound to ");
        let line = worker.wait_line("bound", STARTUP, |l| l.starts_with(&prefix));
        let endpoint = line[prefix.len()..].to_owned();
        (worker, endpoint)
    }

    /// One CURVE client of `requests` requests through `frontend`; checks that every reply
    /// came back whole.
    pub fn client_session(&self, keys: &KeyPair, frontend: &str, id: u32, requests: u32) {
        self.client_through(keys, &[frontend], id, requests);
    }

    /// One CURVE client connected to every broker of `frontends` at once (a session through
    /// each, requests only to those up, one in flight); checks every reply.
    pub fn client_through(&self, keys: &KeyPair, frontends: &[&str], id: u32, requests: u32) {
        let mut cmd = Command::new(self.path("client"));
        for frontend in frontends {
            cmd.args(["--frontend", frontend]);
        }
        if frontends.len() > 1 {
            cmd.args(["--window", "1"]);
        }
        let mut client = Proc::spawn(
            &format!("client {id}"),
            cmd.args(["--server-key", &keys.public])
                .args(["--id", &id.to_string()])
                .args(["--requests", &requests.to_string()])
                .args(["--deadline", &CLIENT_DEADLINE_S.to_string()]),
        );
        let status = client.wait_exit(Duration::from_secs(CLIENT_DEADLINE_S + 10));
        let ok = format!("client {id}: {requests}/{requests} replies ok, ");
        assert!(
            status.success() && client.lines().iter().any(|l| l.starts_with(&ok)),
            "client {id} through {frontends:?} failed ({status}):\n{}",
            client.log()
        );
    }

    /// Sends one command with examples-c/ctl to a REP control endpoint; returns its stdout.
    pub fn ctl(&self, control: &str, command: &str) -> Vec<String> {
        let out = check_output(
            &format!("ctl {command}"),
            Command::new(self.path("ctl")).args([control, command, "10000"]),
        );
        out.lines().map(str::to_owned).collect()
    }
}

// ---------------------------------------------------------------------------------------
// Child processes

/// Lines a child printed (stdout and stderr, stderr prefixed "stderr: "), and how many of
/// its two streams are still open.
#[derive(Default)]
struct Output {
    state: Mutex<(Vec<String>, usize)>,
    changed: Condvar,
}

impl Output {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<String>, usize)> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running program. Dropping it kills the process (if still running), so a failing test
/// leaves nothing behind; while panicking it also prints what the program wrote.
pub struct Proc {
    pub name: String,
    child: Child,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        let output = Arc::new(Output::default());
        output.lock().1 = 2;
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let readers = vec![
            read_lines(stdout, "", output.clone()),
            read_lines(stderr, "stderr: ", output.clone()),
        ];
        Proc {
            name: name.to_owned(),
            child,
            output,
            readers,
            status: None,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn lines(&self) -> Vec<String> {
        self.output.lock().0.clone()
    }

    pub fn log(&self) -> String {
        format!("---- {} ----\n{}\n", self.name, self.lines().join("\n"))
    }

    /// Waits until the process prints a line for which `pred` holds; returns that line.
    pub fn wait_line(&self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + timeout;
        let mut state = self.output.lock();
        let why = loop {
            if let Some(line) = state.0.iter().find(|l| pred(l)) {
                return line.clone();
            }
            let now = Instant::now();
            if state.1 == 0 {
                break "the process closed its output first";
            }
            if now >= end {
                break "deadline passed";
            }
            state = match self.output.changed.wait_timeout(state, end - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        };
        let log = state.0.join("\n");
        drop(state);
        panic!("{}: {what}: {why}\n{log}", self.name);
    }

    /// Waits for the process to exit, at most `timeout`; the output is complete afterwards.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        let end = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.status = Some(status);
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < end,
                "{} did not exit within {timeout:?}\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn signal(&self, signal: libc::c_int) {
        if self.status.is_none() {
            // SAFETY: kill(2) on our own child's pid, which has not been reaped yet (a
            // reaped child has `status` set).
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, signal);
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        if std::thread::panicking() {
            eprint!("{}", self.log());
        }
    }
}

fn read_lines(
    stream: impl Read + Send + 'static,
    prefix: &'static str,
    output: Arc<Output>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        // Read to EOF whatever the bytes are, so that the child never blocks on a full pipe.
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches('\n');
            output.lock().0.push(format!("{prefix}{text}"));
            output.changed.notify_all();
            line.clear();
        }
        output.lock().1 -= 1;
        output.changed.notify_all();
    })
}
