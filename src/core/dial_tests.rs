//! Dial-out, fail-ban and events in the core, without sockets.
use super::*;

const EP_A: &str = "tcp://10.0.0.1:5600";
const EP_B: &str = "tcp://10.0.0.2:5600";

fn dial_limits(endpoints: &[&str]) -> Limits {
    Limits {
        worker_endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
        connect_timeout: Some(Duration::from_millis(300)),
        events: true,
        ..Limits::default()
    }
}

impl Sim {
    pub(super) fn recv_id(&mut self, side: Side, id: &[u8], data: &[u8]) {
        self.core
            .on_receive(self.now, side, id, data.to_vec(), |_| None);
        self.flush();
    }

    /// The dialed worker connection `i` (in dial order) connects and greets.
    pub(super) fn dialed_worker_greets(&mut self, i: usize, m: Mechanism) -> Vec<u8> {
        let wid = self.dials[i].1.clone();
        self.recv_id(B, &wid, &[]);
        assert_eq!(
            self.got.get(&(B, wid.clone())).map(|v| v.as_slice()),
            Some(&greeting_opening()[..]),
            "the proxy greets the worker it dialed"
        );
        self.recv_id(B, &wid, &libzmq_greeting(m, false));
        wid
    }

    pub(super) fn events(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.core.next_event())
            .map(|e| e.to_text())
            .collect()
    }
}

#[test]
fn a_screened_client_gets_a_worker_connection_of_its_own() {
    let mut s = Sim::new(dial_limits(&[EP_A]));
    s.client(1, CURVE);
    assert_eq!(s.dials.len(), 1, "one zmq_connect for the client");
    let (ep, wid) = s.dials[0].clone();
    assert_eq!(ep, EP_A);
    assert_eq!(wid.len(), 9);
    assert_eq!(wid[0], 0x01, "never an id libzmq could assign (0x00...)");
    assert_eq!(s.core.stats().dials, 1);
    assert_eq!(s.core.stats().clients_waiting, 1);
    s.dialed_worker_greets(0, CURVE);
    let mut want_w = greeting_opening().to_vec();
    want_w.extend_from_slice(&greeting_rest(CURVE, false));
    want_w.extend_from_slice(&curve_hello());
    assert_eq!(s.got[&(B, wid.clone())], want_w, "worker's view");
    assert_eq!(s.core.stats().pairs_open, 1);
    assert_eq!(s.core.stats().clients_waiting, 0);
    // Bytes flow both ways.
    s.recv_id(B, &wid, b"\x04\x07WELCOME");
    assert!(s.got(F, 1).ends_with(b"\x04\x07WELCOME"));
    s.recv(F, 1, b"more");
    assert!(s.got[&(B, wid.clone())].ends_with(b"more"));
}

impl Sim {
    /// Clients `first`, `first + 1`, ... one per endpoint, each dialed to learn its
    /// endpoint's mechanism, which greets with CURVE: every endpoint is known afterwards.
    fn learn_endpoints(&mut self, first: u32, endpoints: usize) {
        for k in 0..endpoints {
            let n = self.dials.len();
            self.client(first + k as u32, CURVE);
            assert_eq!(self.dials.len(), n + 1, "a learning dial");
            self.dialed_worker_greets(n, CURVE);
        }
    }
}

#[test]
fn endpoints_with_fewest_pairs_are_chosen_and_ties_go_round() {
    let mut s = Sim::new(dial_limits(&[EP_A, EP_B]));
    s.learn_endpoints(1, 2);
    for c in 3..=4 {
        s.client(c, CURVE);
    }
    let eps: Vec<&str> = s.dials.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(eps, [EP_A, EP_B, EP_A, EP_B]);
    // Client 1 (on A) and client 3 (on A) leave: A has fewer pairs, so the next two go there.
    for i in 2..4 {
        s.dialed_worker_greets(i, CURVE);
    }
    s.recv(F, 1, &[]);
    s.recv(F, 3, &[]);
    s.client(5, CURVE);
    s.client(6, CURVE);
    assert_eq!(s.dials[4].0, EP_A);
    assert_eq!(s.dials[5].0, EP_A);
}

#[test]
fn an_endpoint_that_does_not_answer_is_skipped_and_nothing_is_lost() {
    let mut s = Sim::new(dial_limits(&[EP_A, EP_B]));
    s.client(1, CURVE);
    s.recv(F, 1, b"early bytes");
    let (_, silent) = s.dials[0].clone();
    s.advance(Duration::from_millis(301));
    assert!(
        s.closed.contains(&(B, silent.clone())),
        "dropped with [id][]"
    );
    assert_eq!(s.core.stats().connect_timeouts, 1);
    assert_eq!(s.core.stats_at(s.now).endpoints_down, 1);
    assert_eq!(s.dials.len(), 2);
    assert_eq!(s.dials[1].0, EP_B, "offered to the other endpoint");
    let wid = s.dialed_worker_greets(1, CURVE);
    let got = &s.got[&(B, wid)];
    let mut hello_then_early = curve_hello();
    hello_then_early.extend_from_slice(b"early bytes");
    assert!(got.ends_with(&hello_then_early), "every byte, in order");
    // While A is down new clients go to B; after its backoff A is tried again.
    s.client(2, CURVE);
    assert_eq!(s.dials[2].0, EP_B);
    s.dialed_worker_greets(2, CURVE);
    s.advance(Duration::from_millis(600));
    assert_eq!(s.core.stats_at(s.now).endpoints_down, 0);
    s.client(3, CURVE);
    assert_eq!(s.dials[3].0, EP_A);
}

#[test]
fn with_every_endpoint_down_clients_wait_for_the_first_to_come_back() {
    let mut s = Sim::new(dial_limits(&[EP_A]));
    s.refused.insert(EP_A.to_string());
    s.client(1, CURVE);
    assert_eq!(s.core.stats_at(s.now).endpoints_down, 1);
    assert_eq!(s.core.stats().clients_waiting, 1);
    assert!(s.dials.is_empty());
    s.refused.clear();
    s.advance(Duration::from_millis(501));
    assert_eq!(s.dials.len(), 1, "retried after the backoff");
    s.dialed_worker_greets(0, CURVE);
    assert_eq!(s.core.stats().pairs_open, 1);
}

#[test]
fn a_dialed_worker_leaving_is_closed_for_good_and_its_client_after_a_flush() {
    let mut s = Sim::new(dial_limits(&[EP_A]));
    s.client(1, CURVE);
    let wid = s.dialed_worker_greets(0, CURVE);
    s.recv_id(B, &wid, &[]);
    assert!(
        s.closed.contains(&(B, wid.clone())),
        "libzmq would reconnect it by itself: closed with [id][]"
    );
    s.advance(Duration::from_millis(50));
    assert!(s.is_closed(F, 1));
    assert_eq!(s.core.connections(), 0);
}

#[test]
fn a_client_leaving_while_its_worker_is_dialed_takes_the_connection_along() {
    let mut s = Sim::new(dial_limits(&[EP_A]));
    s.client(1, CURVE);
    let (_, wid) = s.dials[0].clone();
    s.recv(F, 1, &[]);
    assert!(s.closed.contains(&(B, wid)));
    assert_eq!(s.core.stats().clients_waiting, 0);
    assert_eq!(s.core.connections(), 0);
}

#[test]
fn connections_the_proxy_did_not_make_are_refused_in_dial_out() {
    let mut s = Sim::new(dial_limits(&[EP_A]));
    s.worker(7, CURVE);
    assert!(s.is_closed(B, 7));
    assert_eq!(s.core.stats().workers_rejected, 1);
    assert_eq!(s.core.stats().workers_idle[CURVE.index()], 0);
}

#[test]
fn events_report_pairs_and_refusals() {
    let mut s = Sim::new(dial_limits(&[EP_A]));
    s.addrs.insert(1, "192.0.2.7:51000".parse().unwrap());
    s.addrs.insert(2, "192.0.2.8:51001".parse().unwrap());
    s.client(1, CURVE);
    let wid = s.dialed_worker_greets(0, CURVE);
    let events = s.events();
    assert_eq!(events, ["OPEN 1 192.0.2.7:51000 tcp://10.0.0.1:5600 CURVE"]);
    // The worker completes its handshake (WELCOME, READY), then the client leaves.
    let mut welcome = vec![0x04, 8, 7];
    welcome.extend_from_slice(b"WELCOME");
    let mut ready = vec![0x04, 6, 5];
    ready.extend_from_slice(b"READY");
    s.recv_id(B, &wid, &welcome);
    s.recv_id(B, &wid, &ready);
    s.recv(F, 1, &[]);
    let events = s.events();
    assert_eq!(events.len(), 1);
    let f: Vec<&str> = events[0].split(' ').collect();
    assert_eq!(f[..5], ["CLOSE", "1", "192.0.2.7:51000", EP_A, "CURVE"]);
    assert_eq!(f[5], curve_hello().len().to_string(), "bytes up");
    assert_eq!(
        f[6],
        (welcome.len() + ready.len()).to_string(),
        "bytes down"
    );
    assert_eq!(f[8], "client-closed");
    // A refused client.
    s.connect(F, 2);
    s.recv(F, 2, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(s.events(), ["REJECT 192.0.2.8:51001 bad-greeting"]);
}

#[test]
fn failed_handshakes_ban_an_address_for_a_while() {
    let mut limits = dial_limits(&[EP_A]);
    limits.policy.fail_ban = Some(2);
    limits.policy.fail_ban_time = Duration::from_millis(1000);
    let mut s = Sim::new(limits);
    for c in 1..=2 {
        s.addrs.insert(c, "192.0.2.7:51000".parse().unwrap());
        s.client(c, CURVE);
        let wid = s.dialed_worker_greets(c as usize - 1, CURVE);
        // The worker cannot open the HELLO (wrong server key) and closes at once.
        s.recv_id(B, &wid, &[]);
        let events = s.events();
        assert!(
            events.last().unwrap().ends_with("handshake-failed"),
            "{events:?}"
        );
    }
    // Both pairs formed before either failed: held a moment in case the worker died.
    s.advance(deaths::DEATH_WINDOW);
    assert_eq!(s.core.stats().handshakes_failed, 2);
    s.addrs.insert(3, "192.0.2.7:51002".parse().unwrap());
    s.connect(F, 3);
    s.recv(F, 3, &libzmq_greeting(CURVE, false));
    assert!(s.is_closed(F, 3), "banned");
    assert_eq!(s.core.stats().reject_banned, 1);
    assert_eq!(s.events().last().unwrap(), "REJECT 192.0.2.7:51002 banned");
    // Another address is not affected; after the ban time the address is served again.
    s.addrs.insert(4, "192.0.2.9:51000".parse().unwrap());
    s.client(4, CURVE);
    assert_eq!(s.dials.len(), 3);
    s.dialed_worker_greets(2, CURVE);
    s.advance(Duration::from_millis(1001));
    s.addrs.insert(5, "192.0.2.7:51003".parse().unwrap());
    s.client(5, CURVE);
    assert_eq!(s.dials.len(), 4);
}

#[test]
fn one_slow_connection_to_an_endpoint_that_answers_others_does_not_mark_it_down() {
    let mut s = Sim::new(dial_limits(&[EP_A]));
    s.learn_endpoints(10, 1);
    s.client(1, CURVE);
    s.client(2, CURVE);
    // Client 2's connection greets; client 1's never does.
    s.dialed_worker_greets(2, CURVE);
    s.advance(Duration::from_millis(301));
    assert_eq!(s.core.stats().connect_timeouts, 1);
    assert_eq!(s.core.stats_at(s.now).endpoints_down, 0, "A answered since");
    assert_eq!(s.dials.len(), 4, "client 1 dialed again at once");
}

#[test]
fn connections_failing_together_count_as_one_failure() {
    let mut s = Sim::new(dial_limits(&[EP_A, EP_B]));
    s.learn_endpoints(10, 2);
    // A's answer is older than what follows.
    s.advance(Duration::from_millis(1));
    for c in 1..=4 {
        s.client(c, CURVE);
    }
    // A dies: its two connections time out together; B answers.
    s.dialed_worker_greets(3, CURVE);
    s.dialed_worker_greets(5, CURVE);
    s.advance(Duration::from_millis(301));
    assert_eq!(s.core.stats().connect_timeouts, 2);
    assert_eq!(s.core.stats_at(s.now).endpoints_down, 1);
    // Down for the first backoff only (500 ms), not doubled by the second failure.
    s.dialed_worker_greets(6, CURVE);
    s.dialed_worker_greets(7, CURVE);
    s.advance(Duration::from_millis(501));
    assert_eq!(s.core.stats_at(s.now).endpoints_down, 0);
}

#[test]
fn a_client_whose_worker_never_answers_times_out_and_takes_the_dial_along() {
    let mut limits = dial_limits(&[EP_A]);
    limits.connect_timeout = None;
    limits.wait_timeout = Some(Duration::from_millis(1000));
    let mut s = Sim::new(limits);
    s.client(1, CURVE);
    let (_, wid) = s.dials[0].clone();
    s.advance(Duration::from_millis(1001));
    assert!(s.is_closed(F, 1));
    assert!(
        s.closed.contains(&(B, wid)),
        "its connection closed with it"
    );
    assert_eq!(s.core.stats().reject_wait_timeout, 1);
    assert_eq!(s.core.stats().clients_waiting, 0);
    assert_eq!(s.core.connections(), 0);
    assert_eq!(s.events(), ["REJECT - wait-timeout"]);
}

#[test]
fn max_pairs_counts_connections_being_made() {
    let mut limits = dial_limits(&[EP_A]);
    limits.max_pairs = Some(1);
    let mut s = Sim::new(limits);
    s.client(1, CURVE);
    s.client(2, CURVE);
    assert_eq!(s.dials.len(), 1, "one slot: client 2 waits");
    let w1 = s.dialed_worker_greets(0, CURVE);
    assert_eq!(s.dials.len(), 1);
    s.recv_id(B, &w1, &[]);
    assert_eq!(s.dials.len(), 2, "the slot is free again");
}

#[test]
fn a_dialed_worker_closing_in_the_handshake_is_no_lost_slot() {
    let mut s = Sim::new(dial_limits(&[EP_A]));
    s.client(1, CURVE);
    let wid = s.dialed_worker_greets(0, CURVE);
    s.recv_id(B, &wid, &[]);
    let events = s.events();
    assert!(
        events.last().unwrap().ends_with("handshake-failed"),
        "{events:?}"
    );
    assert_eq!(s.core.stats().handshakes_failed, 1);
    assert_eq!(
        s.core.stats().workers_lost,
        0,
        "dial-out makes a new one per client"
    );
}

/// A client of another mechanism than the workers' costs one connection per endpoint, made
/// to learn its mechanism; from then on such clients are refused at the edge
/// (REJECT_MECHANISM, a REJECT event) with no connection to any worker, and it is never the
/// worker's fault (WORKERS_REJECTED stays 0). Clients of the workers' mechanism are served.
#[test]
fn an_endpoint_s_mechanism_is_learned_and_other_clients_refused_at_the_edge() {
    const NULL: Mechanism = Mechanism::Null;
    const PLAIN: Mechanism = Mechanism::Plain;
    let mut s = Sim::new(dial_limits(&[EP_A]));
    s.client(1, NULL);
    assert_eq!(s.dials.len(), 1, "one dial to learn A's mechanism");
    // While it is on its way, no second dial to A: the next client waits.
    s.client(2, PLAIN);
    assert_eq!(s.dials.len(), 1, "one learning dial at a time");
    assert_eq!(s.core.stats().clients_waiting, 2);
    let wid = s.dialed_worker_greets(0, CURVE);
    assert!(
        s.closed.contains(&(B, wid)),
        "the learning connection is closed"
    );
    assert!(
        s.is_closed(F, 1) && s.is_closed(F, 2),
        "no endpoint offers NULL or PLAIN"
    );
    let st = s.core.stats_at(s.now);
    assert_eq!(st.reject_mechanism, 2);
    assert_eq!(st.workers_rejected, 0, "not the worker's fault");
    assert_eq!(st.endpoints_down, 0, "A is alive");
    assert_eq!(st.clients_waiting, 0);
    assert_eq!(
        s.events(),
        ["REJECT - mechanism", "REJECT - mechanism"],
        "refusals are events"
    );
    // Known now: NULL and PLAIN clients are refused on their greeting, before any dial.
    for (c, m) in [(3, NULL), (4, PLAIN), (5, NULL)] {
        s.connect(F, c);
        s.recv(F, c, &libzmq_greeting(m, false));
        assert!(s.is_closed(F, c));
        assert_eq!(s.got(F, c), greeting_opening(), "only the opening");
    }
    assert_eq!(s.dials.len(), 1, "no worker connection spent on them");
    assert_eq!(s.core.stats().reject_mechanism, 5);
    // A CURVE client is served.
    s.client(6, CURVE);
    assert_eq!(s.dials.len(), 2);
    s.dialed_worker_greets(1, CURVE);
    assert_eq!(s.core.stats().pairs_open, 1);
    assert_eq!(s.core.stats().workers_rejected, 0);
}

/// An endpoint whose workers change their mechanism is learned again from the next
/// connection: its client is refused if no endpoint offers its mechanism any more, and
/// clients of the new one are served.
#[test]
fn an_endpoint_s_mechanism_is_learned_again_when_it_changes() {
    let mut s = Sim::new(dial_limits(&[EP_A, EP_B]));
    s.learn_endpoints(1, 2);
    // B's worker comes back as a NULL server: the CURVE client dialed there goes to A.
    s.client(3, CURVE);
    s.client(4, CURVE);
    assert_eq!(s.dials[3].0, EP_B);
    s.dialed_worker_greets(3, Mechanism::Null);
    assert_eq!(s.dials.len(), 5, "client 4 is offered to A");
    assert_eq!(s.dials[4].0, EP_A);
    s.dialed_worker_greets(2, CURVE);
    s.dialed_worker_greets(4, CURVE);
    assert_eq!(s.core.stats().pairs_open, 4);
    // NULL clients now go to B.
    s.client(5, Mechanism::Null);
    assert_eq!(s.dials[5].0, EP_B);
    s.dialed_worker_greets(5, Mechanism::Null);
    assert_eq!(s.core.stats().pairs_open, 5);
    assert_eq!(s.core.stats().workers_rejected, 0);
    assert_eq!(s.core.stats().reject_mechanism, 0);
}

/// A learning dial that fails lets the next client try: clients never wait for ever behind
/// an endpoint that is being learned.
#[test]
fn a_failed_learning_dial_lets_waiting_clients_go_on() {
    let mut s = Sim::new(dial_limits(&[EP_A, EP_B]));
    s.client(1, CURVE);
    s.client(2, CURVE);
    s.client(3, CURVE);
    assert_eq!(
        s.dials.len(),
        2,
        "one learning dial per endpoint; client 3 waits"
    );
    // Client 1 leaves while A is being learned: client 3 takes the learning dial over.
    s.advance(Duration::from_millis(200));
    s.recv(F, 1, &[]);
    assert_eq!(s.dials.len(), 3);
    assert_eq!(s.dials[2].0, EP_A);
    // B does not answer: down, and forgotten; client 2 goes to A once A is known.
    s.advance(Duration::from_millis(101));
    assert_eq!(s.core.stats_at(s.now).endpoints_down, 1);
    assert_eq!(s.dials.len(), 3, "client 2 waits for A to be learned");
    s.dialed_worker_greets(2, CURVE);
    assert_eq!(s.dials.len(), 4);
    assert_eq!(s.dials[3].0, EP_A);
    s.dialed_worker_greets(3, CURVE);
    assert_eq!(s.core.stats().pairs_open, 2);
}

/// Clients arriving while endpoints are being learned wait for the least loaded one rather
/// than pile onto the first that answered: they stay spread evenly.
#[test]
fn clients_arriving_while_endpoints_are_learned_stay_spread_evenly() {
    const EP_C: &str = "tcp://10.0.0.3:5600";
    let mut s = Sim::new(dial_limits(&[EP_A, EP_B, EP_C]));
    for c in 1..=9 {
        s.client(c, CURVE);
    }
    assert_eq!(
        s.dials.len(),
        3,
        "one learning dial per endpoint; the others wait"
    );
    // A answers first: one more client goes there (it ties with B and C, which are still
    // being learned), the rest wait for B and C.
    s.dialed_worker_greets(0, CURVE);
    assert_eq!(s.dials.len(), 4);
    s.dialed_worker_greets(1, CURVE);
    s.dialed_worker_greets(2, CURVE);
    while let Some(i) = (0..s.dials.len()).find(|i| {
        let wid = &s.dials[*i].1;
        !s.got.contains_key(&(B, wid.clone()))
    }) {
        s.dialed_worker_greets(i, CURVE);
    }
    assert_eq!(s.core.stats().pairs_open, 9);
    for ep in [EP_A, EP_B, EP_C] {
        let n = s.dials.iter().filter(|(e, _)| e == ep).count();
        assert_eq!(n, 3, "{ep}: {:?}", s.dials);
    }
}
