//! The command line and the configuration file: one clap definition parses both (the file's
//! settings become flags), then the command line wins setting by setting.

use std::os::raw::c_int;

use clap::{CommandFactory, Parser};
use zmq_proxy_stream::api::*;

/// A CURVE-delegating ZeroMQ broker: zmq_proxy_stream between a ZMQ_STREAM frontend and a
/// ZMQ_STREAM backend (dial-in) or workers it dials (dial-out). The access log goes to
/// stdout, status and errors to stderr; SIGINT/SIGTERM stop it (exit 0). See
/// zmq-proxy-stream(1).
#[derive(Parser, Debug, Default, Clone)]
#[command(name = "zmq-proxy-stream", version, max_term_width = 100)]
pub struct Cli {
    /// TOML file with the same settings (keys are the long flags' names); flags win
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<String>,

    /// ZMQ_STREAM endpoint clients connect to (bound); required
    #[arg(long, value_name = "EP")]
    pub frontend: Option<String>,
    /// Dial-in: ZMQ_STREAM endpoint workers connect to (bound)
    #[arg(long, value_name = "EP")]
    pub backend: Option<String>,
    /// Also bind the REP control socket here (PAUSE, RESUME, STATISTICS, STREAMSTATS, TERMINATE)
    #[arg(long, value_name = "EP")]
    pub control: Option<String>,
    /// Also publish the proxy's events on a PUB socket bound here
    #[arg(long, value_name = "EP")]
    pub events: Option<String>,
    /// Do not print the access log on stdout
    #[arg(long)]
    pub no_access_log: bool,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
    /// ZMQ_SNDHWM of the frontend and backend sockets
    #[arg(long, value_name = "N")]
    pub sndhwm: Option<i32>,
    /// ZMQ_RCVHWM of the frontend and backend sockets
    #[arg(long, value_name = "N")]
    pub rcvhwm: Option<i32>,

    /// ZMQ_PROXY_STREAM_MECHANISMS: comma-separated NULL, PLAIN, CURVE, GSSAPI
    #[arg(long, value_name = "LIST")]
    pub mechanisms: Option<String>,
    /// ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT (default 5s)
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    pub handshake_timeout: Option<c_int>,
    /// ZMQ_PROXY_STREAM_WAIT_TIMEOUT (default 20s)
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    pub wait_timeout: Option<c_int>,
    /// ZMQ_PROXY_STREAM_MAX_WAITING (default 1024)
    #[arg(long, value_name = "N")]
    pub max_waiting: Option<c_int>,
    /// ZMQ_PROXY_STREAM_MAX_PAIRS (default 0: unlimited)
    #[arg(long, value_name = "N")]
    pub max_pairs: Option<c_int>,
    /// ZMQ_PROXY_STREAM_PAIR_BUFFER (default 4MiB)
    #[arg(long, value_name = "SIZE", value_parser = size_bytes)]
    pub pair_buffer: Option<i64>,
    /// ZMQ_PROXY_STREAM_IDLE_TIMEOUT (default 0: none)
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    pub idle_timeout: Option<c_int>,
    /// ZMQ_PROXY_STREAM_WORKER_MAX_AGE (default 20s)
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    pub worker_max_age: Option<c_int>,
    /// ZMQ_PROXY_STREAM_BACKPRESSURE: 0 or 1 (default 0)
    #[arg(long, value_name = "0|1")]
    pub backpressure: Option<c_int>,
    /// ZMQ_PROXY_STREAM_STALL_TIMEOUT (default 2s)
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    pub stall_timeout: Option<c_int>,
    /// ZMQ_PROXY_STREAM_PROBE_INTERVAL (default 10s)
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    pub probe_interval: Option<c_int>,
    /// ZMQ_PROXY_STREAM_ALLOW: a client network admitted (repeatable)
    #[arg(long, value_name = "NETWORK")]
    pub allow: Vec<String>,
    /// ZMQ_PROXY_STREAM_DENY: a client network refused (repeatable)
    #[arg(long, value_name = "NETWORK")]
    pub deny: Vec<String>,
    /// ZMQ_PROXY_STREAM_MAX_PER_ADDRESS (default 0: unlimited)
    #[arg(long, value_name = "N")]
    pub max_per_address: Option<c_int>,
    /// ZMQ_PROXY_STREAM_WORKER_ENDPOINT: dial-out to a worker bound here (repeatable)
    #[arg(long, value_name = "EP")]
    pub worker_endpoint: Vec<String>,
    /// ZMQ_PROXY_STREAM_CONNECT_TIMEOUT (default 2s)
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    pub connect_timeout: Option<c_int>,
    /// ZMQ_PROXY_STREAM_FAIL_BAN (default 2; 0: off)
    #[arg(long, value_name = "N")]
    pub fail_ban: Option<c_int>,
    /// ZMQ_PROXY_STREAM_FAIL_BAN_TIME: the first ban, doubling per repeat (default 30s)
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    pub fail_ban_time: Option<c_int>,
    /// ZMQ_PROXY_STREAM_TAKEOVER: 0 or 1 (default 1: paired connections leave libzmq)
    #[arg(long, value_name = "0|1")]
    pub takeover: Option<c_int>,
    /// ZMQ_PROXY_STREAM_THREADS: relay threads (default 1)
    #[arg(long, value_name = "N")]
    pub threads: Option<c_int>,
    /// ZMQ_PROXY_STREAM_MAX_CONNECTIONS: connections held at once, each a descriptor
    /// (default -1: derived from `ulimit -n`; 0: no limit)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub max_connections: Option<c_int>,
}

/// A duration in milliseconds: "250" (ms), "250ms", "10s", "2m", "1h".
pub fn duration_ms(text: &str) -> Result<c_int, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (250ms, 10s, 2m, 1h)"))?;
    let scale = match unit {
        "" | "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(format!("'{text}': the unit is one of ms, s, m, h")),
    };
    n.checked_mul(scale)
        .and_then(|ms| c_int::try_from(ms).ok())
        .ok_or_else(|| format!("'{text}' is too long"))
}

/// A size in bytes: "65536", "64KiB", "4MiB", "1GiB".
pub fn size_bytes(text: &str) -> Result<i64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (65536, 64KiB, 4MiB)"))?;
    let scale = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return Err(format!("'{text}': the unit is one of KiB, MiB, GiB")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// One option for the library: its number and value bytes, and the flag it came from.
pub struct LibOption {
    pub flag: &'static str,
    pub option: c_int,
    pub value: Vec<u8>,
    pub text: String,
}

impl Cli {
    /// The command line's settings over the file's: a setting given on the command line
    /// replaces the file's (a repeatable one as a whole).
    pub fn over(self, file: Cli) -> Cli {
        macro_rules! pick {
            ($($field:ident),*) => {
                Cli {
                    config: self.config,
                    no_access_log: self.no_access_log || file.no_access_log,
                    allow: if self.allow.is_empty() { file.allow } else { self.allow },
                    deny: if self.deny.is_empty() { file.deny } else { self.deny },
                    worker_endpoint: if self.worker_endpoint.is_empty() {
                        file.worker_endpoint
                    } else {
                        self.worker_endpoint
                    },
                    $($field: self.$field.or(file.$field),)*
                }
            };
        }
        pick!(
            frontend,
            backend,
            control,
            events,
            metrics,
            sndhwm,
            rcvhwm,
            mechanisms,
            handshake_timeout,
            wait_timeout,
            max_waiting,
            max_pairs,
            pair_buffer,
            idle_timeout,
            worker_max_age,
            backpressure,
            stall_timeout,
            probe_interval,
            max_per_address,
            connect_timeout,
            fail_ban,
            fail_ban_time,
            takeover,
            threads,
            max_connections
        )
    }

    /// The library options these settings give, in the order they are set.
    pub fn lib_options(&self) -> Vec<LibOption> {
        let mut out = Vec::new();
        let mut int = |flag, option, v: Option<c_int>| {
            if let Some(v) = v {
                out.push(LibOption {
                    flag,
                    option,
                    value: v.to_ne_bytes().to_vec(),
                    text: v.to_string(),
                });
            }
        };
        int(
            "--handshake-timeout",
            ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT,
            self.handshake_timeout,
        );
        int(
            "--wait-timeout",
            ZMQ_PROXY_STREAM_WAIT_TIMEOUT,
            self.wait_timeout,
        );
        int(
            "--max-waiting",
            ZMQ_PROXY_STREAM_MAX_WAITING,
            self.max_waiting,
        );
        int("--max-pairs", ZMQ_PROXY_STREAM_MAX_PAIRS, self.max_pairs);
        int(
            "--idle-timeout",
            ZMQ_PROXY_STREAM_IDLE_TIMEOUT,
            self.idle_timeout,
        );
        int(
            "--worker-max-age",
            ZMQ_PROXY_STREAM_WORKER_MAX_AGE,
            self.worker_max_age,
        );
        int(
            "--backpressure",
            ZMQ_PROXY_STREAM_BACKPRESSURE,
            self.backpressure,
        );
        int(
            "--stall-timeout",
            ZMQ_PROXY_STREAM_STALL_TIMEOUT,
            self.stall_timeout,
        );
        int(
            "--probe-interval",
            ZMQ_PROXY_STREAM_PROBE_INTERVAL,
            self.probe_interval,
        );
        int(
            "--max-per-address",
            ZMQ_PROXY_STREAM_MAX_PER_ADDRESS,
            self.max_per_address,
        );
        int(
            "--connect-timeout",
            ZMQ_PROXY_STREAM_CONNECT_TIMEOUT,
            self.connect_timeout,
        );
        int("--fail-ban", ZMQ_PROXY_STREAM_FAIL_BAN, self.fail_ban);
        int(
            "--fail-ban-time",
            ZMQ_PROXY_STREAM_FAIL_BAN_TIME,
            self.fail_ban_time,
        );
        int("--takeover", ZMQ_PROXY_STREAM_TAKEOVER, self.takeover);
        int("--threads", ZMQ_PROXY_STREAM_THREADS, self.threads);
        int(
            "--max-connections",
            ZMQ_PROXY_STREAM_MAX_CONNECTIONS,
            self.max_connections,
        );
        if let Some(n) = self.pair_buffer {
            out.push(LibOption {
                flag: "--pair-buffer",
                option: ZMQ_PROXY_STREAM_PAIR_BUFFER,
                value: n.to_ne_bytes().to_vec(),
                text: n.to_string(),
            });
        }
        let mut string = |flag, option, text: &str| {
            out.push(LibOption {
                flag,
                option,
                value: text.as_bytes().to_vec(),
                text: text.to_owned(),
            });
        };
        if let Some(m) = &self.mechanisms {
            string("--mechanisms", ZMQ_PROXY_STREAM_MECHANISMS, m);
        }
        for a in &self.allow {
            string("--allow", ZMQ_PROXY_STREAM_ALLOW, a);
        }
        for d in &self.deny {
            string("--deny", ZMQ_PROXY_STREAM_DENY, d);
        }
        for w in &self.worker_endpoint {
            string("--worker-endpoint", ZMQ_PROXY_STREAM_WORKER_ENDPOINT, w);
        }
        out
    }
}

/// What went wrong with the command line or the file: one line, no usage text.
fn one_line(err: &clap::Error) -> String {
    let rendered = err.to_string();
    let first = rendered.lines().next().unwrap_or("bad arguments");
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// The outcome of reading the command line.
pub enum Parsed {
    Run(Box<Cli>),
    /// --help or --version: print this on stdout and exit 0.
    Print(String),
    /// Exit 2 after this one line.
    Error(String),
}

/// Parses the command line, then the configuration file it names, and merges them.
pub fn parse(args: impl IntoIterator<Item = std::ffi::OsString>) -> Parsed {
    let flags = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            return Parsed::Print(e.to_string());
        }
        Err(e) => return Parsed::Error(one_line(&e)),
    };
    let Some(path) = flags.config.clone() else {
        return Parsed::Run(Box::new(flags));
    };
    match read_config(&path) {
        Ok(file) => Parsed::Run(Box::new(flags.over(file))),
        Err(e) => Parsed::Error(format!("config {path}: {e}")),
    }
}

/// Reads a TOML configuration file into the same settings: each key is a long flag's name.
fn read_config(path: &str) -> Result<Cli, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        e.to_string()
            .lines()
            .next()
            .unwrap_or("not TOML")
            .to_owned()
    })?;
    let command = Cli::command();
    let mut args: Vec<String> = vec!["zmq-proxy-stream".to_owned()];
    for (key, value) in &table {
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()))
            .filter(|a| a.get_long() != Some("config"))
            .ok_or_else(|| format!("unknown setting '{key}'"))?;
        let is_switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
        let scalar = |v: &toml::Value| -> Result<String, String> {
            match v {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(i) => Ok(i.to_string()),
                _ => Err(format!("'{key}' takes a string or an integer")),
            }
        };
        match value {
            toml::Value::Boolean(b) if is_switch => {
                if *b {
                    args.push(format!("--{key}"));
                }
            }
            toml::Value::Array(items) if !is_switch => {
                for item in items {
                    args.push(format!("--{key}={}", scalar(item)?));
                }
            }
            _ if is_switch => return Err(format!("'{key}' takes true or false")),
            v => args.push(format!("--{key}={}", scalar(v)?)),
        }
    }
    Cli::try_parse_from(args).map_err(|e| one_line(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration_ms("250"), Ok(250));
        assert_eq!(duration_ms("250ms"), Ok(250));
        assert_eq!(duration_ms("10s"), Ok(10_000));
        assert_eq!(duration_ms("2m"), Ok(120_000));
        assert_eq!(duration_ms("1h"), Ok(3_600_000));
        assert_eq!(duration_ms("0"), Ok(0));
        assert!(duration_ms("").is_err());
        assert!(duration_ms("-1").is_err());
        assert!(duration_ms("10 s").is_err());
        assert!(duration_ms("1000h").is_err());
        assert_eq!(size_bytes("65536"), Ok(65536));
        assert_eq!(size_bytes("64KiB"), Ok(65536));
        assert_eq!(size_bytes("4MiB"), Ok(4 << 20));
        assert!(size_bytes("4MB").is_err());
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = Cli::try_parse_from([
            "x",
            "--frontend=tcp://a:1",
            "--wait-timeout=1s",
            "--allow=10.0.0.0/8",
            "--max-pairs=3",
        ])
        .unwrap();
        let flags = Cli::try_parse_from(["x", "--wait-timeout", "2s", "--allow", "::1"]).unwrap();
        let cli = flags.over(file);
        assert_eq!(cli.frontend.as_deref(), Some("tcp://a:1"));
        assert_eq!(cli.wait_timeout, Some(2000));
        assert_eq!(cli.allow, ["::1"]);
        assert_eq!(cli.max_pairs, Some(3));
    }

    #[test]
    fn every_handle_option_has_a_flag() {
        let all = Cli::try_parse_from([
            "x",
            "--mechanisms=CURVE",
            "--handshake-timeout=1",
            "--wait-timeout=1",
            "--max-waiting=1",
            "--max-pairs=1",
            "--pair-buffer=1MiB",
            "--idle-timeout=1",
            "--worker-max-age=1",
            "--backpressure=1",
            "--stall-timeout=1",
            "--probe-interval=1",
            "--allow=::1",
            "--deny=::2",
            "--max-per-address=1",
            "--worker-endpoint=tcp://a:1",
            "--connect-timeout=1",
            "--fail-ban=1",
            "--fail-ban-time=1",
            "--takeover=1",
            "--threads=1",
            "--max-connections=1",
        ])
        .unwrap();
        let mut set: Vec<c_int> = all.lib_options().iter().map(|o| o.option).collect();
        set.sort();
        // Every option of the handle but EVENTS, whose socket the command makes itself.
        let expected: Vec<c_int> = (ZMQ_PROXY_STREAM_MECHANISMS..=ZMQ_PROXY_STREAM_MAX_CONNECTIONS)
            .filter(|o| *o != ZMQ_PROXY_STREAM_EVENTS)
            .collect();
        assert_eq!(set, expected);
    }
}
