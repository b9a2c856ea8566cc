//! HAProxy in TCP mode as a child process.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

pub(crate) static NEXT_TEMP: AtomicI32 = AtomicI32::new(0);

/// HAProxy in TCP mode, in the foreground as a child process, killed on drop.
pub(crate) struct Haproxy {
    pub(crate) child: Child,
    pub(crate) dir: PathBuf,
    pub(crate) port: u16,
}

impl Haproxy {
    pub(crate) fn start(server_port: u16) -> Result<Haproxy, String> {
        let exe = find_on_path("haproxy").ok_or("haproxy is not on PATH")?;
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!(
            "streamq-bench-haproxy-{}-{}",
            std::process::id(),
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("temp dir: {e}"))?;
        let config = format!(
            "global\n    maxconn 4096\n\ndefaults\n    mode tcp\n    timeout connect 5s\n    \
             timeout client 1h\n    timeout server 1h\n\nfrontend fe\n    bind 127.0.0.1:{port}\n    \
             default_backend be\n\nbackend be\n    server worker 127.0.0.1:{server_port}\n"
        );
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(&cfg, config).map_err(|e| format!("write config: {e}"))?;
        let log_path = dir.join("haproxy.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("log: {e}"))?;
        let child = Command::new(exe)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn haproxy: {e}"))?;
        let mut h = Haproxy { child, dir, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = h.child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("haproxy exited ({status}): {}", log.trim()));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(h);
            }
            if Instant::now() > deadline {
                return Err("haproxy did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) fn haproxy_version() -> Option<String> {
    let exe = find_on_path("haproxy")?;
    let out = Command::new(exe).arg("-v").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_string())
}

pub(crate) fn tcp_port(endpoint: &str) -> Result<u16, String> {
    endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("no port in {endpoint}"))
}
