#![no_main]
// Server-side request parsers (both protocols): parse every prefix-free
// input, answer when it parses, and check `consumed` is in range.
use libfuzzer_sys::fuzz_target;
use websocket::handshake::{hixie76, parse_head, rfc6455, write_reject, Parse};

fuzz_target!(|data: &[u8]| {
    let mut out = [0u8; 1024];
    let max = 2048;
    if let Ok(Parse::Done { value, consumed }) = parse_head(data, max) {
        assert!(consumed <= data.len());
        let _ = (value.path(), value.protocol(), value.headers.get("Origin"));
    }
    match rfc6455::parse_request(data, max) {
        Ok(Parse::Done { value, consumed }) => {
            assert!(consumed <= data.len());
            let _ = value.protocols().count();
            let proto = value.protocols().next();
            let _ = rfc6455::write_accept(&value, proto, &mut out);
        }
        Ok(Parse::Incomplete) => assert!(data.len() < max),
        Err(e) => {
            let _ = write_reject(e, &mut out).expect("reject fits");
        }
    }
    match hixie76::parse_request(data, max) {
        Ok(Parse::Done { value, consumed }) => {
            assert!(consumed <= data.len());
            let _ = hixie76::write_accept(&value, value.protocol, &mut out);
        }
        Ok(Parse::Incomplete) => {}
        Err(e) => {
            let _ = e.as_str();
        }
    }
});
