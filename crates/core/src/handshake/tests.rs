use super::*;

#[test]
fn each_side_verifies_and_roles_do_not_mix() {
    let dialer = SigningKey::from_bytes(&[1; 32]);
    let listener = SigningKey::from_bytes(&[2; 32]);
    let t = Transcript {
        network: "cairn",
        dialer_key: dialer.verifying_key().to_bytes(),
        dialer_nonce: [3; 32],
        listener_key: listener.verifying_key().to_bytes(),
        listener_nonce: [4; 32],
    };
    let l = t.sign(Role::Listener, &listener);
    let d = t.sign(Role::Dialer, &dialer);
    assert!(t.verify(Role::Listener, &l));
    assert!(t.verify(Role::Dialer, &d));
    assert!(!t.verify(Role::Dialer, &l));
    assert!(!t.verify(Role::Listener, &t.sign(Role::Dialer, &listener)));
    let other = Transcript {
        dialer_nonce: [5; 32],
        ..t.clone()
    };
    assert!(!other.verify(Role::Listener, &l));
    let other_net = Transcript {
        network: "cairn2",
        ..t.clone()
    };
    assert!(!other_net.verify(Role::Dialer, &d));
    assert_eq!(
        &t.signed_bytes(Role::Listener)[..20],
        b"Lcairn-handshake-v1\x05"
    );
}

// --- the state machines -----------------------------------------------------------------

use std::net::SocketAddr;
use std::time::Duration;

use crate::datagram::{Real, Simulated};
use crate::message::{ErrorCode, Message, Mode, NetworkName, Welcome};
use crate::{NodeId, Time};

const DIALER_AT: &str = "192.0.2.7:40000";
const LISTENER_AT: &str = "198.51.100.9:4000";
const TIMEOUT: Duration = Duration::from_secs(5);
/// When every message in these tests arrives, unless one says otherwise: within the deadline.
const NOW: Time = Time::from_secs(101);

fn greeting(network: &str, port: u16, datagrams: bool) -> Greeting {
    Greeting {
        network: NetworkName::new(network).unwrap(),
        port,
        datagrams,
    }
}

fn real(seed: u8) -> Real {
    Real::new(SigningKey::from_bytes(&[seed; 32]))
}

fn accepting<C: Suite>(listener: &C, greeting: Greeting) -> Accepting {
    Accepting::new(
        (listener, [9; 32]),
        greeting,
        (DIALER_AT.parse().unwrap(), 17),
        Time::from_secs(100),
        TIMEOUT,
    )
}

fn dialing<C: Suite>(dialer: &C, greeting: Greeting, expected: Option<NodeId>) -> Dialing {
    Dialing::new(
        dialer,
        greeting,
        [8; 32],
        LISTENER_AT.parse().unwrap(),
        expected,
    )
}

/// `hello` from `dial` to `accept`, and `accept`'s answer back: what each side made of it.
fn exchange<C: Suite>(
    (dial, dialer): (&mut Dialing, &C),
    (accept, listener): (&mut Accepting, &C),
    role: Option<Mode>,
) -> (
    Result<Welcomed, HandshakeError>,
    Result<Dialed, HandshakeError>,
) {
    let hello = dial.poll_message().expect("hello first");
    assert!(matches!(hello, Message::Hello(_)), "{hello:?}");
    assert!(dial.poll_message().is_none(), "only hello before welcome");
    let welcomed = accept.handle_hello(listener, hello, role);
    let answer = accept.poll_message().expect("welcome or a refusal");
    assert!(accept.poll_message().is_none());
    (welcomed, dial.handle_message(dialer, answer))
}

/// A dial from `dialer` to `listener`, both on `cairn`, past `welcome`: the dial verified and
/// its `auth` queued, the listener waiting for it.
fn past_welcome<C: Suite>(dialer: &C, listener: &C) -> (Dialing, Accepting) {
    let mut accept = accepting(listener, greeting("cairn", 4000, true));
    let mut dial = dialing(dialer, greeting("cairn", 5000, true), None);
    exchange((&mut dial, dialer), (&mut accept, listener), None)
        .1
        .expect("the welcome verifies");
    (dial, accept)
}

fn auth_signature(dial: &mut Dialing) -> [u8; 64] {
    match dial.poll_message() {
        Some(Message::Auth(auth)) => auth.signature,
        other => panic!("expected auth, got {other:?}"),
    }
}

#[test]
fn a_dial_and_an_accept_prove_both_keys_and_say_who_is_who() {
    let (dialer, listener) = (real(1), real(2));
    let mut accept = accepting(&listener, greeting("cairn", 4000, true));
    let listener_id = NodeId::of_public_key(&listener.public_key());
    let mut dial = dialing(&dialer, greeting("cairn", 5000, true), Some(listener_id));
    let (welcomed, dialed) = exchange((&mut dial, &dialer), (&mut accept, &listener), None);
    let welcomed = welcomed.expect("welcomed");
    let dialed = dialed.expect("the welcome verifies");
    assert_eq!(dialed.id, listener_id);
    assert_eq!(dialed.public_key, listener.public_key());
    assert!(dialed.datagrams);
    let announced: SocketAddr = "192.0.2.7:5000".parse().unwrap();
    assert_eq!(welcomed.announced, Some(announced));
    assert_eq!(welcomed.requester.addr, Some(announced));
    assert_eq!(
        welcomed.requester.id,
        NodeId::of_public_key(&dialer.public_key())
    );
    assert!(!welcomed.requester.verified, "not before auth");
    assert_eq!(welcomed.requester.connection, 17);
    assert_eq!(welcomed.tcp_only, None, "the dialer speaks datagrams");
    assert!(!accept.is_verified());
    let signature = auth_signature(&mut dial);
    assert_eq!(accept.handle_auth::<Real>(NOW, &signature), Ok(()));
    assert!(accept.is_verified());
    assert_eq!(accept.poll_timeout(), None, "no deadline once verified");
    // A second `auth` is refused and leaves the handshake standing.
    assert_eq!(
        accept.handle_auth::<Real>(NOW, &signature),
        Err(HandshakeError::SecondAuth)
    );
    assert!(accept.is_verified());
}

#[test]
fn another_network_or_version_is_refused_426_and_the_dialer_says_so() {
    let (dialer, listener) = (real(1), real(2));
    let mut accept = accepting(&listener, greeting("cairn", 4000, true));
    let mut dial = dialing(&dialer, greeting("elsewhere", 0, true), None);
    let (welcomed, dialed) = exchange((&mut dial, &dialer), (&mut accept, &listener), None);
    assert!(
        matches!(welcomed, Err(HandshakeError::Mismatch { version: 1, ref network }) if network.as_str() == "elsewhere"),
        "{welcomed:?}"
    );
    assert!(
        matches!(dialed, Err(HandshakeError::Refused { code, .. }) if code == ErrorCode::MISMATCH),
        "{dialed:?}"
    );
    assert_eq!(
        accept.poll_timeout(),
        None,
        "failed: nothing more to wait for"
    );

    let mut accept = accepting(&listener, greeting("cairn", 4000, true));
    let mut hello = dialing(&dialer, greeting("cairn", 0, true), None)
        .poll_message()
        .unwrap();
    if let Message::Hello(hello) = &mut hello {
        hello.version = 3;
    }
    let welcomed = accept.handle_hello(&listener, hello, None);
    assert!(matches!(
        welcomed,
        Err(HandshakeError::Mismatch { version: 3, .. })
    ));
    assert!(matches!(
        accept.poll_message(),
        Some(Message::Response { id: 0, .. })
    ));
}

#[test]
fn anything_but_hello_first_fails_the_listener_and_anything_but_welcome_the_dialer() {
    let (dialer, listener) = (real(1), real(2));
    let mut accept = accepting(&listener, greeting("cairn", 4000, true));
    let ping = Message::Request {
        id: 1,
        request: crate::Request::Ping,
    };
    assert_eq!(
        accept.handle_hello(&listener, ping.clone(), None),
        Err(HandshakeError::NotHello)
    );
    assert!(accept.poll_message().is_none(), "nothing is answered");

    let mut dial = dialing(&dialer, greeting("cairn", 0, true), None);
    assert_eq!(
        dial.handle_message(&dialer, ping),
        Err(HandshakeError::NotWelcome)
    );
    assert!(
        dial.poll_message()
            .is_some_and(|m| matches!(m, Message::Hello(_)))
    );
    assert!(
        dial.poll_message().is_none(),
        "no auth after a failed welcome"
    );
}

#[test]
fn a_forged_welcome_another_node_or_another_network_fails_the_dial() {
    let (dialer, listener, other) = (real(1), real(2), real(3));
    let other_id = NodeId::of_public_key(&other.public_key());

    // The node at the address is not the one expected.
    let mut accept = accepting(&listener, greeting("cairn", 4000, true));
    let mut dial = dialing(&dialer, greeting("cairn", 0, true), Some(other_id));
    let (_, dialed) = exchange((&mut dial, &dialer), (&mut accept, &listener), None);
    assert!(
        matches!(dialed, Err(HandshakeError::UnexpectedPeer { found, .. }) if found == NodeId::of_public_key(&listener.public_key())),
        "{dialed:?}"
    );
    assert!(dial.poll_message().is_none(), "no auth to the wrong node");

    // A welcome claiming `other`'s key, signed by the listener's: it does not verify.
    let mut accept = accepting(&listener, greeting("cairn", 4000, true));
    let mut dial = dialing(&dialer, greeting("cairn", 0, true), None);
    let hello = dial.poll_message().unwrap();
    accept.handle_hello(&listener, hello, None).unwrap();
    let Some(Message::Welcome(welcome)) = accept.poll_message() else {
        panic!("a welcome");
    };
    let forged = Message::Welcome(Welcome {
        public_key: other.public_key(),
        ..welcome.clone()
    });
    assert_eq!(
        dial.handle_message(&dialer, forged),
        Err(HandshakeError::BadWelcome)
    );

    // A welcome of another network (a listener that does not check the dialer's).
    let mut dial = dialing(&dialer, greeting("cairn", 0, true), None);
    let _ = dial.poll_message();
    let elsewhere = Message::Welcome(Welcome {
        network: NetworkName::new("elsewhere").unwrap(),
        ..welcome
    });
    assert!(matches!(
        dial.handle_message(&dialer, elsewhere),
        Err(HandshakeError::WrongNetwork(_))
    ));
}

#[test]
fn an_auth_that_does_not_verify_fails_and_the_listeners_own_signature_is_no_auth() {
    let (dialer, listener, other) = (real(1), real(2), real(3));
    let mut accept = accepting(&listener, greeting("cairn", 4000, true));
    let mut dial = dialing(&dialer, greeting("cairn", 5000, true), None);
    let hello = dial.poll_message().unwrap();
    accept.handle_hello(&listener, hello, None).unwrap();
    let Some(Message::Welcome(welcome)) = accept.poll_message() else {
        panic!("a welcome");
    };
    // The welcome's signature sent back as the auth: the role byte tells them apart.
    assert_eq!(
        accept.handle_auth::<Real>(NOW, &welcome.signature),
        Err(HandshakeError::BadAuth)
    );
    assert!(!accept.is_verified());

    // Another key signs the dialer's transcript: refused too.
    let (mut dial, mut accept) = past_welcome(&dialer, &listener);
    let honest = auth_signature(&mut dial);
    let transcript = Transcript {
        network: "cairn",
        dialer_key: dialer.public_key(),
        dialer_nonce: [8; 32],
        listener_key: listener.public_key(),
        listener_nonce: [9; 32],
    };
    assert_eq!(transcript.sign_with(Role::Dialer, &dialer), honest);
    let forged = transcript.sign_with(Role::Dialer, &other);
    assert_eq!(
        accept.handle_auth::<Real>(NOW, &forged),
        Err(HandshakeError::BadAuth)
    );
}

#[test]
fn the_listener_times_the_dialer_out_at_its_deadline_unless_auth_came() {
    let (dialer, listener) = (real(1), real(2));
    let mut accept = accepting(&listener, greeting("cairn", 4000, true));
    let deadline = Time::from_secs(100) + TIMEOUT;
    assert_eq!(accept.poll_timeout(), Some(deadline));
    assert_eq!(accept.handle_timeout(Time::from_secs(104)), Ok(()));
    let mut dial = dialing(&dialer, greeting("cairn", 5000, true), None);
    exchange((&mut dial, &dialer), (&mut accept, &listener), None)
        .1
        .unwrap();
    assert_eq!(
        accept.poll_timeout(),
        Some(deadline),
        "welcomed is not done"
    );
    assert_eq!(
        accept.handle_timeout(deadline),
        Err(HandshakeError::Timeout)
    );
    assert_eq!(
        accept.handle_auth::<Real>(NOW, &auth_signature(&mut dial)),
        Err(HandshakeError::BadAuth),
        "too late"
    );

    let (mut dial, mut accept) = past_welcome(&dialer, &listener);
    accept
        .handle_auth::<Real>(NOW, &auth_signature(&mut dial))
        .unwrap();
    assert_eq!(accept.handle_timeout(deadline + TIMEOUT), Ok(()));

    // An `auth` that arrives at the deadline is late, whether or not the timer fired first.
    let (mut dial, mut accept) = past_welcome(&dialer, &listener);
    assert_eq!(
        accept.handle_auth::<Real>(deadline, &auth_signature(&mut dial)),
        Err(HandshakeError::Timeout)
    );
    assert!(!accept.is_verified());
}

#[test]
fn a_client_announces_no_address_and_a_version_1_dialer_is_reached_over_tcp() {
    let (dialer, listener) = (real(1), real(2));
    let mut accept = accepting(&listener, greeting("cairn", 4000, true));
    let mut dial = dialing(&dialer, greeting("cairn", 5000, true), None);
    let welcomed = exchange(
        (&mut dial, &dialer),
        (&mut accept, &listener),
        Some(Mode::Client),
    )
    .0
    .unwrap();
    assert_eq!(welcomed.requester.addr, None, "a client enters no table");
    assert!(welcomed.announced.is_some());

    let mut accept = accepting(&listener, greeting("cairn", 4000, true));
    let mut dial = dialing(&dialer, greeting("cairn", 5000, false), None);
    let (welcomed, _) = exchange((&mut dial, &dialer), (&mut accept, &listener), None);
    assert_eq!(
        welcomed.unwrap().tcp_only,
        Some("192.0.2.7:5000".parse().unwrap())
    );

    // A version-1 listener: the dialer learns it speaks no datagrams.
    let mut accept = accepting(&listener, greeting("cairn", 4000, false));
    let mut dial = dialing(&dialer, greeting("cairn", 5000, true), None);
    let (welcomed, dialed) = exchange((&mut dial, &dialer), (&mut accept, &listener), None);
    assert_eq!(
        welcomed.unwrap().tcp_only,
        None,
        "this node has no datagrams"
    );
    assert!(!dialed.unwrap().datagrams);
}

#[test]
fn the_simulators_suite_runs_the_same_rules() {
    let (dialer, listener) = (Simulated::new([1; 32]), Simulated::new([2; 32]));
    let mut accept = accepting(&listener, greeting("cairn", 4000, true));
    let mut dial = dialing(&dialer, greeting("cairn", 5000, true), None);
    let (welcomed, dialed) = exchange((&mut dial, &dialer), (&mut accept, &listener), None);
    assert!(welcomed.is_ok());
    assert_eq!(dialed.unwrap().id, NodeId::of_public_key(&[2; 32]));
    let signature = auth_signature(&mut dial);
    assert_eq!(accept.handle_auth::<Simulated>(NOW, &signature), Ok(()));
    // Its signatures are not real ones.
    let (mut dial, mut accept) = past_welcome(&dialer, &listener);
    assert_eq!(
        accept.handle_auth::<Real>(NOW, &auth_signature(&mut dial)),
        Err(HandshakeError::BadAuth)
    );
}
