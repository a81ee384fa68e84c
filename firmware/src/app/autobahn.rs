//! `--autobahn ws://HOST:PORT`: the Autobahn fuzzing client protocol: ask for
//! the case count, run every case in echo mode, ask for the reports.

use firmware::config::{Config, WsUrl};
use firmware::text::Line;

use super::echo::echo_loop;
use super::session::{open, Ev, Failure};
use super::{origin, outcome};
use crate::board::exit::ExitCode;
use crate::board::log::log;
use crate::net::Net;

/// `--autobahn ws://HOST:PORT`: asks the fuzzing server how many cases it has,
/// runs each in echo mode, then asks it to write its reports.
pub fn autobahn(net: &mut Net, config: &Config) -> ExitCode {
    let Some(url) = config.url else {
        return ExitCode::Usage;
    };
    let mut origin_buf = [0u8; 24];
    let origin = origin(config, net, &mut origin_buf);
    let result = (|| {
        let cases = autobahn_case_count(net, config, &url, origin)?;
        log(Line::new().s("autobahn: ").u(cases).s(" cases"));
        for case in 1..=cases {
            let mut path = Line::new();
            path.s("/runCase?case=").u(case).s("&agent=").s(AGENT);
            let path = path.text();
            let mut s = open(net, config, &url, path, origin, None)?;
            let r = echo_loop(&mut s);
            if let Err(Failure::Protocol(e)) = r {
                s.fail_connection(e);
            }
            let mut line = Line::new();
            line.s("case ").u(case).s(": ");
            match r {
                Ok(n) => line.s("echoed ").u(n),
                Err(Failure::Protocol(e)) => line.s("failed the connection: ").s(e.as_str()),
                Err(Failure::Network(what)) | Err(Failure::Timeout(what)) => line.s(what),
                Err(_) => line.s("ended"),
            };
            log(&mut line);
            s.net.abort();
        }
        let mut path = Line::new();
        path.s("/updateReports?agent=").s(AGENT);
        let path = path.text();
        let mut s = open(net, config, &url, path, origin, None)?;
        let _ = echo_loop(&mut s);
        log(Line::new().s("autobahn: reports updated"));
        Ok(())
    })();
    outcome(result, config.timeout_ms)
}

/// The `agent` name the firmware reports to the Autobahn server.
const AGENT: &str = "firmware";

/// `/getCaseCount`: the server sends the count as one text message, then closes.
fn autobahn_case_count(
    net: &mut Net,
    config: &Config,
    url: &WsUrl,
    origin: &str,
) -> Result<u32, Failure> {
    let mut s = open(net, config, url, "/getCaseCount", origin, None)?;
    let mut count: u32 = 0;
    loop {
        match s.next_event("waiting for the case count")? {
            Ev::Data(n) => {
                for &b in &s.chunk[..n] {
                    if b.is_ascii_digit() {
                        count = count.saturating_mul(10).saturating_add((b - b'0') as u32);
                    }
                }
            }
            Ev::End => break,
            Ev::Close(_) => return Err(Failure::Unexpected("no case count from the server")),
            _ => {}
        }
    }
    let _ = s.close(false);
    s.net.abort();
    Ok(count)
}
