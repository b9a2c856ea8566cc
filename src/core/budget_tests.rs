//! The descriptor budget (ZMQ_PROXY_STREAM_MAX_CONNECTIONS) and local failures in the core,
//! without sockets.
use super::*;

const EP_A: &str = "tcp://10.0.0.1:5600";

fn budget_limits(max: i32, endpoints: &[&str]) -> Limits {
    Limits {
        max_connections: max,
        worker_endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        events: true,
        ..Limits::default()
    }
}

#[test]
fn a_connection_beyond_the_budget_is_closed_before_a_byte_and_counted() {
    let mut s = Sim::new(budget_limits(3, &[]));
    s.addrs.insert(3, "192.0.2.7:51000".parse().unwrap());
    s.worker(10, CURVE);
    s.client(1, CURVE);
    s.client(2, CURVE);
    assert_eq!(s.core.connections(), 3);
    s.connect(F, 3);
    assert!(s.got(F, 3).is_empty(), "refused without a greeting");
    assert!(s.is_closed(F, 3), "closed at once");
    assert_eq!(s.core.stats().reject_limit, 1);
    let events = s.events();
    assert!(
        events.contains(&"REJECT 192.0.2.7:51000 limit".to_string()),
        "{events:?}"
    );
    // A worker connection beyond it costs a descriptor too: refused, counted, no event.
    s.connect(B, 11);
    assert!(s.got(B, 11).is_empty());
    assert!(s.is_closed(B, 11));
    assert_eq!(s.core.stats().reject_limit, 2);
    assert_eq!(s.core.stats().workers_rejected, 0);
    assert!(s.events().iter().all(|e| !e.starts_with("REJECT")));
    // A client leaves: its room is kept for the refused worker connection, which libzmq
    // will bring back, for a second; then the next client is admitted and greeted.
    s.recv(F, 2, &[]);
    s.connect(F, 4);
    assert!(s.is_closed(F, 4));
    assert_eq!(s.core.stats().reject_limit, 3);
    s.advance(Duration::from_secs(1));
    s.connect(F, 5);
    assert_eq!(s.got(F, 5), greeting_opening());
    assert_eq!(s.core.stats().reject_limit, 3);
}

#[test]
fn admitted_clients_are_all_served_in_turn() {
    // 2 worker connections, room for 3 clients: the fourth and fifth are refused, the three
    // admitted pair as workers come back.
    let mut s = Sim::new(budget_limits(5, &[]));
    for c in 1..=5 {
        // Each of the first two clients finds exactly one idle worker connection, so that
        // client 1's partner is worker 10 whatever the pool's random choice.
        if c <= 2 {
            s.worker(9 + c, CURVE);
        }
        s.connect(F, c);
        if c <= 3 {
            s.recv(F, c, &libzmq_greeting(CURVE, false));
            s.recv(F, c, &first_command(CURVE));
        }
    }
    assert_eq!(s.core.stats().reject_limit, 2);
    assert_eq!(s.core.stats().pairs_open, 2);
    assert_eq!(s.core.stats().clients_waiting, 1);
    // Client 1 leaves; its worker connection closes. A new client arriving before libzmq
    // brings the worker connection back finds its room kept, and the worker gets in.
    s.recv(F, 1, &[]);
    s.recv(B, 10, &[]);
    assert_eq!(s.core.connections(), 3);
    s.connect(F, 6);
    assert_eq!(s.got(F, 6), greeting_opening());
    s.connect(F, 7);
    assert!(
        s.is_closed(F, 7) && s.got(F, 7).is_empty(),
        "the last room is the worker's"
    );
    s.worker(12, CURVE);
    assert_eq!(
        s.core.stats().pairs_open,
        2,
        "client 3 paired with the worker come back"
    );
    assert_eq!(s.core.stats().reject_limit, 3);
}

#[test]
fn zero_means_no_limit_and_the_driver_may_set_the_budget() {
    let mut s = Sim::new(budget_limits(0, &[]));
    assert_eq!(s.core.connection_budget(), None);
    for c in 1..=50 {
        s.connect(F, c);
    }
    assert_eq!(s.core.stats().reject_limit, 0);
    s.core.set_connection_budget(Some(50));
    s.connect(F, 51);
    assert!(s.is_closed(F, 51));
    assert_eq!(s.core.stats().reject_limit, 1);
}

impl Sim {
    /// Client `c` is dialed a worker connection, which connects and greets: the pair forms
    /// (the first one also teaches the core the endpoint's mechanism).
    fn dialed_pair(&mut self, c: u32) {
        self.client(c, CURVE);
        self.dialed_worker_greets(self.dials.len() - 1, CURVE);
    }
}

#[test]
fn dial_out_admits_a_client_only_with_room_for_its_worker_connection() {
    let mut s = Sim::new(budget_limits(4, &[EP_A]));
    s.dialed_pair(1);
    s.client(2, CURVE);
    assert_eq!(s.dials.len(), 2, "both clients dialed within the budget");
    s.connect(F, 3);
    assert!(s.is_closed(F, 3) && s.got(F, 3).is_empty());
    assert_eq!(s.core.stats().reject_limit, 1);
    // Client 1 leaves and its worker connection closes: room for one more.
    s.recv(F, 1, &[]);
    s.advance(Duration::from_millis(10));
    assert_eq!(s.core.connections(), 2);
    s.dialed_pair(4);
    assert_eq!(
        s.core.stats().pairs_open,
        1,
        "client 4 paired; client 2 still dialing"
    );
    assert_eq!(s.core.stats().reject_limit, 1);
}

#[test]
fn dial_out_waits_for_a_descriptor_rather_than_dial_past_the_budget() {
    let mut s = Sim::new(budget_limits(6, &[EP_A]));
    s.dialed_pair(1);
    // Two more clients arrive; a stray connection to the backend (not one the proxy made)
    // is refused, and its close is held up by a full pipe.
    s.connect(F, 2);
    s.connect(F, 3);
    s.full.insert((B, id(20)));
    s.connect(B, 20);
    assert_eq!(s.core.stats().workers_rejected, 1);
    assert_eq!(s.core.connections(), 5);
    for c in [2, 3] {
        s.recv(F, c, &libzmq_greeting(CURVE, false));
        s.recv(F, c, &first_command(CURVE));
    }
    assert_eq!(s.dials.len(), 2, "a third dial would pass the budget");
    assert_eq!(s.core.stats().clients_waiting, 2);
    assert_eq!(s.core.connections(), 6);
    // The stray connection goes; the waiting client is dialed within 100 ms.
    s.full.clear();
    s.advance(Duration::from_millis(150));
    assert_eq!(s.dials.len(), 3);
    assert_eq!(s.core.connections(), 6);
    assert_eq!(s.core.stats().local_failures, 0);
    assert_eq!(s.core.stats().reject_limit, 0);
}

#[test]
fn a_dial_failing_for_want_of_descriptors_never_marks_the_endpoint_down() {
    let mut s = Sim::new(budget_limits(0, &[EP_A]));
    s.out_of_descriptors = true;
    s.client(1, CURVE);
    assert_eq!(s.core.stats().local_failures, 1);
    assert_eq!(s.core.stats_at(s.now).endpoints_down, 0);
    assert_eq!(s.core.stats().connect_timeouts, 0);
    assert_eq!(
        s.core.stats().clients_waiting,
        1,
        "the client waits for a retry"
    );
    assert!(
        s.core.connections() == 1,
        "the dial that failed left nothing behind"
    );
    // Retried every 100 ms, not in a loop.
    s.advance(Duration::from_millis(50));
    assert_eq!(s.core.stats().local_failures, 1);
    s.advance(Duration::from_millis(60));
    assert_eq!(s.core.stats().local_failures, 2);
    assert_eq!(s.core.stats_at(s.now).endpoints_down, 0);
    // Descriptors free again: the next retry dials, and the pair forms.
    s.out_of_descriptors = false;
    s.advance(Duration::from_millis(110));
    assert_eq!(s.dials.len(), 1);
    let w = s.dials[0].1.clone();
    s.recv_id(B, &w, &[]);
    s.recv_id(B, &w, &libzmq_greeting(CURVE, false));
    assert_eq!(s.core.stats().pairs_open, 1);
    assert_eq!(s.core.stats().local_failures, 2);
}
