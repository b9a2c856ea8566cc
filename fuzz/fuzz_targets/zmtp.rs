//! The ZMTP greeting and command parsers (src/zmtp.rs) on arbitrary bytes: no panic, and the
//! answers are consistent with each other.
//!
//! - `parse_greeting` fails as early as the bytes allow, so a prefix's answer agrees with the
//!   whole: a prefix judged invalid stays invalid, a valid greeting's prefixes are incomplete.
//! - `parse_command` never claims more bytes than it was given, and its name and body are
//!   within the frame; adding bytes after a complete frame does not change it.
//! - `HandshakeWatch` reaches the same state whatever the chunking of its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zmq_proxy_stream::zmtp::{
    check_first_command, parse_command, parse_greeting, HandshakeWatch, Mechanism, Parsed,
};

const MAX_FIRST_COMMAND: usize = 8192;

fuzz_target!(|data: &[u8]| {
    // The first byte chooses how the stream is cut into chunks for the watch.
    let (cut, data) = match data.split_first() {
        Some((&c, rest)) => (c as usize + 1, rest),
        None => (1, data),
    };

    let whole = parse_greeting(data);
    match whole {
        Parsed::Done { len, value } => {
            assert_eq!(len, 64);
            assert!(value.major >= 3);
            for n in 0..64 {
                assert_eq!(parse_greeting(&data[..n]), Parsed::Incomplete, "prefix {n}");
            }
        }
        Parsed::Invalid(_) => {
            // Once invalid, more bytes never make it valid.
            for n in 0..=data.len().min(80) {
                if let Parsed::Invalid(_) = parse_greeting(&data[..n]) {
                    for m in n..=data.len().min(80) {
                        assert!(
                            matches!(parse_greeting(&data[..m]), Parsed::Invalid(_)),
                            "prefix {n} invalid, prefix {m} not"
                        );
                    }
                    break;
                }
            }
        }
        Parsed::Incomplete => assert!(data.len() < 64),
    }

    // A command at the start, and after a greeting when there is one.
    let after = match whole {
        Parsed::Done { len, .. } => &data[len..],
        _ => data,
    };
    for buf in [data, after] {
        for max in [1usize, 255, MAX_FIRST_COMMAND] {
            if let Parsed::Done { value, len } = parse_command(buf, max) {
                assert!(len <= buf.len());
                assert!(!value.name.is_empty());
                assert!(value.name.len() + value.body.len() < len);
                // Only the frame's own bytes decide.
                assert_eq!(parse_command(&buf[..len], max), Parsed::Done { value, len });
                for m in Mechanism::ALL {
                    let _ = check_first_command(m, &value);
                }
            }
        }
    }

    // The watch of a server's handshake, whole and in chunks.
    let mut one = HandshakeWatch::default();
    let state = one.feed(after);
    let mut chunked = HandshakeWatch::default();
    let mut chunk_state = chunked.state();
    for chunk in after.chunks(cut) {
        chunk_state = chunked.feed(chunk);
    }
    assert_eq!(state, chunk_state, "chunks of {cut}");
});
