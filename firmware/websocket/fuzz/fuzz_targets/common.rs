// Shared by the frame targets: decode the same bytes with two different
// chunkings and require identical results (events, payload, error).
use websocket::{Connection, Event, Protocol, Rng, Role};

pub struct Lcg(pub u64);
impl Rng for Lcg {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1);
            *b = (self.0 >> 33) as u8;
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum Ev {
    Start(websocket::MessageKind, Option<u64>),
    Data(Vec<u8>),
    End,
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

pub fn decode(
    proto: Protocol,
    role: Role,
    max: u64,
    data: &[u8],
    step: usize,
) -> (Vec<Ev>, Option<websocket::Error>) {
    let mut conn = Connection::new(proto, role, max);
    let mut evs: Vec<Ev> = Vec::new();
    let mut buf = data.to_vec();
    let mut out = [0u8; 300];
    let mut rng = Lcg(1);
    for chunk in buf.chunks_mut(step.max(1)) {
        let len = chunk.len();
        let mut pos = 0;
        loop {
            let r = conn.read(&mut chunk[pos..]);
            let (n, ev) = match r {
                Ok(x) => x,
                Err(e) => {
                    let _ = e.as_str();
                    let _ = e.close_code();
                    return (evs, Some(e));
                }
            };
            pos += n;
            assert!(pos <= len);
            match ev {
                None => break,
                Some(Event::MessageStart { kind, len }) => evs.push(Ev::Start(kind, len)),
                Some(Event::Data(d)) => {
                    assert!(!d.is_empty());
                    // Merge data chunks so different chunkings compare equal.
                    if let Some(Ev::Data(prev)) = evs.last_mut() {
                        prev.extend_from_slice(d);
                    } else {
                        evs.push(Ev::Data(d.to_vec()));
                    }
                }
                Some(Event::MessageEnd) => evs.push(Ev::End),
                Some(Event::Ping(p)) => evs.push(Ev::Ping(p.to_vec())),
                Some(Event::Pong(p)) => evs.push(Ev::Pong(p.to_vec())),
                Some(Event::Close { code, reason }) => {
                    evs.push(Ev::Close(code, reason.to_string()))
                }
            }
        }
        assert_eq!(pos, chunk.len());
        let _ = conn
            .poll_write(&mut out, &mut rng)
            .expect("300 bytes fit any reply");
    }
    (evs, None)
}

pub fn check(proto: Protocol, data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let role = if ctl & 1 == 0 {
        Role::Client
    } else {
        Role::Server
    };
    let max = [0u64, 5, 130, 70000, u64::MAX][(ctl as usize >> 1) % 5];
    let step = (ctl as usize >> 4) + 1;
    let mut whole = decode(proto, role, max, rest, rest.len());
    let mut split = decode(proto, role, max, rest, step);
    if whole.1.is_some() || split.1.is_some() {
        // A chunk that is valid so far is handed out before the error in
        // a later byte is seen: only the trailing payload may differ.
        for r in [&mut whole, &mut split] {
            if let Some(Ev::Data(_)) = r.0.last() {
                r.0.pop();
            }
        }
    }
    assert_eq!(whole, split);
    // The reply side: every payload reversed the library's way must be what
    // Python's `message[::-1]` gives, and the checker must accept it.
    for ev in &whole.0 {
        if let Ev::Data(d) = ev {
            check_reverse(d);
        }
    }
}

fn check_reverse(payload: &[u8]) {
    let mut reversed = payload.to_vec();
    reverse_echo::reverse_text(&mut reversed);
    if let Ok(text) = core::str::from_utf8(payload) {
        let expect: String = text.chars().rev().collect();
        assert_eq!(reversed, expect.as_bytes());
        let mut c = reverse_echo::ReplyChecker::new(websocket::MessageKind::Text, payload);
        assert!(c.feed(&reversed) && c.is_match());
    }
}
