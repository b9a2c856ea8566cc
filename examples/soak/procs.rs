//! The processes a soak run starts, and the broker's numbers read from /proc.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every process started, killed (SIGKILL) and reaped when dropped: a run that fails or
/// panics half-way leaves nothing behind.
#[derive(Default)]
pub struct Procs {
    pub children: Vec<(String, Child)>,
}

impl Procs {
    /// Starts `program args` with stdout and stderr into `log`. The child also gets SIGKILL
    /// when this process dies, so not even a SIGKILLed coordinator leaves load running.
    pub fn start(
        &mut self,
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<u32, String> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in env {
            command.env(k, v);
        }
        // SAFETY: prctl is async-signal-safe and touches no memory of ours; it runs in the
        // forked child before exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| format!("start {name} ({}): {e}", program.display()))?;
        let pid = child.id();
        self.children.push((name.to_owned(), child));
        Ok(pid)
    }

    pub fn signal(&mut self, pid: u32, signal: i32) {
        // SAFETY: kill(2) on a child we started and have not reaped, so the pid is still ours.
        unsafe {
            libc::kill(pid as i32, signal);
        }
    }

    /// Waits (until `deadline`) for the child `pid` to end; its exit code, or None when it
    /// was killed by a signal or is still running at the deadline.
    pub fn wait(&mut self, pid: u32, deadline: Instant) -> Result<Option<i32>, String> {
        let at = self
            .children
            .iter()
            .position(|(_, c)| c.id() == pid)
            .ok_or_else(|| format!("no child {pid}"))?;
        loop {
            if let Some(status) = self.children[at].1.try_wait().map_err(|e| e.to_string())? {
                self.children.remove(at);
                return Ok(status.code());
            }
            if Instant::now() >= deadline {
                return Err(format!("{} (pid {pid}) still running", self.children[at].0));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The name of a child that has exited on its own, if any (it is left in the list).
    pub fn exited(&mut self) -> Option<String> {
        self.children
            .iter_mut()
            .find_map(|(name, c)| match c.try_wait() {
                Ok(Some(status)) => Some(format!("{name} exited ({status})")),
                _ => None,
            })
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Open descriptors of `pid`.
pub fn fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}
