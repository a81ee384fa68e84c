//! Property tests: whatever one role encodes, the other decodes identically,
//! whatever the chunking of the byte stream (whole, one byte at a time,
//! random splits) and of the encoder's payload writes.

use proptest::prelude::*;
use websocket::{Event, MessageKind, Opcode, Protocol, Receiver, Role, Sender};

mod common;
use common::Lcg;

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Msg(MessageKind, Vec<u8>),
    Ping(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Plan {
    item: Item,
    /// Fragment sizes (RFC 6455 data messages), `None` = one frame.
    frags: Option<Vec<usize>>,
    /// Ping sent between fragments.
    inner_ping: bool,
    /// Payload write chunk size for the streaming encoder.
    write_chunk: usize,
}

fn item(proto: Protocol) -> BoxedStrategy<Item> {
    let text = any::<String>().prop_map(|s| Item::Msg(MessageKind::Text, s.into_bytes()));
    let long_text = "[a-zé€𝄞]{100,400}".prop_map(|s| Item::Msg(MessageKind::Text, s.into_bytes()));
    match proto {
        Protocol::Hixie76 => prop_oneof![text, long_text].boxed(),
        Protocol::Rfc6455 => prop_oneof![
            text,
            long_text,
            prop::collection::vec(any::<u8>(), 0..300)
                .prop_map(|b| Item::Msg(MessageKind::Binary, b)),
            prop::collection::vec(any::<u8>(), 66000..66100)
                .prop_map(|b| Item::Msg(MessageKind::Binary, b)),
            prop::collection::vec(any::<u8>(), 0..=125).prop_map(Item::Ping),
        ]
        .boxed(),
    }
}

fn plan(proto: Protocol) -> impl Strategy<Value = Plan> {
    (
        item(proto),
        prop::option::of(prop::collection::vec(1usize..50, 1..5)),
        any::<bool>(),
        1usize..200,
    )
        .prop_map(|(item, frags, inner_ping, write_chunk)| Plan {
            item,
            frags,
            inner_ping,
            write_chunk,
        })
}

/// Encodes the plan with the streaming API; returns the bytes and the items
/// the peer must see (pings between fragments come out first).
fn encode(proto: Protocol, role: Role, plans: &[Plan], rng: &mut Lcg) -> (Vec<u8>, Vec<Item>) {
    let mut tx = Sender::new(proto, role);
    let mut wire = Vec::new();
    let mut expect = Vec::new();
    let mut out = vec![0u8; 70000];
    for p in plans {
        match &p.item {
            Item::Ping(b) => {
                let n = tx.ping(b, &mut out, rng).unwrap();
                wire.extend_from_slice(&out[..n]);
                expect.push(p.item.clone());
            }
            Item::Msg(kind, payload) => {
                let frags = match (&p.frags, proto) {
                    (Some(f), Protocol::Rfc6455) => f.clone(),
                    _ => vec![],
                };
                if frags.is_empty() {
                    let n = tx
                        .begin_message(*kind, payload.len() as u64, &mut out, rng)
                        .unwrap();
                    wire.extend_from_slice(&out[..n]);
                    for c in payload.chunks(p.write_chunk) {
                        let n = tx.payload(c, &mut out).unwrap();
                        wire.extend_from_slice(&out[..n]);
                    }
                    let n = tx.end_message(&mut out).unwrap();
                    wire.extend_from_slice(&out[..n]);
                } else {
                    // Split payload at the fragment sizes; the rest goes last.
                    let mut rest = &payload[..];
                    let mut first = true;
                    let mut pieces = Vec::new();
                    for &f in &frags {
                        let (a, b) = rest.split_at(f.min(rest.len()));
                        pieces.push(a);
                        rest = b;
                    }
                    pieces.push(rest);
                    let last = pieces.len() - 1;
                    for (i, piece) in pieces.iter().enumerate() {
                        let op = match (first, kind) {
                            (false, _) => Opcode::Continuation,
                            (true, MessageKind::Text) => Opcode::Text,
                            (true, MessageKind::Binary) => Opcode::Binary,
                        };
                        first = false;
                        let n = tx
                            .begin_frame(op, i == last, piece.len() as u64, &mut out, rng)
                            .unwrap();
                        let n = n + tx.payload(piece, &mut out[n..]).unwrap();
                        wire.extend_from_slice(&out[..n]);
                        if p.inner_ping && i == 0 && i != last {
                            let n = tx.ping(b"in", &mut out, rng).unwrap();
                            wire.extend_from_slice(&out[..n]);
                            expect.push(Item::Ping(b"in".to_vec()));
                        }
                    }
                }
                expect.push(p.item.clone());
            }
        }
    }
    (wire, expect)
}

fn decode(proto: Protocol, role: Role, mut wire: Vec<u8>, splits: &[usize]) -> Vec<Item> {
    let mut rx = Receiver::new(proto, role, 1 << 20);
    let mut got = Vec::new();
    let mut cur: Option<(MessageKind, Vec<u8>)> = None;
    let mut start = 0;
    let mut k = 0;
    while start < wire.len() {
        let step = if splits.is_empty() {
            wire.len()
        } else {
            splits[k % splits.len()]
        };
        k += 1;
        let end = (start + step).min(wire.len());
        let chunk = &mut wire[start..end];
        let mut pos = 0;
        loop {
            let (n, ev) = rx.read(&mut chunk[pos..]).unwrap();
            pos += n;
            match ev {
                None => break,
                Some(Event::MessageStart { kind, len }) => {
                    assert!(cur.is_none());
                    cur = Some((kind, Vec::with_capacity(len.unwrap_or(0) as usize)));
                }
                Some(Event::Data(d)) => cur.as_mut().unwrap().1.extend_from_slice(d),
                Some(Event::MessageEnd) => {
                    let (kind, data) = cur.take().unwrap();
                    got.push(Item::Msg(kind, data));
                }
                Some(Event::Ping(p)) => got.push(Item::Ping(p.to_vec())),
                Some(e) => panic!("unexpected {e:?}"),
            }
        }
        assert_eq!(pos, end - start);
        start = end;
    }
    assert!(cur.is_none());
    got
}

fn check(proto: Protocol, sender: Role, plans: &[Plan], splits: &[usize], seed: u64) {
    let receiver = match sender {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let (wire, expect) = encode(proto, sender, plans, &mut Lcg(seed));
    assert_eq!(
        decode(proto, receiver, wire.clone(), splits),
        expect,
        "random splits"
    );
    if wire.len() < 20000 {
        assert_eq!(
            decode(proto, receiver, wire.clone(), &[1]),
            expect,
            "one byte at a time"
        );
    }
    assert_eq!(decode(proto, receiver, wire, &[]), expect, "whole");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn rfc6455_client_to_server(plans in prop::collection::vec(plan(Protocol::Rfc6455), 1..6),
                                splits in prop::collection::vec(1usize..300, 1..8), seed: u64) {
        check(Protocol::Rfc6455, Role::Client, &plans, &splits, seed);
    }

    #[test]
    fn rfc6455_server_to_client(plans in prop::collection::vec(plan(Protocol::Rfc6455), 1..6),
                                splits in prop::collection::vec(1usize..300, 1..8), seed: u64) {
        check(Protocol::Rfc6455, Role::Server, &plans, &splits, seed);
    }

    #[test]
    fn hixie76_both_ways(plans in prop::collection::vec(plan(Protocol::Hixie76), 1..6),
                         splits in prop::collection::vec(1usize..300, 1..8), seed: u64, client: bool) {
        check(Protocol::Hixie76, if client { Role::Client } else { Role::Server }, &plans, &splits, seed);
    }

    #[test]
    fn whole_message_equals_streamed(kind_text: bool, payload in prop::collection::vec(any::<u8>(), 0..1000),
                                     chunk in 1usize..100, seed: u64) {
        let kind = if kind_text { MessageKind::Text } else { MessageKind::Binary };
        let payload = if kind_text { String::from_utf8_lossy(&payload).into_owned().into_bytes() } else { payload };
        let mut a = vec![0u8; 2000];
        let mut tx = Sender::new(Protocol::Rfc6455, Role::Client);
        let n = tx.message(kind, &payload, &mut a, &mut Lcg(seed)).unwrap();
        let mut b = vec![0u8; 2000];
        let mut w = tx.begin_message(kind, payload.len() as u64, &mut b, &mut Lcg(seed)).unwrap();
        for c in payload.chunks(chunk) {
            let mut piece = c.to_vec();
            tx.payload_in_place(&mut piece).unwrap();
            b[w..w + piece.len()].copy_from_slice(&piece);
            w += piece.len();
        }
        prop_assert_eq!(&a[..n], &b[..w]);
    }

    /// The 8-bytes-at-a-time unmasking equals the byte-by-byte definition
    /// (RFC 6455 section 5.3) from any key offset.
    #[test]
    fn apply_mask_matches_the_definition(key: [u8; 4], offset in 0usize..4,
                                         data in prop::collection::vec(any::<u8>(), 0..100)) {
        let mut fast = data.clone();
        let next = websocket::frame::apply_mask(key, offset, &mut fast);
        let slow: Vec<u8> = data.iter().enumerate().map(|(i, b)| b ^ key[(offset + i) % 4]).collect();
        prop_assert_eq!(fast, slow);
        prop_assert_eq!(next, (offset + data.len()) % 4);
    }
}
