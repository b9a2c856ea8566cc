//! The soak test's load and its coordinator (scripts/soak.sh runs it; README "Soak").
//!
//! `soak run --seconds N --topology dial-in|dial-out --logs DIR` starts the broker
//! (`zmq-proxy-stream`, the real command, in its own process), the workers, several client
//! processes and the killer, watches the broker's memory and descriptors, PAUSEs and RESUMEs
//! it once, and prints one summary; it exits 1 when the run failed. The roles it starts are
//! this same program: `soak client ...` (client.rs) and `soak worker ...` (worker.rs).

mod args;
mod client;
mod coordinator;
mod payload;
mod procs;
mod summary;
mod worker;

fn main() {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let Some((role, rest)) = words.split_first() else {
        eprintln!("usage: soak run|client|worker --flag value ...");
        std::process::exit(2);
    };
    let args = match args::Args::parse(rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    let result = match role.as_str() {
        "run" => coordinator::run(&args),
        "client" => client::run(&args).map(|()| true),
        "worker" => worker::run(&args).map(|()| true),
        other => Err(format!("unknown role {other:?}")),
    };
    match result {
        Ok(true) => std::process::exit(0),
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak {role}: {e}");
            std::process::exit(3);
        }
    }
}
