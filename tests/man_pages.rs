//! The man pages (man/*.scd, scdoc sources; scripts/install.sh generates and installs them):
//! every function of include/zmq_proxy_stream.h has its page, each page renders without a
//! warning (`groff -ww -z -t -man`), and the pages list exactly the header's options and
//! STREAMSTATS counters, so that neither can drift from the header.
//!
//! Needs scdoc and groff (scripts/setup-deps.sh installs them).

mod programs;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use programs::manifest_dir;

fn man_dir() -> PathBuf {
    manifest_dir().join("man")
}

fn header() -> String {
    std::fs::read_to_string(manifest_dir().join("include/zmq_proxy_stream.h"))
        .expect("read the header")
}

/// `#define ZMQ_PROXY_STREAM_<NAME> <number>` names of the header, in order.
fn header_constants() -> Vec<String> {
    header()
        .lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("#define ")?.split_whitespace();
            let name = words.next()?;
            let value = words.next()?;
            (name.starts_with("ZMQ_PROXY_STREAM_") && value.parse::<i64>().is_ok())
                .then(|| name.to_owned())
        })
        .collect()
}

/// The options: every constant that is neither a STREAMSTATS index nor the version.
fn header_options() -> Vec<String> {
    header_constants()
        .into_iter()
        .filter(|n| !n.starts_with("ZMQ_PROXY_STREAM_STAT_"))
        .filter(|n| !n.starts_with("ZMQ_PROXY_STREAM_VERSION_"))
        .collect()
}

/// The functions the header declares.
fn header_functions() -> BTreeSet<String> {
    header()
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#') && !l.starts_with('/'))
        .filter_map(|l| {
            let (head, _) = l.split_once('(')?;
            let name = head.rsplit([' ', '*']).next()?;
            name.starts_with("zmq_proxy_stream")
                .then(|| name.to_owned())
        })
        .collect()
}

fn source(page: &str) -> String {
    let path = man_dir().join(format!("{page}.scd"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares what a page lists with what the header has, naming what is missing and extra.
fn assert_lists_match(page: &str, what: &str, in_header: &[String], in_page: &[String], how: &str) {
    let header: BTreeSet<&String> = in_header.iter().collect();
    let page_set: BTreeSet<&String> = in_page.iter().collect();
    let missing: Vec<&&String> = header.difference(&page_set).collect();
    let extra: Vec<&&String> = page_set.difference(&header).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "man/{page}.scd does not list the header's {what}:\n  missing: {missing:?}\n  \
         not in the header: {extra:?}\n{how}"
    );
}

#[test]
fn every_function_has_a_page_and_every_page_renders_without_warnings() {
    let mut pages: BTreeSet<String> = std::fs::read_dir(man_dir())
        .expect("man/")
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".scd")
                .map(str::to_owned)
        })
        .collect();
    for function in header_functions() {
        assert!(
            pages.contains(&format!("{function}.3")),
            "{function} has no page: write man/{function}.3.scd"
        );
    }
    for page in [
        "zmq_proxy_stream.3",
        "zmq_proxy_stream.7",
        "zmq-proxy-stream.1",
    ] {
        assert!(pages.contains(page), "no man/{page}.scd");
    }
    let scratch = programs::scratch_dir("man_pages");
    for page in std::mem::take(&mut pages) {
        let text = source(&page);
        let (name, section) = page.rsplit_once('.').expect("NAME.SECTION");
        assert!(
            text.starts_with(&format!("{name}({section})\n")),
            "man/{page}.scd starts with its title, {name}({section})"
        );
        let mut scdoc = Command::new("scdoc")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("scdoc is installed (bash scripts/setup-deps.sh)");
        scdoc
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("feed scdoc");
        let out = scdoc.wait_with_output().expect("scdoc");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "scdoc man/{page}.scd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let roff = scratch.join(&page);
        std::fs::write(&roff, &out.stdout).expect("write the page");
        let groff = Command::new("groff")
            .args(["-ww", "-z", "-t", "-man"])
            .arg(&roff)
            .output()
            .expect("groff is installed");
        assert!(
            groff.status.success() && groff.stderr.is_empty(),
            "man/{page}.scd renders with warnings:\n{}",
            String::from_utf8_lossy(&groff.stderr)
        );
    }
}

#[test]
fn setopt_page_documents_exactly_the_header_options() {
    let text = source("zmq_proxy_stream_setopt.3");
    let documented: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.to_owned())
        .collect();
    assert_lists_match(
        "zmq_proxy_stream_setopt.3",
        "options",
        &header_options(),
        &documented,
        "give each option a section `## ZMQ_PROXY_STREAM_NAME: what it does` with its type, \
         unit and default",
    );
    assert_eq!(
        documented,
        header_options(),
        "the sections follow the header's order"
    );
}

/// An option's flag: ZMQ_PROXY_STREAM_WAIT_TIMEOUT is --wait-timeout.
fn flag_of(option: &str) -> String {
    let name = option.strip_prefix("ZMQ_PROXY_STREAM_").expect("an option");
    format!("--{}", name.to_lowercase().replace('_', "-"))
}

#[test]
fn command_page_has_a_flag_for_every_option() {
    let text = source("zmq-proxy-stream.1");
    let options_section = text
        .split_once("\n# OPTIONS\n")
        .and_then(|(_, rest)| rest.split_once("\n# EXIT STATUS\n"))
        .map(|(options, _)| options)
        .expect("an OPTIONS section before EXIT STATUS");
    // Entries are `*--flag* _ARG_` lines; the options' flags are those whose description
    // names a ZMQ_PROXY_STREAM_* option (or, for --events, the socket it binds).
    let mut flags: Vec<String> = Vec::new();
    let lines: Vec<&str> = options_section.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(flag) = line.strip_prefix("*--").and_then(|l| l.split_once('*')) else {
            continue;
        };
        let flag = format!("--{}", flag.0);
        let described = lines.get(i + 1).copied().unwrap_or("");
        if described.trim_start().starts_with("*ZMQ_PROXY_STREAM_") || flag == "--events" {
            flags.push(flag);
        }
    }
    let expected: Vec<String> = header_options().iter().map(|o| flag_of(o)).collect();
    assert_lists_match(
        "zmq-proxy-stream.1",
        "options as flags",
        &expected,
        &flags,
        "give each option an entry `*--name* _ARG_` whose description starts with \
         `*ZMQ_PROXY_STREAM_NAME*` (the command needs the flag too)",
    );
}

#[test]
fn overview_page_lists_exactly_the_header_streamstats_counters() {
    let text = source("zmq_proxy_stream.7");
    let section = text
        .split_once("\n# STREAMSTATS\n")
        .and_then(|(_, rest)| rest.split_once("\n# "))
        .map(|(section, _)| section)
        .expect("a STREAMSTATS section");
    let listed: Vec<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix('*')?.strip_suffix('*'))
        .filter(|n| n.starts_with("ZMQ_PROXY_STREAM_STAT_"))
        .map(str::to_owned)
        .collect();
    let counters: Vec<String> = header_constants()
        .into_iter()
        .filter(|n| n.starts_with("ZMQ_PROXY_STREAM_STAT_") && n != "ZMQ_PROXY_STREAM_STAT_COUNT")
        .collect();
    assert_lists_match(
        "zmq_proxy_stream.7",
        "STREAMSTATS counters",
        &counters,
        &listed,
        "give each counter an entry `*ZMQ_PROXY_STREAM_STAT_NAME*` and a tab-indented line \
         saying what it counts",
    );
    assert_eq!(listed, counters, "the entries follow the header's order");
}
