#!/usr/bin/env python3
"""Test vectors for cairn's datagram protocol (version 2), from docs/protocol.md alone.

This is an independent implementation of section 11 of docs/protocol.md (with sections 1, 4
and 10 for keys and MessagePack), written without reading the Rust code, so that its bytes
check the specification rather than echo the implementation. It builds one session's
datagrams from fixed inputs, parses and opens each one again as its receiver would, and
prints every value as lowercase hex.

    python3 docs/vectors/datagram.py             # name: hex, one a line
    python3 docs/vectors/datagram.py --markdown  # the tables of docs/vectors/datagram.md

Needs the `cryptography` and `msgpack` packages (`pip install cryptography msgpack`).
"""

import hashlib
import struct
import sys

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MAX_DATAGRAM = 1200
VERSION = 2
INITIAL, ACCEPT, DATA, UNKNOWN, REFUSE, PROBE = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
TAG = 16

# The fixed inputs.
INITIATOR_SEED = bytes(range(32))  # section 10's golden key pair
RESPONDER_SEED = bytes([0x22] * 32)
NETWORK = b"cairn"
FLAGS = 0x01
SID_I = 0x0102030405060708
SID_R = 0x1112131415161718
EPH_I_SECRET = bytes([0x44] * 32)
EPH_R_SECRET = bytes([0x55] * 32)
REFUSE_MESSAGE = 'this node is on network "cairn"'.encode()
# The address the responder saw the initiator's request come from, for the `observed` key.
OBSERVED_IP, OBSERVED_PORT = bytes([198, 51, 100, 7]), 7400
# The nonce of the `reach` vectors: bytes a0 a1 ... af.
REACH_NONCE = bytes(range(0xA0, 0xB0))


def raw_public(key):
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def u64(n):
    return struct.pack(">Q", n)


def pack(message):
    """Section 4: one map, string keys in the order given, byte fields as bin."""
    return msgpack.packb(message, use_bin_type=True)


def nonce(pn):
    """Section 11: four zero bytes and pn as 8 bytes (big-endian, as every integer)."""
    return bytes(4) + u64(pn)


def seal(key, pn, associated, body):
    return ChaCha20Poly1305(key).encrypt(nonce(pn), body, associated)


def open_sealed(key, pn, associated, sealed):
    return ChaCha20Poly1305(key).decrypt(nonce(pn), sealed, associated)


def initial_signed(sid_i, eph_i, pk_i, body):
    """Every byte of an initial before its signature (the signature covers the tag and these)."""
    return (
        bytes([INITIAL, VERSION, FLAGS])
        + u64(sid_i)
        + eph_i
        + pk_i
        + bytes([len(NETWORK)])
        + NETWORK
        + struct.pack(">H", len(body))
        + body
    )


def accept_signed_message(sid_i, eph_i, pk_i, sid_r, eph_r, pk_r):
    return (
        b"cairn-accept-v2"
        + bytes([len(NETWORK)])
        + NETWORK
        + u64(sid_i)
        + eph_i
        + pk_i
        + u64(sid_r)
        + eph_r
        + pk_r
    )


def session_keys(shared, eph_i, eph_r, pk_i, pk_r):
    """Returns (okm, key initiator->responder, key responder->initiator)."""
    okm = hashlib.sha512(b"cairn-session-v2" + shared + eph_i + eph_r + pk_i + pk_r).digest()
    return okm, okm[:32], okm[32:]


def compact(ip, port):
    """Section 11, "Bodies": an address as its 4 (IPv4) or 16 (IPv6) bytes and the port."""
    return ip + struct.pack(">H", port)


def data(receiver_sid, pn, key, body):
    header = bytes([DATA]) + u64(receiver_sid) + u64(pn)
    return header, header + seal(key, pn, header, body)


def build():
    """Every value of the vectors, in order, as (name, bytes) pairs."""
    out = []
    initiator = Ed25519PrivateKey.from_private_bytes(INITIATOR_SEED)
    responder = Ed25519PrivateKey.from_private_bytes(RESPONDER_SEED)
    pk_i, pk_r = raw_public(initiator), raw_public(responder)
    node_id_r = hashlib.sha512(pk_r).digest()
    eph_i_secret = X25519PrivateKey.from_private_bytes(EPH_I_SECRET)
    eph_r_secret = X25519PrivateKey.from_private_bytes(EPH_R_SECRET)
    eph_i, eph_r = raw_public(eph_i_secret), raw_public(eph_r_secret)
    out += [("pk_i", pk_i), ("pk_r", pk_r), ("node id of the responder", node_id_r)]
    out += [("eph_i", eph_i), ("eph_r", eph_r)]

    # The initial.
    find_node = pack({"type": "find_node", "id": 1, "target": node_id_r})
    signed = initial_signed(SID_I, eph_i, pk_i, find_node)
    signature = initiator.sign(b"cairn-initial-v2" + signed)
    initial = signed + signature
    initial += bytes(MAX_DATAGRAM - len(initial))
    out += [("body: find_node id 1", find_node)]
    out += [("initial: signed message", b"cairn-initial-v2" + signed)]
    out += [("initial: signature", signature), ("initial", initial)]

    # Keys: each side computes the same shared secret.
    shared = eph_i_secret.exchange(X25519PublicKey.from_public_bytes(eph_r))
    assert shared == eph_r_secret.exchange(X25519PublicKey.from_public_bytes(eph_i))
    okm, key_ir, key_ri = session_keys(shared, eph_i, eph_r, pk_i, pk_r)
    out += [("shared", shared), ("okm", okm)]
    out += [("key initiator->responder", key_ir), ("key responder->initiator", key_ri)]

    # The accept: header, signature, then the pong sealed as pn 0 with the 146 bytes as AD.
    accept_message = accept_signed_message(SID_I, eph_i, pk_i, SID_R, eph_r, pk_r)
    accept_signature = responder.sign(accept_message)
    header = bytes([ACCEPT, VERSION]) + u64(SID_I) + u64(SID_R) + eph_r + pk_r
    header += accept_signature
    assert len(header) == 146
    pong_1 = pack({"type": "pong", "id": 1})
    accept = header + seal(key_ri, 0, header, pong_1)
    out += [("body: pong id 1", pong_1)]
    out += [("accept: signed message", accept_message)]
    out += [("accept: signature", accept_signature), ("accept", accept)]

    # The data datagrams and the confirm.
    ping_2 = pack({"type": "ping", "id": 2})
    pong_2 = pack({"type": "pong", "id": 2})
    _, data_i = data(SID_R, 1, key_ir, ping_2)
    _, data_r = data(SID_I, 1, key_ri, pong_2)
    _, confirm = data(SID_R, 2, key_ir, b"")
    out += [("body: ping id 2", ping_2), ("data: initiator pn 1, ping id 2", data_i)]
    out += [("body: pong id 2", pong_2), ("data: responder pn 1, pong id 2", data_r)]
    out += [("confirm: initiator pn 2, empty body", confirm)]

    # An answer carrying `observed`: the responder's data pn 2, answering a ping id 3.
    observed = compact(OBSERVED_IP, OBSERVED_PORT)
    pong_3 = pack({"type": "pong", "id": 3, "observed": observed})
    _, data_observed = data(SID_I, 2, key_ri, pong_3)
    out += [("observed: 198.51.100.7:7400", observed)]
    out += [("body: pong id 3 with observed", pong_3)]
    out += [("data: responder pn 2, pong id 3 with observed", data_observed)]

    # The ping of step 3 as a node that knows roles sends it: `role` after its own keys.
    ping_2_role = pack({"type": "ping", "id": 2, "role": "server"})
    _, data_role = data(SID_R, 1, key_ir, ping_2_role)
    out += [("body: ping id 2 with role server", ping_2_role)]
    out += [("data: initiator pn 1, ping id 2 with role server", data_role)]

    # Reachability (section 11, "Reachability"): a client's `reach` (initiator pn 3), the
    # `probe` a server asks a third node for it, the `probed` answer (responder pn 3, with
    # `observed` and `role`), and the probe datagram itself.
    reach_4 = pack({"type": "reach", "id": 4, "nonce": REACH_NONCE, "role": "client"})
    _, data_reach = data(SID_R, 3, key_ir, reach_4)
    probe_9 = pack(
        {
            "type": "probe",
            "id": 9,
            "nonce": REACH_NONCE,
            "to": compact(OBSERVED_IP, OBSERVED_PORT),
            "role": "server",
        }
    )
    probed_4 = pack(
        {
            "type": "probed",
            "id": 4,
            "observed": compact(OBSERVED_IP, OBSERVED_PORT),
            "role": "server",
        }
    )
    _, data_probed = data(SID_I, 3, key_ri, probed_4)
    probe = bytes([PROBE]) + REACH_NONCE
    out += [("body: reach id 4, role client", reach_4)]
    out += [("data: initiator pn 3, reach id 4", data_reach)]
    out += [("body: probe id 9 to 198.51.100.7:7400, role server", probe_9)]
    out += [("body: probed id 4 with observed and role server", probed_4)]
    out += [("data: responder pn 3, probed id 4", data_probed)]
    out += [("probe", probe)]

    unknown = bytes([UNKNOWN]) + u64(SID_R)
    refuse = (
        bytes([REFUSE, VERSION])
        + u64(SID_I)
        + struct.pack(">H", 426)
        + bytes([len(REFUSE_MESSAGE)])
        + REFUSE_MESSAGE
    )
    out += [("unknown", unknown), ("refuse", refuse)]

    values = dict(out)
    check(values, key_ir, key_ri)
    return out


def check(values, key_ir, key_ri):
    """Reads every datagram back as its receiver would: the vectors must agree with themselves."""
    initial = values["initial"]
    assert len(initial) == MAX_DATAGRAM and initial[:2] == bytes([INITIAL, VERSION])
    n = initial[75]
    assert initial[76 : 76 + n] == NETWORK
    (length,) = struct.unpack(">H", initial[76 + n : 78 + n])
    end = 78 + n + length
    Ed25519PublicKey.from_public_bytes(initial[43:75]).verify(
        initial[end : end + 64], b"cairn-initial-v2" + initial[:end]
    )
    assert not any(initial[end + 64 :])
    request = msgpack.unpackb(initial[78 + n : end], raw=False)
    assert request == {"type": "find_node", "id": 1, "target": values["node id of the responder"]}

    accept = values["accept"]
    Ed25519PublicKey.from_public_bytes(accept[50:82]).verify(
        accept[82:146], values["accept: signed message"]
    )
    pong = msgpack.unpackb(open_sealed(key_ri, 0, accept[:146], accept[146:]))
    assert pong == {"type": "pong", "id": 1}
    for name, key, body in [
        ("data: initiator pn 1, ping id 2", key_ir, {"type": "ping", "id": 2}),
        ("data: responder pn 1, pong id 2", key_ri, {"type": "pong", "id": 2}),
    ]:
        datagram = values[name]
        (pn,) = struct.unpack(">Q", datagram[9:17])
        assert msgpack.unpackb(open_sealed(key, pn, datagram[:17], datagram[17:])) == body
    datagram = values["data: responder pn 2, pong id 3 with observed"]
    body = msgpack.unpackb(open_sealed(key_ri, 2, datagram[:17], datagram[17:]))
    assert body == {"type": "pong", "id": 3, "observed": bytes([198, 51, 100, 7, 0x1C, 0xE8])}
    datagram = values["data: initiator pn 1, ping id 2 with role server"]
    body = msgpack.unpackb(open_sealed(key_ir, 1, datagram[:17], datagram[17:]))
    assert body == {"type": "ping", "id": 2, "role": "server"}
    datagram = values["data: initiator pn 3, reach id 4"]
    body = msgpack.unpackb(open_sealed(key_ir, 3, datagram[:17], datagram[17:]))
    assert body == {"type": "reach", "id": 4, "nonce": REACH_NONCE, "role": "client"}
    datagram = values["data: responder pn 3, probed id 4"]
    body = msgpack.unpackb(open_sealed(key_ri, 3, datagram[:17], datagram[17:]))
    assert body["type"] == "probed" and body["id"] == 4
    probe = values["probe"]
    assert len(probe) == 17 and probe[0] == PROBE and probe[1:] == REACH_NONCE
    # No amplification: the probe is smaller than the sealed request that asks for it.
    request = values["body: probe id 9 to 198.51.100.7:7400, role server"]
    assert len(probe) < 17 + len(request) + TAG
    confirm = values["confirm: initiator pn 2, empty body"]
    assert len(confirm) == 17 + TAG
    assert open_sealed(key_ir, 2, confirm[:17], confirm[17:]) == b""


def markdown(values):
    """One table row per value; the initial's zero padding is counted, not written out."""
    lines = ["| value | bytes | hex |", "|---|---|---|"]
    for name, value in values:
        shown, note = value, ""
        if name == "initial":
            n = value[75]
            (length,) = struct.unpack(">H", value[76 + n : 78 + n])
            shown = value[: 78 + n + length + 64]
            note = f" then {len(value) - len(shown)} zero bytes"
        lines.append(f"| {name} | {len(value)} | `{shown.hex()}`{note} |")
    return "\n".join(lines)


def main():
    values = build()
    if sys.argv[1:] == ["--markdown"]:
        print(markdown(values))
    else:
        for name, value in values:
            print(f"{name}: {value.hex()}")


if __name__ == "__main__":
    main()
