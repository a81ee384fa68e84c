//! Interop with tungstenite over loopback TCP (127.0.0.1, ephemeral ports):
//! this crate's client against tungstenite's server, and this crate's server
//! (streaming echo through a 512-byte buffer) against tungstenite's client.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use tungstenite::Message;
use websocket::handshake::{rfc6455, Client, ClientRequest, Parse};
use websocket::{CloseState, Connection, Event, MessageKind, Opcode, Protocol, Role};

mod common;
use common::Lcg;

fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// Reverse-echo server built on tungstenite.
fn tungstenite_server(l: TcpListener) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut ws = tungstenite::accept(s).unwrap();
        loop {
            match ws.read() {
                Ok(Message::Text(t)) => {
                    let r: String = t.as_str().chars().rev().collect();
                    ws.send(Message::text(r)).unwrap();
                }
                Ok(Message::Binary(b)) => {
                    let mut v = b.to_vec();
                    v.reverse();
                    ws.send(Message::binary(v)).unwrap();
                }
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => break,
                Err(e) => panic!("server: {e}"),
            }
        }
    })
}

#[test]
fn our_client_against_tungstenite_server() {
    let (l, port) = listener();
    let server = tungstenite_server(l);
    let mut sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rng = Lcg(42);
    let host = format!("127.0.0.1:{port}");
    let req = ClientRequest {
        host: &host,
        path: "/",
        origin: Some("http://test"),
        protocols: &[],
    };
    let hs = Client::new(Protocol::Rfc6455, &mut rng);
    let mut out = vec![0u8; 80_000];
    let n = hs.write_request(&req, &mut out).unwrap();
    sock.write_all(&out[..n]).unwrap();

    // Small input buffer: messages stream through it.
    let mut inbuf = [0u8; 512];
    let mut have = 0;
    let mut pos = loop {
        let r = sock.read(&mut inbuf[have..]).unwrap();
        assert!(r > 0);
        have += r;
        match hs
            .parse_response(&req, &inbuf[..have], inbuf.len())
            .unwrap()
        {
            Parse::Done { consumed, .. } => break consumed,
            Parse::Incomplete => {}
        }
    };

    let mut conn = Connection::new(Protocol::Rfc6455, Role::Client, 1 << 20);
    let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
    let messages: Vec<(MessageKind, Vec<u8>)> = vec![
        (MessageKind::Text, "héllo wörld €𝄞".as_bytes().to_vec()),
        (MessageKind::Text, Vec::new()),
        (MessageKind::Binary, vec![1, 2, 3]),
        (MessageKind::Binary, big),
        (MessageKind::Text, "x".repeat(300).into_bytes()),
    ];
    for (kind, msg) in &messages {
        let n = conn.send(*kind, msg, &mut out, &mut rng).unwrap();
        sock.write_all(&out[..n]).unwrap();
        // Also a ping; tungstenite answers with a pong.
        let n = conn.tx.ping(b"p", &mut out, &mut rng).unwrap();
        sock.write_all(&out[..n]).unwrap();

        // What the server sends back: the message reversed, as Python's
        // `[::-1]` does it (by code point for text).
        let expect: Vec<u8> = match kind {
            MessageKind::Text => {
                let text = std::str::from_utf8(msg).unwrap();
                text.chars().rev().collect::<String>().into_bytes()
            }
            MessageKind::Binary => msg.iter().rev().copied().collect(),
        };
        let mut got = Vec::new();
        let mut done = false;
        let mut pong = false;
        while !(done && pong) {
            if pos == have {
                pos = 0;
                have = sock.read(&mut inbuf).unwrap();
                assert!(have > 0, "eof");
            }
            loop {
                let (n, ev) = conn.read(&mut inbuf[pos..have]).unwrap();
                pos += n;
                match ev {
                    None => break,
                    Some(Event::MessageStart { kind: k, .. }) => assert_eq!(k, *kind),
                    Some(Event::Data(d)) => got.extend_from_slice(d),
                    Some(Event::MessageEnd) => {
                        assert_eq!(got, expect);
                        done = true;
                    }
                    Some(Event::Pong(p)) => {
                        assert_eq!(p, b"p");
                        pong = true;
                    }
                    Some(e) => panic!("{e:?}"),
                }
            }
        }
    }
    let n = conn.close(Some(1000), "bye", &mut out, &mut rng).unwrap();
    sock.write_all(&out[..n]).unwrap();
    while conn.close_state() != CloseState::Done {
        if pos == have {
            pos = 0;
            have = sock.read(&mut inbuf).unwrap();
            assert!(have > 0, "eof before close");
        }
        let (n, ev) = conn.read(&mut inbuf[pos..have]).unwrap();
        pos += n;
        if let Some(Event::Close { code, .. }) = ev {
            assert_eq!(code, Some(1000));
        }
    }
    server.join().unwrap();
}

/// This crate's server: echoes every message, streaming it through a
/// 512-byte input buffer (frames of a known length are echoed as one frame
/// of that length; fragmented ones as fragments).
fn our_server(l: TcpListener) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let (mut sock, _) = l.accept().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rng = Lcg(7);
        let mut inbuf = [0u8; 512];
        let mut out = [0u8; 600];
        let mut have = 0;
        let mut pos = loop {
            let r = sock.read(&mut inbuf[have..]).unwrap();
            assert!(r > 0);
            have += r;
            match rfc6455::parse_request(&inbuf[..have], inbuf.len()).unwrap() {
                Parse::Done { value, consumed } => {
                    assert_eq!(value.path, "/echo");
                    let proto = value.protocols().find(|p| *p == "chat");
                    let n = rfc6455::write_accept(&value, proto, &mut out).unwrap();
                    sock.write_all(&out[..n]).unwrap();
                    break consumed;
                }
                Parse::Incomplete => {}
            }
        };
        let mut conn = Connection::new(Protocol::Rfc6455, Role::Server, 1 << 20);
        // Some(kind) while echoing a message of unknown length as fragments.
        let mut frag: Option<MessageKind> = None;
        let mut first_frag = true;
        loop {
            if pos == have {
                pos = 0;
                have = sock.read(&mut inbuf).unwrap();
                if have == 0 {
                    break;
                }
            }
            loop {
                // `conn.rx.read` borrows only the receiver: `conn.tx` can
                // stream the echo while the chunk is held.
                let (n, ev) = conn.rx.read(&mut inbuf[pos..have]).unwrap();
                pos += n;
                let mut w = 0;
                match ev {
                    None => break,
                    Some(Event::MessageStart {
                        kind,
                        len: Some(len),
                    }) => {
                        w = conn
                            .tx
                            .begin_message(kind, len, &mut out, &mut rng)
                            .unwrap();
                    }
                    Some(Event::MessageStart { kind, len: None }) => {
                        frag = Some(kind);
                        first_frag = true;
                    }
                    Some(Event::Data(d)) => match frag {
                        None => w = conn.tx.payload(d, &mut out).unwrap(),
                        Some(kind) => {
                            let op = match (first_frag, kind) {
                                (false, _) => Opcode::Continuation,
                                (true, MessageKind::Text) => Opcode::Text,
                                (true, MessageKind::Binary) => Opcode::Binary,
                            };
                            first_frag = false;
                            w = conn
                                .tx
                                .begin_frame(op, false, d.len() as u64, &mut out, &mut rng)
                                .unwrap();
                            w += conn.tx.payload(d, &mut out[w..]).unwrap();
                        }
                    },
                    Some(Event::MessageEnd) => match frag.take() {
                        None => w = conn.tx.end_message(&mut out).unwrap(),
                        Some(kind) => {
                            let op = if first_frag {
                                match kind {
                                    MessageKind::Text => Opcode::Text,
                                    MessageKind::Binary => Opcode::Binary,
                                }
                            } else {
                                Opcode::Continuation
                            };
                            w = conn
                                .tx
                                .begin_frame(op, true, 0, &mut out, &mut rng)
                                .unwrap();
                        }
                    },
                    Some(_) => {}
                }
                w += conn.poll_write(&mut out[w..], &mut rng).unwrap();
                sock.write_all(&out[..w]).unwrap();
                if conn.close_state() == CloseState::Done {
                    return; // server closes TCP first
                }
            }
        }
    })
}

#[test]
fn tungstenite_client_against_our_server() {
    let (l, port) = listener();
    let server = our_server(l);
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let req = tungstenite::http::Request::builder()
        .uri(format!("ws://127.0.0.1:{port}/echo"))
        .header("Host", format!("127.0.0.1:{port}"))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .header("Sec-WebSocket-Protocol", "superchat, chat")
        .body(())
        .unwrap();
    let (mut ws, resp) = tungstenite::client(req, sock).unwrap();
    assert_eq!(
        resp.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "chat"
    );
    let big: Vec<u8> = (0..65_536u32).map(|i| (i * 13) as u8).collect();
    let text64k: String = "añ€𝄞".repeat(65_536 / 10);
    let msgs = vec![
        Message::text("hello"),
        Message::binary(big),
        Message::text(text64k),
        Message::binary(Vec::new()),
    ];
    for m in msgs {
        ws.send(m.clone()).unwrap();
        ws.send(Message::Ping(b"pp".to_vec().into())).unwrap();
        let mut got_pong = false;
        loop {
            match ws.read().unwrap() {
                Message::Pong(p) => {
                    assert_eq!(&p[..], b"pp");
                    got_pong = true;
                }
                reply => {
                    assert_eq!(reply, m);
                    break;
                }
            }
        }
        // The pong may come after the echo.
        if !got_pong {
            assert!(matches!(ws.read().unwrap(), Message::Pong(_)));
        }
    }
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) | Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(tungstenite::Error::Protocol(_)) | Err(tungstenite::Error::Io(_)) => break,
            Err(e) => panic!("{e}"),
        }
    }
    server.join().unwrap();
}

#[test]
fn bad_requests_get_426_or_400() {
    let (l, port) = listener();
    let h = thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let mut have = 0;
            loop {
                have += s.read(&mut buf[have..]).unwrap();
                match rfc6455::parse_request(&buf[..have], buf.len()) {
                    Ok(Parse::Incomplete) => continue,
                    Ok(Parse::Done { .. }) => panic!("accepted"),
                    Err(e) => {
                        let mut out = [0u8; 256];
                        let n = websocket::handshake::write_reject(e, &mut out).unwrap();
                        s.write_all(&out[..n]).unwrap();
                        break;
                    }
                }
            }
        }
    });
    for (version, status) in [("8", 426u16), ("13", 400)] {
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let key = if status == 400 {
            "short"
        } else {
            "dGhlIHNhbXBsZSBub25jZQ=="
        };
        let req = tungstenite::http::Request::builder()
            .uri(format!("ws://127.0.0.1:{port}/"))
            .header("Host", "x")
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", version)
            .header("Sec-WebSocket-Key", key)
            .body(())
            .unwrap();
        match tungstenite::client(req, sock) {
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r))) => {
                assert_eq!(r.status().as_u16(), status);
                assert_eq!(r.headers().get("Sec-WebSocket-Version").unwrap(), "13");
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
    h.join().unwrap();
}
