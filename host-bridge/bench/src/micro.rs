//! Microbenchmarks of the two per-byte loops that dominated host-bridge's server
//! profile with large messages (PROFILE.md: `reverse_echo::reverse_text` and
//! the unmasking inside `Receiver::read`): the shared library's word-at-a-time
//! loops against the byte-at-a-time definitions they replaced (kept here, checked
//! to give the same results), and tokio-tungstenite's peer's
//! `chars().rev().collect()` for scale. A change that makes the library's loops
//! slower shows up as a smaller speed-up.

use std::hint::black_box;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::stats::median;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Micro {
    pub what: String,
    pub size: usize,
    /// Nanoseconds per call of the library's loop (median of 5 batches).
    pub library_ns: f64,
    /// The same for the byte-at-a-time definition, where there is one.
    pub bytewise_ns: Option<f64>,
}

fn is_cont(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Reverse by code point, one byte per step: reverse the bytes, then put each
/// run of continuation bytes and its lead back in order (the library's code up
/// to commit ba87bfb).
pub fn reverse_text_bytewise(buf: &mut [u8]) {
    buf.reverse();
    let mut i = 0;
    while i < buf.len() {
        let run = buf
            .get(i..)
            .unwrap_or(&[])
            .iter()
            .take_while(|&&b| is_cont(b))
            .count();
        if run > 0 && i + run < buf.len() {
            if let Some(seq) = buf.get_mut(i..=i + run) {
                seq.reverse();
            }
        }
        i += run + 1;
    }
}

/// RFC 6455 section 5.3's masking as written: byte i XOR key[(offset + i) % 4].
pub fn apply_mask_bytewise(key: [u8; 4], offset: usize, buf: &mut [u8]) -> usize {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) & 3];
    }
    (offset + buf.len()) & 3
}

fn ns_per_call(buf: &mut [u8], mut f: impl FnMut(&mut [u8])) -> f64 {
    let iters = (20_000_000 / buf.len().max(64)).max(10);
    let batches: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f(black_box(&mut *buf));
            }
            t.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    median(&batches).unwrap_or(f64::NAN)
}

/// Checks that the library's loops give the definitions' results, then times both.
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
        reverse_echo::reverse_text(&mut a);
        let mut b = s.as_bytes().to_vec();
        reverse_text_bytewise(&mut b);
        anyhow::ensure!(a == b, "the library's reverse_text differs on {s:?}");
    }
    for off in 0..4 {
        for len in 0..40u8 {
            let mut a: Vec<u8> = (0..len).collect();
            let mut b = a.clone();
            let ra = websocket::frame::apply_mask([1, 2, 3, 4], off, &mut a);
            let rb = apply_mask_bytewise([1, 2, 3, 4], off, &mut b);
            anyhow::ensure!(a == b && ra == rb, "the library's apply_mask differs");
        }
    }
    let mut out = Vec::new();
    for &size in sizes {
        let mut buf: Vec<u8> = (0..size).map(|i| b'!' + (i % 94) as u8).collect();
        out.push(Micro {
            what: "reverse_text (ASCII)".into(),
            size,
            library_ns: ns_per_call(&mut buf, reverse_echo::reverse_text),
            bytewise_ns: Some(ns_per_call(&mut buf, reverse_text_bytewise)),
        });
        out.push(Micro {
            what: "apply_mask".into(),
            size,
            library_ns: ns_per_call(&mut buf, |b| {
                websocket::frame::apply_mask([1, 2, 3, 4], 1, b);
            }),
            bytewise_ns: Some(ns_per_call(&mut buf, |b| {
                apply_mask_bytewise([1, 2, 3, 4], 1, b);
            })),
        });
        out.push(Micro {
            what: "chars().rev().collect() (tokio-tungstenite peer), for scale".into(),
            size,
            library_ns: ns_per_call(&mut buf, |b| {
                let s: String = std::str::from_utf8(b).unwrap_or("").chars().rev().collect();
                black_box(s);
            }),
            bytewise_ns: None,
        });
    }
    Ok(out)
}
