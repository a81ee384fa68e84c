#![no_main]
// Client-side response parsers (both protocols) on arbitrary responses.
// The hixie-76 client uses the draft's example keys so that a fuzzer-found
// valid answer (`8jKS'y:G*Co,Wxa-`) is reachable; the RFC 6455 client uses a
// fixed key whose accept value is seeded in the dictionary-less corpus.
use libfuzzer_sys::fuzz_target;
use websocket::handshake::{hixie76, Client, ClientRequest, Parse};
use websocket::{Protocol, Rng};

struct Zero;
impl Rng for Zero {
    fn fill(&mut self, buf: &mut [u8]) {
        buf.fill(0);
    }
}

const REQ: ClientRequest<'static> = ClientRequest {
    host: "example.com",
    path: "/demo",
    origin: Some("http://example.com"),
    protocols: &["sample", "chat"],
};

fuzz_target!(|data: &[u8]| {
    let max = 2048;
    let rc = Client::new(Protocol::Rfc6455, &mut Zero);
    match rc.parse_response(&REQ, data, max) {
        Ok(Parse::Done { value, consumed }) => {
            assert!(consumed <= data.len());
            assert!(value.protocol.is_none_or(|p| REQ.protocols.contains(&p)));
        }
        Ok(Parse::Incomplete) => assert!(data.len() < max),
        Err(e) => {
            let _ = e.as_str();
        }
    }
    let keys = hixie76::ClientKeys::from_keys("4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00", *b"^n:ds[4U")
        .expect("draft keys");
    let hc = Client::Hixie76(keys);
    match hc.parse_response(&REQ, data, max) {
        Ok(Parse::Done { consumed, .. }) => assert!(consumed <= data.len()),
        Ok(Parse::Incomplete) => {}
        Err(e) => {
            let _ = e.as_str();
        }
    }
});
