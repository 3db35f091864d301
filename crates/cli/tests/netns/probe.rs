//! Plain UDP and TCP through the NATs, to see what the public segment sees: a listener on a
//! public host prints the source address of everything that reaches it (and echoes it back);
//! a sender on any host sends from fixed ports and waits for the echoes. Both are small
//! `python3` programs run in the namespaces, since a test thread cannot enter one.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use super::guard::Spawned;
use super::topology::{Host, Topology};
use super::wait_for;

/// Binds UDP and TCP on argv[1], prints `ready`, then one line per datagram or connection:
/// `udp|tcp SOURCE_IP SOURCE_PORT PAYLOAD`, and echoes each back to its source.
const LISTENER: &str = r#"
import socket, sys, threading
port = int(sys.argv[1])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", port))
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", port))
tcp.listen(16)
def serve_tcp():
    while True:
        conn, (ip, source) = tcp.accept()
        payload = conn.recv(256).decode()
        print("tcp", ip, source, payload, flush=True)
        conn.sendall(b"echo")
        conn.close()
threading.Thread(target=serve_tcp, daemon=True).start()
print("ready", flush=True)
while True:
    payload, (ip, source) = udp.recvfrom(2048)
    print("udp", ip, source, payload.decode(), flush=True)
    udp.sendto(payload, (ip, source))
"#;

/// argv: UDP_PORT TCP_PORT PAYLOAD DEST... (DEST = ip:port). Sends PAYLOAD over UDP from
/// UDP_PORT to each DEST until it is echoed (5 tries, 2 s each), then, unless TCP_PORT is 0,
/// over TCP from TCP_PORT to the first DEST. Prints `echo IP PORT` per echo; exits 1 when one
/// never came.
const SENDER: &str = r#"
import socket, sys
udp_port, tcp_port, payload = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].encode()
dests = [(d.split(":")[0], int(d.split(":")[1])) for d in sys.argv[4:]]
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", udp_port))
udp.settimeout(2)
for dest in dests:
    for _ in range(5):
        udp.sendto(payload, dest)
        try:
            echo, source = udp.recvfrom(2048)
        except socket.timeout:
            continue
        if echo == payload and source == dest:
            print("echo", *source, flush=True)
            break
    else:
        sys.exit("no echo from %s:%d" % dest)
if tcp_port:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("0.0.0.0", tcp_port))
    tcp.settimeout(10)
    tcp.connect(dests[0])
    tcp.sendall(payload)
    assert tcp.recv(16) == b"echo"
    print("tcp-echo", flush=True)
"#;

/// argv: PAYLOAD IP:PORT. One datagram, no echo awaited.
const FIRE: &str = r#"
import socket, sys
ip, port = sys.argv[2].split(":")
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(sys.argv[1].encode(), (ip, int(port)))
"#;

/// The port every listener binds.
pub const PORT: u16 = 9000;

/// What a listener saw: one datagram or connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub tcp: bool,
    pub source: SocketAddrV4,
    pub payload: String,
}

/// A listener running on a public host.
pub struct Listener {
    label: String,
    pub addr: SocketAddrV4,
    process: Spawned,
}

impl Listener {
    /// Starts a listener on `host` at [`PORT`] and waits until it is bound.
    pub fn start(topology: &Topology, host: &Host) -> Self {
        let label = format!("listener-{}", host.name);
        let netns = topology.netns();
        let process = netns.spawn(
            host.name,
            &label,
            &["python3", "-u", "-c", LISTENER, &PORT.to_string()],
        );
        let log = netns.log(&label);
        wait_for(
            &format!("the listener on {}", host.name),
            Duration::from_secs(30),
            Duration::from_millis(20),
            || match std::fs::read_to_string(&log) {
                Ok(text) if text.starts_with("ready") => Ok(()),
                Ok(text) => Err(text),
                Err(e) => Err(e.to_string()),
            },
        );
        Listener {
            label,
            addr: SocketAddrV4::new(host.addr, PORT),
            process,
        }
    }

    /// The listener's process.
    pub fn process(&self) -> Spawned {
        self.process
    }

    /// Everything seen so far.
    pub fn seen(&self, topology: &Topology) -> Vec<Seen> {
        let text = std::fs::read_to_string(topology.netns().log(&self.label)).unwrap_or_default();
        text.lines().skip(1).filter_map(parse).collect()
    }

    /// What was seen over UDP (or TCP) with `payload`, waiting until there is some.
    pub fn from(&self, topology: &Topology, tcp: bool, payload: &str) -> Vec<Seen> {
        wait_for(
            &format!("{payload} at the listener on {}", self.addr),
            Duration::from_secs(30),
            Duration::from_millis(20),
            || {
                let seen: Vec<Seen> = self
                    .seen(topology)
                    .into_iter()
                    .filter(|s| s.tcp == tcp && s.payload == payload)
                    .collect();
                if seen.is_empty() {
                    Err(format!("{:?}", self.seen(topology)))
                } else {
                    Ok(seen)
                }
            },
        )
    }
}

fn parse(line: &str) -> Option<Seen> {
    let mut words = line.splitn(4, ' ');
    let tcp = words.next()? == "tcp";
    let ip: Ipv4Addr = words.next()?.parse().ok()?;
    let port: u16 = words.next()?.parse().ok()?;
    let payload = words.next().unwrap_or_default().to_owned();
    Some(Seen {
        tcp,
        source: SocketAddrV4::new(ip, port),
        payload,
    })
}

/// From `host`, sends `payload` over UDP from `udp_port` to every listener in `to` and,
/// unless `tcp_port` is 0, over TCP from `tcp_port` to the first; fails the test unless every
/// one echoed it back (so replies pass the NAT too).
pub fn send(
    topology: &Topology,
    host: &Host,
    (udp_port, tcp_port): (u16, u16),
    payload: &str,
    to: &[SocketAddrV4],
) {
    let mut args = vec![
        "python3".to_owned(),
        "-c".to_owned(),
        SENDER.to_owned(),
        udp_port.to_string(),
        tcp_port.to_string(),
        payload.to_owned(),
    ];
    args.extend(to.iter().map(ToString::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sent = topology
        .netns()
        .run(host.name, &args, "", Duration::from_secs(60));
    assert!(
        sent.status.success(),
        "sending from {}: {}{}",
        host.name,
        String::from_utf8_lossy(&sent.stdout),
        String::from_utf8_lossy(&sent.stderr)
    );
}

/// From `host`, one datagram of `payload` to `to`, without waiting for anything.
pub fn fire(topology: &Topology, host: &Host, payload: &str, to: SocketAddrV4) {
    let to = to.to_string();
    let args = ["python3", "-c", FIRE, payload, &to];
    let fired = topology
        .netns()
        .run(host.name, &args, "", Duration::from_secs(30));
    assert!(
        fired.status.success(),
        "sending from {}: {}",
        host.name,
        String::from_utf8_lossy(&fired.stderr)
    );
}
