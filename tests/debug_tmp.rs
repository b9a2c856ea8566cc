mod common;
use common::*;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn dbg() {
    let proxy = Proxy::start();
    let keys = Keys::new();
    let mech = Mechanism::Curve(Arc::new(keys.server));
    let _w = Worker::start(&proxy.ctx, &proxy.backend, mech.clone(), 1);
    std::thread::sleep(Duration::from_millis(300));
    let c = client(&proxy.ctx, &proxy.frontend, &mech);
    c.send("hi", 0).unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    proxy.send_command("STREAMSTATS");
    let r = proxy.recv_control(Duration::from_secs(2)).unwrap();
    let v: Vec<u64> = r[0].chunks(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap())).collect();
    println!("streamstats {v:?}");
    println!("stats {:?}", proxy.statistics());
}
