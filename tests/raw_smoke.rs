mod common;
use common::raw::*;
use common::*;
use std::io::Write;
use std::time::Duration;

#[test]
fn raw_null_peers_relay_bytes() {
    let proxy = Proxy::start();
    let mut w = RawWorker::connect(&proxy.backend);
    wait_until("worker idle", DEADLINE, || proxy.stat(2) == 1);
    let mut c = null_client(&proxy.frontend);
    w.await_pair(DEADLINE);
    c.write_all(b"hello worker").unwrap();
    assert_eq!(
        read_exact_within(&mut w.stream, 12, DEADLINE),
        b"hello worker"
    );
    w.stream.write_all(b"hello client").unwrap();
    assert_eq!(read_exact_within(&mut c, 12, DEADLINE), b"hello client");
    drop(c);
    assert!(closed_within(&mut w.stream, Duration::from_secs(10)));
}
