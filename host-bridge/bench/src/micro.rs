//! Microbenchmarks of the two per-byte loops that dominate host-bridge's server
//! profile with large messages (perf: `websocket::reverse::reverse` and the
//! unmasking inside `Receiver::read`), the shared library's code against drop-in
//! replacements proposed in the report (same results, safe, `no_std`), and
//! tokio-tungstenite's peer's `chars().rev().collect()` for scale.

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Micro {
    pub what: String,
    pub size: usize,
    /// Nanoseconds per call (median of 5 batches).
    pub current_ns: f64,
    pub proposed_ns: Option<f64>,
}

fn is_cont(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Proposed `websocket::reverse::reverse_text`: the same two passes, but the
/// fix-up pass skips 8 ASCII bytes at a time.
pub fn reverse_text_proposed(buf: &mut [u8]) {
    buf.reverse();
    let n = buf.len();
    let mut i = 0;
    while i < n {
        if let Some(chunk) = buf.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
            if u64::from_ne_bytes(chunk) & 0x8080_8080_8080_8080 == 0 {
                i += 8;
                continue;
            }
        }
        // A run of continuation bytes, then its lead byte: put them back in order.
        let mut j = i;
        while buf.get(j).is_some_and(|&b| is_cont(b)) {
            j += 1;
        }
        if j > i && j < n {
            if let Some(seq) = buf.get_mut(i..=j) {
                seq.reverse();
            }
        }
        i = j + 1;
    }
}

/// Proposed `websocket::frame::apply_mask`: 8 bytes per XOR (LLVM vectorizes it).
pub fn apply_mask_proposed(key: [u8; 4], offset: usize, buf: &mut [u8]) -> usize {
    let k = [
        key[offset & 3],
        key[(offset + 1) & 3],
        key[(offset + 2) & 3],
        key[(offset + 3) & 3],
    ];
    let m = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        if let Ok(a) = <[u8; 8]>::try_from(&*c) {
            c.copy_from_slice(&(u64::from_ne_bytes(a) ^ m).to_ne_bytes());
        }
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= k[i & 3];
    }
    (offset + buf.len()) & 3
}

fn ns_per_call(buf: &mut [u8], mut f: impl FnMut(&mut [u8])) -> f64 {
    let iters = (20_000_000 / buf.len().max(64)).max(10);
    let mut batches: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f(black_box(&mut *buf));
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    batches.sort_by(|a, b| a.total_cmp(b));
    batches[2]
}

/// Checks that the proposals give the library's results, then times both.
pub fn run(sizes: &[usize]) -> anyhow::Result<Vec<Micro>> {
    let samples = [
        "",
        "a",
        "héllo wörld",
        "a𝄞b",
        "日本語テキスト",
        "0123456789abcdef🙂🙃x0123456789é",
    ];
    for s in samples {
        let mut a = s.as_bytes().to_vec();
        websocket::reverse::reverse_text(&mut a);
        let mut b = s.as_bytes().to_vec();
        reverse_text_proposed(&mut b);
        anyhow::ensure!(a == b, "proposed reverse_text differs on {s:?}");
    }
    for off in 0..4 {
        for len in 0..40u8 {
            let mut a: Vec<u8> = (0..len).collect();
            let mut b = a.clone();
            let ra = websocket::frame::apply_mask([1, 2, 3, 4], off, &mut a);
            let rb = apply_mask_proposed([1, 2, 3, 4], off, &mut b);
            anyhow::ensure!(a == b && ra == rb, "proposed apply_mask differs");
        }
    }
    let mut out = Vec::new();
    for &size in sizes {
        let mut buf: Vec<u8> = (0..size).map(|i| b'!' + (i % 94) as u8).collect();
        out.push(Micro {
            what: "reverse_text (ASCII)".into(),
            size,
            current_ns: ns_per_call(&mut buf, websocket::reverse::reverse_text),
            proposed_ns: Some(ns_per_call(&mut buf, reverse_text_proposed)),
        });
        out.push(Micro {
            what: "apply_mask".into(),
            size,
            current_ns: ns_per_call(&mut buf, |b| {
                websocket::frame::apply_mask([1, 2, 3, 4], 1, b);
            }),
            proposed_ns: Some(ns_per_call(&mut buf, |b| {
                apply_mask_proposed([1, 2, 3, 4], 1, b);
            })),
        });
        out.push(Micro {
            what: "chars().rev().collect() (tokio-tungstenite peer), for scale".into(),
            size,
            current_ns: ns_per_call(&mut buf, |b| {
                let s: String = std::str::from_utf8(b).unwrap_or("").chars().rev().collect();
                black_box(s);
            }),
            proposed_ns: None,
        });
    }
    Ok(out)
}
