use super::*;
use proptest::prelude::*;

/// A greeting as libzmq 4.3 sends it.
pub fn libzmq_greeting(mechanism: Mechanism, as_server: bool) -> Vec<u8> {
    let mut g = SIGNATURE.to_vec();
    g.push(3);
    g.push(1);
    let mut field = [0u8; 20];
    field[..mechanism.name().len()].copy_from_slice(mechanism.name().as_bytes());
    g.extend_from_slice(&field);
    g.push(as_server as u8);
    g.extend_from_slice(&[0u8; 31]);
    g
}

pub fn curve_hello() -> Vec<u8> {
    let mut h = vec![0x04, 200, 5];
    h.extend_from_slice(b"HELLO");
    h.extend_from_slice(&[1, 0]);
    h.extend_from_slice(&[0u8; 72]);
    h.extend((0..120).map(|i| i as u8 | 1));
    assert_eq!(h.len(), 202);
    h
}

pub fn null_ready() -> Vec<u8> {
    let mut body = vec![5];
    body.extend_from_slice(b"READY");
    body.push(11);
    body.extend_from_slice(b"Socket-Type");
    body.extend_from_slice(&6u32.to_be_bytes());
    body.extend_from_slice(b"DEALER");
    let mut frame = vec![0x04, body.len() as u8];
    frame.extend_from_slice(&body);
    frame
}

#[test]
fn libzmq_greetings_parse() {
    for m in Mechanism::ALL {
        let g = libzmq_greeting(m, true);
        assert_eq!(
            parse_greeting(&g),
            Parsed::Done {
                value: Greeting {
                    major: 3,
                    minor: 1,
                    mechanism: m,
                    as_server: true
                },
                len: 64
            }
        );
    }
}

#[test]
fn our_greeting_is_a_valid_greeting() {
    let mut g = greeting_opening().to_vec();
    g.extend_from_slice(&greeting_rest(Mechanism::Curve, true));
    match parse_greeting(&g) {
        Parsed::Done { value, len } => {
            assert_eq!(len, 64);
            assert_eq!(value.mechanism, Mechanism::Curve);
            assert_eq!(value.minor, ANNOUNCED_MINOR);
            assert!(value.as_server);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_is_refused_on_the_first_byte() {
    assert_eq!(
        parse_greeting(b"GET / HTTP/1.1\r\n"),
        Parsed::Invalid(Violation::BadGreeting)
    );
    assert_eq!(
        parse_greeting(&[0x16, 0x03, 0x01]),
        Parsed::Invalid(Violation::BadGreeting)
    );
    // ZMTP 2.0 (major 1) and 1.0-style signatures are refused too.
    let mut old = libzmq_greeting(Mechanism::Null, false);
    old[10] = 1;
    assert_eq!(
        parse_greeting(&old[..11]),
        Parsed::Invalid(Violation::BadGreeting)
    );
}

#[test]
fn unknown_mechanisms_and_bad_as_server_are_refused() {
    let mut g = libzmq_greeting(Mechanism::Null, false);
    g[12..16].copy_from_slice(b"XXXX");
    assert_eq!(parse_greeting(&g), Parsed::Invalid(Violation::BadGreeting));
    let mut g = libzmq_greeting(Mechanism::Curve, false);
    g[20] = b'x'; // junk after the name's zero padding began
    assert_eq!(parse_greeting(&g), Parsed::Invalid(Violation::BadGreeting));
    let mut g = libzmq_greeting(Mechanism::Curve, false);
    g[32] = 2;
    assert_eq!(parse_greeting(&g), Parsed::Invalid(Violation::BadGreeting));
}

#[test]
fn first_commands_by_mechanism() {
    let hello = curve_hello();
    let Parsed::Done { value, len } = parse_command(&hello, MAX_FIRST_COMMAND) else {
        panic!()
    };
    assert_eq!(len, 202);
    assert_eq!(check_first_command(Mechanism::Curve, &value), Ok(()));
    assert!(check_first_command(Mechanism::Null, &value).is_err());

    let mut bad_padding = curve_hello();
    bad_padding[20] = 1;
    let Parsed::Done { value, .. } = parse_command(&bad_padding, MAX_FIRST_COMMAND) else {
        panic!()
    };
    assert!(check_first_command(Mechanism::Curve, &value).is_err());

    let mut bad_version = curve_hello();
    bad_version[8] = 2;
    let Parsed::Done { value, .. } = parse_command(&bad_version, MAX_FIRST_COMMAND) else {
        panic!()
    };
    assert!(check_first_command(Mechanism::Curve, &value).is_err());

    let mut short = curve_hello();
    short[1] = 199;
    short.pop();
    let Parsed::Done { value, .. } = parse_command(&short, MAX_FIRST_COMMAND) else {
        panic!()
    };
    assert!(check_first_command(Mechanism::Curve, &value).is_err());

    let ready = null_ready();
    let Parsed::Done { value, .. } = parse_command(&ready, MAX_FIRST_COMMAND) else {
        panic!()
    };
    assert_eq!(check_first_command(Mechanism::Null, &value), Ok(()));

    let plain = [
        0x04, 16, 5, b'H', b'E', b'L', b'L', b'O', 4, b'u', b's', b'e', b'r', 4, b'p', b'a', b's',
        b's',
    ];
    let Parsed::Done { value, .. } = parse_command(&plain, MAX_FIRST_COMMAND) else {
        panic!()
    };
    assert_eq!(check_first_command(Mechanism::Plain, &value), Ok(()));
}

#[test]
fn messages_and_oversized_commands_are_not_first_commands() {
    assert_eq!(
        parse_command(&[0x00, 3, 1, 2, 3], MAX_FIRST_COMMAND),
        Parsed::Invalid(Violation::BadCommand)
    );
    let mut long = vec![0x06];
    long.extend_from_slice(&(1u64 << 40).to_be_bytes());
    assert_eq!(
        parse_command(&long, MAX_FIRST_COMMAND),
        Parsed::Invalid(Violation::BadCommand)
    );
}

#[test]
fn mechanism_lists() {
    assert_eq!(MechanismSet::parse("CURVE").unwrap().to_list(), "CURVE");
    assert_eq!(
        MechanismSet::parse(" plain , CURVE").unwrap().to_list(),
        "PLAIN,CURVE"
    );
    assert_eq!(MechanismSet::parse(""), None);
    assert_eq!(MechanismSet::parse("CURVE,"), None);
    assert_eq!(MechanismSet::parse("TLS"), None);
    assert_eq!(MechanismSet::ALL.to_list(), "NULL,PLAIN,CURVE,GSSAPI");
}

proptest! {
    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_greeting(&bytes);
        if let Parsed::Done { value, .. } = parse_command(&bytes, MAX_FIRST_COMMAND) {
            for m in Mechanism::ALL {
                let _ = check_first_command(m, &value);
            }
        }
    }

    /// Every prefix of a valid greeting + HELLO is "incomplete", never "invalid", so a peer
    /// that sends in arbitrary pieces is never refused for the way TCP split its bytes.
    #[test]
    fn valid_streams_are_never_refused_at_any_split(split in 0usize..266) {
        let mut stream = libzmq_greeting(Mechanism::Curve, false);
        stream.extend_from_slice(&curve_hello());
        let prefix = &stream[..split.min(stream.len())];
        if prefix.len() < 64 {
            prop_assert_eq!(parse_greeting(prefix), Parsed::Incomplete);
        } else {
            let cmd = &prefix[64..];
            if cmd.len() < 202 {
                prop_assert_eq!(parse_command(cmd, MAX_FIRST_COMMAND), Parsed::Incomplete);
            }
        }
    }

    /// Flipping any byte of a CURVE HELLO's header, version or padding is caught.
    #[test]
    fn corrupted_hello_headers_are_refused(pos in 0usize..82, x in 1u8..=255) {
        let mut hello = curve_hello();
        hello[pos] ^= x;
        let verdict = match parse_command(&hello, MAX_FIRST_COMMAND) {
            Parsed::Done { value, .. } => check_first_command(Mechanism::Curve, &value).is_ok(),
            _ => false,
        };
        prop_assert!(!verdict);
    }
}

mod handshake_watch {
    use crate::zmtp::{HandshakeState, HandshakeWatch};
    use proptest::prelude::*;

    fn command(name: &[u8], body_len: usize) -> Vec<u8> {
        let mut body = vec![name.len() as u8];
        body.extend_from_slice(name);
        body.extend(std::iter::repeat_n(0xAB, body_len));
        let mut frame = if body.len() > 255 {
            let mut f = vec![0x06];
            f.extend_from_slice(&(body.len() as u64).to_be_bytes());
            f
        } else {
            vec![0x04, body.len() as u8]
        };
        frame.extend_from_slice(&body);
        frame
    }

    fn curve_server_stream() -> Vec<u8> {
        // WELCOME (168-byte body), then READY with a box.
        let mut s = command(b"WELCOME", 160);
        s.extend(command(b"READY", 40));
        s
    }

    #[test]
    fn ready_after_welcome_is_seen_whatever_the_chunking() {
        let stream = curve_server_stream();
        for split in 0..=stream.len() {
            let mut w = HandshakeWatch::default();
            let first = w.feed(&stream[..split]);
            if split < stream.len() {
                assert_eq!(first, HandshakeState::Running, "split {split}");
            }
            assert_eq!(w.feed(&stream[split..]), HandshakeState::Ready);
        }
    }

    #[test]
    fn welcome_alone_is_still_running_and_error_is_seen() {
        let mut w = HandshakeWatch::default();
        assert_eq!(w.feed(&command(b"WELCOME", 160)), HandshakeState::Running);
        assert_eq!(w.feed(&command(b"ERROR", 10)), HandshakeState::Error);
        let mut w = HandshakeWatch::default();
        assert_eq!(
            w.feed(&command(b"READX", 1000)),
            HandshakeState::Running,
            "long frame, other name"
        );
        assert_eq!(w.feed(&[0x00, 0x00]), HandshakeState::Ready, "a message");
    }

    /// libzmq 4.3's PLAIN server sends ERROR with its name's length byte and first letter
    /// merged (0x5E "RROR", seen on the wire in tests/security): still a refusal. A name
    /// that merely ends in RROR is not.
    #[test]
    fn libzmq_s_malformed_plain_error_is_seen() {
        let mut w = HandshakeWatch::default();
        let sent = [0x04, 9, 0x5E, b'R', b'R', b'O', b'R', 3, b'4', b'0', b'0'];
        assert_eq!(w.feed(&sent), HandshakeState::Error);
        let mut w = HandshakeWatch::default();
        assert_eq!(
            w.feed(&[0x04, 6, 5, b'X', b'R', b'R', b'O', b'R']),
            HandshakeState::Running
        );
    }

    proptest! {
        #[test]
        fn byte_by_byte_equals_whole(stream in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut whole = HandshakeWatch::default();
            let a = whole.feed(&stream);
            let mut bytes = HandshakeWatch::default();
            let mut b = HandshakeState::Running;
            for x in &stream {
                b = bytes.feed(std::slice::from_ref(x));
            }
            prop_assert_eq!(a, b);
        }
    }
}
