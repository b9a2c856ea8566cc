mod common;
use common::*;
use std::sync::Arc;

#[test]
fn one_curve_client_one_worker_echo() {
    let proxy = Proxy::start();
    let keys = Keys::new();
    let mech = Mechanism::Curve(Arc::new(keys.server));
    let _w = Worker::start(&proxy.ctx, &proxy.backend, mech.clone(), 1);
    let c = client(&proxy.ctx, &proxy.frontend, &mech);
    for i in 0..10u64 {
        round_trip(&c, &[&payload(i, 100)]);
    }
    let s = proxy.statistics();
    assert!(s[0] > 0 && s[4] > 0, "{s:?}");
    drop(c);
    let (rc, _) = proxy.terminate();
    assert_eq!(rc, 0);
}
