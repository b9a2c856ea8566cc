//! The options of a proxy handle, set and read in zmq_setsockopt's idiom: an option number,
//! and a value given as bytes whose size must match the option's type. Pure conversion and
//! validation; a refused value changes nothing.

use std::os::raw::c_int;
use std::time::Duration;

use crate::api::*;
use crate::core::{Cidr, Limits};
use crate::zmq_io::Errno;
use crate::zmtp::MechanismSet;

/// Smallest pair buffer: one libzmq chunk pins 8 KiB, and a pair must hold a few.
pub(crate) const MIN_PAIR_BUFFER: i64 = 16384;
/// Most relay threads a proxy may run.
pub(crate) const MAX_RELAY_THREADS: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub limits: Limits,
    /// ZMQ_PROXY_STREAM_EVENTS: the caller's socket, as an address (0 = none).
    pub events: usize,
}

/// An endpoint libzmq could connect to: "transport://address", printable, no NUL.
fn valid_endpoint(text: &str) -> bool {
    matches!(text.split_once("://"), Some((t, a)) if !t.is_empty() && !a.is_empty())
        && !text.chars().any(|c| c.is_control())
}

fn int_value(value: &[u8]) -> Result<c_int, Errno> {
    let bytes: [u8; 4] = value.try_into().map_err(|_| libc::EINVAL)?;
    Ok(c_int::from_ne_bytes(bytes))
}

fn i64_value(value: &[u8]) -> Result<i64, Errno> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| libc::EINVAL)?;
    Ok(i64::from_ne_bytes(bytes))
}

/// A string option's value: its bytes, with one trailing NUL tolerated.
fn str_value(value: &[u8]) -> Result<&str, Errno> {
    let value = value.strip_suffix(&[0]).unwrap_or(value);
    std::str::from_utf8(value).map_err(|_| libc::EINVAL)
}

fn non_negative(v: c_int) -> Result<usize, Errno> {
    usize::try_from(v).map_err(|_| libc::EINVAL)
}

/// Milliseconds, 0 meaning "none".
fn optional_ms(v: c_int) -> Result<Option<Duration>, Errno> {
    let ms = non_negative(v)?;
    Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
}

fn ms_of(d: Option<Duration>) -> c_int {
    d.map_or(0, |d| d.as_millis().min(c_int::MAX as u128) as c_int)
}

impl Options {
    /// zmq_proxy_stream_setopt: EINVAL for an unknown option, a value of the wrong size or
    /// out of range; nothing changes then.
    pub fn set(&mut self, option: c_int, value: &[u8]) -> Result<(), Errno> {
        let l = &mut self.limits;
        match option {
            ZMQ_PROXY_STREAM_MECHANISMS => {
                l.mechanisms = MechanismSet::parse(str_value(value)?).ok_or(libc::EINVAL)?;
            }
            ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT => {
                l.handshake_timeout = optional_ms(int_value(value)?)?;
            }
            ZMQ_PROXY_STREAM_WAIT_TIMEOUT => l.wait_timeout = optional_ms(int_value(value)?)?,
            ZMQ_PROXY_STREAM_MAX_WAITING => l.max_waiting = non_negative(int_value(value)?)?,
            ZMQ_PROXY_STREAM_MAX_PAIRS => {
                let n = non_negative(int_value(value)?)?;
                l.max_pairs = (n > 0).then_some(n);
            }
            ZMQ_PROXY_STREAM_PAIR_BUFFER => {
                let n = i64_value(value)?;
                if n < MIN_PAIR_BUFFER {
                    return Err(libc::EINVAL);
                }
                l.pair_buffer = usize::try_from(n).map_err(|_| libc::EINVAL)?;
            }
            ZMQ_PROXY_STREAM_IDLE_TIMEOUT => l.idle_timeout = optional_ms(int_value(value)?)?,
            ZMQ_PROXY_STREAM_BACKPRESSURE => {
                l.backpressure = match int_value(value)? {
                    0 => false,
                    1 => true,
                    _ => return Err(libc::EINVAL),
                };
            }
            ZMQ_PROXY_STREAM_STALL_TIMEOUT => l.stall_timeout = optional_ms(int_value(value)?)?,
            ZMQ_PROXY_STREAM_PROBE_INTERVAL => {
                l.probe_interval = optional_ms(int_value(value)?)?;
            }
            ZMQ_PROXY_STREAM_ALLOW | ZMQ_PROXY_STREAM_DENY => {
                let text = str_value(value)?;
                let list = if option == ZMQ_PROXY_STREAM_ALLOW {
                    &mut l.policy.allow
                } else {
                    &mut l.policy.deny
                };
                if text.is_empty() {
                    list.clear();
                } else {
                    list.push(Cidr::parse(text).ok_or(libc::EINVAL)?);
                }
            }
            ZMQ_PROXY_STREAM_MAX_PER_ADDRESS => {
                let n = non_negative(int_value(value)?)?;
                l.policy.max_per_address = (n > 0).then_some(n);
            }
            ZMQ_PROXY_STREAM_WORKER_MAX_AGE => {
                l.worker_max_age = optional_ms(int_value(value)?)?;
            }
            ZMQ_PROXY_STREAM_WORKER_ENDPOINT => {
                let text = str_value(value)?;
                if text.is_empty() {
                    l.worker_endpoints.clear();
                } else if valid_endpoint(text) {
                    l.worker_endpoints.push(text.to_string());
                } else {
                    return Err(libc::EINVAL);
                }
            }
            ZMQ_PROXY_STREAM_CONNECT_TIMEOUT => {
                l.connect_timeout = optional_ms(int_value(value)?)?;
            }
            ZMQ_PROXY_STREAM_FAIL_BAN => {
                let n = non_negative(int_value(value)?)?;
                l.policy.fail_ban = (n > 0).then_some(n as u32);
            }
            ZMQ_PROXY_STREAM_FAIL_BAN_TIME => {
                l.policy.fail_ban_time = optional_ms(int_value(value)?)?.ok_or(libc::EINVAL)?;
            }
            ZMQ_PROXY_STREAM_EVENTS => {
                let bytes: [u8; std::mem::size_of::<usize>()] =
                    value.try_into().map_err(|_| libc::EINVAL)?;
                self.events = usize::from_ne_bytes(bytes);
            }
            ZMQ_PROXY_STREAM_TAKEOVER => {
                l.takeover = match int_value(value)? {
                    0 => false,
                    1 => true,
                    _ => return Err(libc::EINVAL),
                };
            }
            ZMQ_PROXY_STREAM_THREADS => {
                let n = non_negative(int_value(value)?)?;
                if !(1..=MAX_RELAY_THREADS).contains(&n) {
                    return Err(libc::EINVAL);
                }
                l.relay_threads = n;
            }
            ZMQ_PROXY_STREAM_MAX_CONNECTIONS => {
                let n = int_value(value)?;
                if n < -1 {
                    return Err(libc::EINVAL);
                }
                l.max_connections = n;
            }
            _ => return Err(libc::EINVAL),
        }
        Ok(())
    }

    /// zmq_proxy_stream_getopt: writes the value into `out` and returns its size. Strings
    /// are written with a terminating NUL. EINVAL for an unknown option or a buffer that is
    /// too small.
    pub fn get(&self, option: c_int, out: &mut [u8]) -> Result<usize, Errno> {
        let l = &self.limits;
        let bytes: Vec<u8> = match option {
            ZMQ_PROXY_STREAM_MECHANISMS => {
                let mut s = l.mechanisms.to_list().into_bytes();
                s.push(0);
                s
            }
            ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT => ms_of(l.handshake_timeout).to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_WAIT_TIMEOUT => ms_of(l.wait_timeout).to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_MAX_WAITING => (l.max_waiting.min(c_int::MAX as usize) as c_int)
                .to_ne_bytes()
                .to_vec(),
            ZMQ_PROXY_STREAM_MAX_PAIRS => (l.max_pairs.unwrap_or(0).min(c_int::MAX as usize)
                as c_int)
                .to_ne_bytes()
                .to_vec(),
            ZMQ_PROXY_STREAM_PAIR_BUFFER => (l.pair_buffer as i64).to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_IDLE_TIMEOUT => ms_of(l.idle_timeout).to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_BACKPRESSURE => (l.backpressure as c_int).to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_STALL_TIMEOUT => ms_of(l.stall_timeout).to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_PROBE_INTERVAL => ms_of(l.probe_interval).to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_ALLOW | ZMQ_PROXY_STREAM_DENY => {
                let list = if option == ZMQ_PROXY_STREAM_ALLOW {
                    &l.policy.allow
                } else {
                    &l.policy.deny
                };
                let mut s = list
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
                    .into_bytes();
                s.push(0);
                s
            }
            ZMQ_PROXY_STREAM_MAX_PER_ADDRESS => {
                (l.policy
                    .max_per_address
                    .unwrap_or(0)
                    .min(c_int::MAX as usize) as c_int)
                    .to_ne_bytes()
                    .to_vec()
            }
            ZMQ_PROXY_STREAM_WORKER_MAX_AGE => ms_of(l.worker_max_age).to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_WORKER_ENDPOINT => {
                let mut s = l.worker_endpoints.join(",").into_bytes();
                s.push(0);
                s
            }
            ZMQ_PROXY_STREAM_CONNECT_TIMEOUT => ms_of(l.connect_timeout).to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_FAIL_BAN => (l.policy.fail_ban.unwrap_or(0).min(c_int::MAX as u32)
                as c_int)
                .to_ne_bytes()
                .to_vec(),
            ZMQ_PROXY_STREAM_FAIL_BAN_TIME => {
                ms_of(Some(l.policy.fail_ban_time)).to_ne_bytes().to_vec()
            }
            ZMQ_PROXY_STREAM_EVENTS => self.events.to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_TAKEOVER => (l.takeover as c_int).to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_THREADS => (l.relay_threads as c_int).to_ne_bytes().to_vec(),
            ZMQ_PROXY_STREAM_MAX_CONNECTIONS => l.max_connections.to_ne_bytes().to_vec(),
            _ => return Err(libc::EINVAL),
        };
        let dest = out.get_mut(..bytes.len()).ok_or(libc::EINVAL)?;
        dest.copy_from_slice(&bytes);
        Ok(bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_int(o: &Options, option: c_int) -> c_int {
        let mut buf = [0u8; 4];
        assert_eq!(o.get(option, &mut buf), Ok(4));
        c_int::from_ne_bytes(buf)
    }

    #[test]
    fn defaults_read_back() {
        let o = Options::default();
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT), 5000);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_WAIT_TIMEOUT), 20000);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_MAX_WAITING), 1024);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_MAX_PAIRS), 0);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_IDLE_TIMEOUT), 0);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_WORKER_MAX_AGE), 20000);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_BACKPRESSURE), 0);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_STALL_TIMEOUT), 2000);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_PROBE_INTERVAL), 10000);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_TAKEOVER), 1);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_THREADS), 1);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_MAX_CONNECTIONS), -1);
        let mut buf = [0u8; 8];
        assert_eq!(o.get(ZMQ_PROXY_STREAM_PAIR_BUFFER, &mut buf), Ok(8));
        assert_eq!(i64::from_ne_bytes(buf), 4 << 20);
        let mut s = [0u8; 64];
        let n = o.get(ZMQ_PROXY_STREAM_MECHANISMS, &mut s).unwrap();
        assert_eq!(&s[..n], b"NULL,PLAIN,CURVE,GSSAPI\0");
    }

    #[test]
    fn values_set_and_read_back() {
        let mut o = Options::default();
        o.set(ZMQ_PROXY_STREAM_MECHANISMS, b"curve,PLAIN\0")
            .unwrap();
        let mut s = [0u8; 64];
        let n = o.get(ZMQ_PROXY_STREAM_MECHANISMS, &mut s).unwrap();
        assert_eq!(&s[..n], b"PLAIN,CURVE\0");
        o.set(ZMQ_PROXY_STREAM_IDLE_TIMEOUT, &250i32.to_ne_bytes())
            .unwrap();
        assert_eq!(o.limits.idle_timeout, Some(Duration::from_millis(250)));
        o.set(ZMQ_PROXY_STREAM_MAX_PAIRS, &7i32.to_ne_bytes())
            .unwrap();
        assert_eq!(o.limits.max_pairs, Some(7));
        o.set(ZMQ_PROXY_STREAM_HANDSHAKE_TIMEOUT, &0i32.to_ne_bytes())
            .unwrap();
        assert_eq!(o.limits.handshake_timeout, None);
        o.set(ZMQ_PROXY_STREAM_PAIR_BUFFER, &(1i64 << 20).to_ne_bytes())
            .unwrap();
        assert_eq!(o.limits.pair_buffer, 1 << 20);
    }

    #[test]
    fn dial_out_fail_ban_and_events_options() {
        let mut o = Options::default();
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_CONNECT_TIMEOUT), 2000);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_FAIL_BAN), 2);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_FAIL_BAN_TIME), 30000);
        let mut s = [0u8; 128];
        assert_eq!(o.get(ZMQ_PROXY_STREAM_WORKER_ENDPOINT, &mut s), Ok(1));
        o.set(ZMQ_PROXY_STREAM_WORKER_ENDPOINT, b"tcp://10.0.0.1:5600")
            .unwrap();
        o.set(ZMQ_PROXY_STREAM_WORKER_ENDPOINT, b"ipc:///run/w.sock\0")
            .unwrap();
        let n = o.get(ZMQ_PROXY_STREAM_WORKER_ENDPOINT, &mut s).unwrap();
        assert_eq!(&s[..n], b"tcp://10.0.0.1:5600,ipc:///run/w.sock\0");
        let e = Err(libc::EINVAL);
        let before = o.clone();
        assert_eq!(o.set(ZMQ_PROXY_STREAM_WORKER_ENDPOINT, b"10.0.0.1:5600"), e);
        assert_eq!(o.set(ZMQ_PROXY_STREAM_WORKER_ENDPOINT, b"tcp://"), e);
        assert_eq!(o.set(ZMQ_PROXY_STREAM_WORKER_ENDPOINT, b"tcp://a\nb"), e);
        assert_eq!(
            o.set(ZMQ_PROXY_STREAM_FAIL_BAN_TIME, &0i32.to_ne_bytes()),
            e
        );
        assert_eq!(o.set(ZMQ_PROXY_STREAM_FAIL_BAN, &(-1i32).to_ne_bytes()), e);
        assert_eq!(o.set(ZMQ_PROXY_STREAM_EVENTS, &1i32.to_ne_bytes()), e);
        assert_eq!(o, before);
        o.set(ZMQ_PROXY_STREAM_WORKER_ENDPOINT, b"").unwrap();
        assert!(o.limits.worker_endpoints.is_empty());
        o.set(ZMQ_PROXY_STREAM_FAIL_BAN, &3i32.to_ne_bytes())
            .unwrap();
        assert_eq!(o.limits.policy.fail_ban, Some(3));
        o.set(ZMQ_PROXY_STREAM_CONNECT_TIMEOUT, &0i32.to_ne_bytes())
            .unwrap();
        assert_eq!(o.limits.connect_timeout, None);
        let socket = 0x1234usize;
        o.set(ZMQ_PROXY_STREAM_EVENTS, &socket.to_ne_bytes())
            .unwrap();
        let mut p = [0u8; std::mem::size_of::<usize>()];
        assert_eq!(o.get(ZMQ_PROXY_STREAM_EVENTS, &mut p), Ok(p.len()));
        assert_eq!(usize::from_ne_bytes(p), socket);
    }

    #[test]
    fn bad_options_and_values_are_einval_and_change_nothing() {
        let mut o = Options::default();
        let before = o.clone();
        let e = Err(libc::EINVAL);
        assert_eq!(o.set(999, &1i32.to_ne_bytes()), e);
        assert_eq!(
            o.set(ZMQ_PROXY_STREAM_IDLE_TIMEOUT, &(-1i32).to_ne_bytes()),
            e
        );
        assert_eq!(o.set(ZMQ_PROXY_STREAM_IDLE_TIMEOUT, &1i64.to_ne_bytes()), e);
        assert_eq!(o.set(ZMQ_PROXY_STREAM_IDLE_TIMEOUT, &[1, 0]), e);
        assert_eq!(o.set(ZMQ_PROXY_STREAM_BACKPRESSURE, &2i32.to_ne_bytes()), e);
        assert_eq!(
            o.set(ZMQ_PROXY_STREAM_STALL_TIMEOUT, &(-5i32).to_ne_bytes()),
            e
        );
        assert_eq!(
            o.set(ZMQ_PROXY_STREAM_PAIR_BUFFER, &1024i32.to_ne_bytes()),
            e
        );
        assert_eq!(
            o.set(ZMQ_PROXY_STREAM_PAIR_BUFFER, &100i64.to_ne_bytes()),
            e
        );
        assert_eq!(o.set(ZMQ_PROXY_STREAM_MECHANISMS, b""), e);
        assert_eq!(o.set(ZMQ_PROXY_STREAM_MECHANISMS, b"CURVE,TLS"), e);
        assert_eq!(o.set(ZMQ_PROXY_STREAM_MECHANISMS, &[0xff, 0xfe]), e);
        assert_eq!(o.set(ZMQ_PROXY_STREAM_TAKEOVER, &2i32.to_ne_bytes()), e);
        assert_eq!(o.set(ZMQ_PROXY_STREAM_THREADS, &0i32.to_ne_bytes()), e);
        assert_eq!(o.set(ZMQ_PROXY_STREAM_THREADS, &65i32.to_ne_bytes()), e);
        assert_eq!(
            o.set(ZMQ_PROXY_STREAM_MAX_CONNECTIONS, &(-2i32).to_ne_bytes()),
            e
        );
        assert_eq!(
            o.set(ZMQ_PROXY_STREAM_MAX_CONNECTIONS, &1i64.to_ne_bytes()),
            e
        );
        assert_eq!(o, before);
        for n in [0i32, 500, -1] {
            o.set(ZMQ_PROXY_STREAM_MAX_CONNECTIONS, &n.to_ne_bytes())
                .unwrap();
            assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_MAX_CONNECTIONS), n);
        }
        o.set(ZMQ_PROXY_STREAM_THREADS, &4i32.to_ne_bytes())
            .unwrap();
        o.set(ZMQ_PROXY_STREAM_TAKEOVER, &0i32.to_ne_bytes())
            .unwrap();
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_THREADS), 4);
        assert_eq!(get_int(&o, ZMQ_PROXY_STREAM_TAKEOVER), 0);
        o = before.clone();
        let e = Err(libc::EINVAL);
        let mut small = [0u8; 2];
        assert_eq!(o.get(ZMQ_PROXY_STREAM_IDLE_TIMEOUT, &mut small), e);
        assert_eq!(o.get(ZMQ_PROXY_STREAM_MECHANISMS, &mut [0u8; 5]), e);
        assert_eq!(o.get(999, &mut [0u8; 8]), e);
    }
}
