//! The access log: one line per proxy event, in the format of examples-c/access_log
//! (`2026-11-25T14:00:00Z OPEN pair=3 client=... worker=... mech=CURVE`). Pure formatting.

use std::time::{SystemTime, UNIX_EPOCH};

/// Longest event printed as an event; longer frames are printed raw, cut at this length.
const MAX_EVENT: usize = 4096;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Any,
    Number,
}

/// The documented events: their fields' names in the log and what their values look like.
const EVENTS: &[(&str, &[(&str, Kind)])] = &[
    (
        "OPEN",
        &[
            ("pair", Kind::Number),
            ("client", Kind::Any),
            ("worker", Kind::Any),
            ("mech", Kind::Any),
        ],
    ),
    (
        "CLOSE",
        &[
            ("pair", Kind::Number),
            ("client", Kind::Any),
            ("worker", Kind::Any),
            ("mech", Kind::Any),
            ("up", Kind::Number),
            ("down", Kind::Number),
            ("ms", Kind::Number),
            ("reason", Kind::Any),
        ],
    ),
    ("REJECT", &[("client", Kind::Any), ("reason", Kind::Any)]),
    (
        "LOST",
        &[
            ("pair", Kind::Number),
            ("worker", Kind::Any),
            ("mech", Kind::Any),
        ],
    ),
];

/// The line for one event frame received at `stamp`. Fields a newer proxy appends are kept
/// after " |"; anything else is printed raw, quoted, with \xNN for unprintable bytes.
pub fn line(stamp: &str, frame: &[u8]) -> String {
    event_line(stamp, frame).unwrap_or_else(|| raw_line(stamp, frame))
}

fn event_line(stamp: &str, frame: &[u8]) -> Option<String> {
    if frame.is_empty()
        || frame.len() > MAX_EVENT
        || !frame.iter().all(|b| (0x20..0x7f).contains(b))
    {
        return None;
    }
    let text = std::str::from_utf8(frame).ok()?;
    let words: Vec<&str> = text.split(' ').collect();
    if words.iter().any(|w| w.is_empty()) {
        return None;
    }
    let (kind, fields) = EVENTS.iter().find(|(kind, _)| *kind == words[0])?;
    let values = &words[1..];
    if values.len() < fields.len() {
        return None;
    }
    let mut out = format!("{stamp} {kind}");
    for ((name, kind), value) in fields.iter().zip(values) {
        if *kind == Kind::Number && !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        out.push_str(&format!(" {name}={value}"));
    }
    if values.len() > fields.len() {
        out.push_str(" |");
        for extra in &values[fields.len()..] {
            out.push(' ');
            out.push_str(extra);
        }
    }
    Some(out)
}

fn raw_line(stamp: &str, frame: &[u8]) -> String {
    let cut = frame.len() > MAX_EVENT;
    let mut out = format!("{stamp} RAW \"");
    for &b in &frame[..frame.len().min(MAX_EVENT)] {
        match b {
            b'\\' | b'"' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out.push('"');
    if cut {
        out.push_str(" (cut)");
    }
    out
}

/// Now, UTC, as 2026-11-25T14:00:00Z.
pub fn timestamp_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    timestamp(secs)
}

/// Seconds since the epoch as 2026-11-25T14:00:00Z (the proleptic Gregorian calendar).
pub fn timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Year, month, day of the day `days` after 1970-01-01: counted in 400-year eras of
/// 146097 days, each starting on a 1 March so that the leap day ends a year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-11-25T14:00:00Z";

    #[test]
    fn events_as_examples_c_access_log_prints_them() {
        assert_eq!(
            line(T, b"OPEN 3 127.0.0.1:51234 tcp://127.0.0.1:5601 CURVE"),
            "2026-11-25T14:00:00Z OPEN pair=3 client=127.0.0.1:51234 \
             worker=tcp://127.0.0.1:5601 mech=CURVE"
        );
        assert_eq!(
            line(
                T,
                b"CLOSE 3 127.0.0.1:51234 tcp://127.0.0.1:5601 CURVE 1234 5678 12 client-closed"
            ),
            "2026-11-25T14:00:00Z CLOSE pair=3 client=127.0.0.1:51234 \
             worker=tcp://127.0.0.1:5601 mech=CURVE up=1234 down=5678 ms=12 \
             reason=client-closed"
        );
        assert_eq!(
            line(T, b"LOST 4 127.0.0.1:40001 CURVE"),
            "2026-11-25T14:00:00Z LOST pair=4 worker=127.0.0.1:40001 mech=CURVE"
        );
        assert_eq!(
            line(T, b"REJECT 127.0.0.1:51244 banned"),
            "2026-11-25T14:00:00Z REJECT client=127.0.0.1:51244 reason=banned"
        );
        assert_eq!(
            line(T, b"REJECT - banned new1 new2"),
            "2026-11-25T14:00:00Z REJECT client=- reason=banned | new1 new2"
        );
    }

    #[test]
    fn anything_else_is_printed_raw() {
        assert_eq!(
            line(T, b"HELLO\0w\"\\"),
            format!("{T} RAW \"HELLO\\x00w\\\"\\\\\"")
        );
        assert_eq!(
            line(T, b"OPEN x a b CURVE"),
            format!("{T} RAW \"OPEN x a b CURVE\"")
        );
        assert_eq!(
            line(T, b"REJECT  banned"),
            format!("{T} RAW \"REJECT  banned\"")
        );
        assert_eq!(line(T, b"REJECT a"), format!("{T} RAW \"REJECT a\""));
        assert_eq!(line(T, b""), format!("{T} RAW \"\""));
        let long = vec![b'a'; MAX_EVENT + 1];
        assert!(line(T, &long).ends_with("\" (cut)"));
    }

    #[test]
    fn timestamps_in_utc() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(timestamp(1_795_615_200), "2026-11-25T14:00:00Z");
        assert_eq!(timestamp(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
