//! The firmware's options, parsed from its command line (see [`crate::cmdline`]).
//!
//! Every malformed or unknown option is an error with a message naming it; the
//! firmware prints it with the usage text and exits with [`USAGE_EXIT_CODE`].

use websocket::Protocol;

use crate::cmdline::Args;

/// The usage text printed by `--help` and after an argument error.
pub const USAGE: &str = "\
usage: firmware [OPTIONS]   (defaults in brackets)
  --url ws://IP:PORT/PATH   server [none: boot check only]
  --proto rfc6455|hixie76   [rfc6455]
  --origin TEXT             [http://<own address>]
  --subprotocol TEXT        subprotocol to ask for
  --count N                 messages to send [8]
  --message TEXT            send TEXT every time [a generated set]
  --retry N                 connect retries; with --reconnect, attempts
                            per outage, 0 = no limit [0]
  --reconnect               reconnect after a lost connection, resume
  --keepalive-ms N          ping after N ms of silence; dead after 2N [off]
  --window N                messages sent ahead of their echoes, 1..16 [1]
  --timeout-ms N            bound on every wait [5000]
  --ip IP/N                 static address [DHCP]
  --gateway IP              default route with --ip
  --ping IP                 ping a host once the network is up
  --echo                    echo every message back until closed
  --autobahn ws://IP:PORT   run the Autobahn server's cases
  --crash panic|hardfault   fail on purpose
  --help                    this text
Quote an argument holding spaces: --message \"two words\".";

/// An option that takes a value, once its name has been looked up in
/// [`VALUE_OPTIONS`].
#[derive(Clone, Copy)]
enum ValueOption {
    Url,
    Proto,
    Origin,
    Subprotocol,
    Count,
    Message,
    Retry,
    TimeoutMs,
    KeepaliveMs,
    Window,
    Ip,
    Gateway,
    Ping,
    Autobahn,
    Crash,
}

/// The options that take a value, by name. `Config::parse` compares an argument
/// with these names once and then matches on the [`ValueOption`]: a second `match`
/// on the name would compare the strings again (236 B more flash, measured).
const VALUE_OPTIONS: [(&str, ValueOption); 15] = [
    ("--url", ValueOption::Url),
    ("--proto", ValueOption::Proto),
    ("--origin", ValueOption::Origin),
    ("--subprotocol", ValueOption::Subprotocol),
    ("--count", ValueOption::Count),
    ("--message", ValueOption::Message),
    ("--retry", ValueOption::Retry),
    ("--timeout-ms", ValueOption::TimeoutMs),
    ("--keepalive-ms", ValueOption::KeepaliveMs),
    ("--window", ValueOption::Window),
    ("--ip", ValueOption::Ip),
    ("--gateway", ValueOption::Gateway),
    ("--ping", ValueOption::Ping),
    ("--autobahn", ValueOption::Autobahn),
    ("--crash", ValueOption::Crash),
];

/// Most messages `--window` lets the client send ahead of their echoes.
pub const MAX_WINDOW: u32 = 16;

/// Exit status for a bad command line.
pub const USAGE_EXIT_CODE: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    Panic,
    HardFault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Print the banner and the arguments, then exit 0.
    BootCheck,
    /// Send messages and check that each comes back reversed.
    ReverseEcho,
    /// Send every received message back unchanged until the server closes.
    Echo,
    /// Walk the Autobahn TestSuite fuzzing server's cases.
    Autobahn,
    /// Bring the network up, run the `--ping` check, exit.
    Ping,
}

/// An IPv4 `ws://` URL. Names are not resolved: the firmware has no DNS client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsUrl<'a> {
    /// `A.B.C.D:PORT` as written, for the Host header.
    pub authority: &'a str,
    pub ip: [u8; 4],
    pub port: u16,
    /// Starts with `/`.
    pub path: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticIp {
    pub address: [u8; 4],
    pub prefix_len: u8,
    pub gateway: Option<[u8; 4]>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config<'a> {
    pub mode: Mode,
    pub url: Option<WsUrl<'a>>,
    pub protocol: Protocol,
    pub origin: Option<&'a str>,
    pub subprotocol: Option<&'a str>,
    pub count: u32,
    pub message: Option<&'a str>,
    /// Connect retries; with `reconnect`, attempts per outage (0: no limit).
    pub retries: u32,
    pub timeout_ms: u32,
    /// Reconnect after a lost connection and resume from the first message
    /// whose echo has not come (reverse-echo mode).
    pub reconnect: bool,
    /// Ping after this many ms of silence, give the peer up after twice that
    /// (0: off).
    pub keepalive_ms: u32,
    /// Messages sent before the oldest one's echo is awaited (1: send, wait,
    /// send; at most [`MAX_WINDOW`]).
    pub window: u32,
    pub static_ip: Option<StaticIp>,
    /// Host to ping once the network is up (a self-check of the whole path).
    pub ping: Option<[u8; 4]>,
    pub crash: Option<Crash>,
    pub help: bool,
}

impl Default for Config<'_> {
    fn default() -> Self {
        Config {
            mode: Mode::BootCheck,
            url: None,
            protocol: Protocol::Rfc6455,
            origin: None,
            subprotocol: None,
            count: 8,
            message: None,
            retries: 0,
            timeout_ms: 5000,
            reconnect: false,
            keepalive_ms: 0,
            window: 1,
            static_ip: None,
            ping: None,
            crash: None,
            help: false,
        }
    }
}

/// What was wrong with the command line: a message and the argument it is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgError<'a> {
    pub message: &'static str,
    pub argument: &'a str,
}

fn err<'a, T>(message: &'static str, argument: &'a str) -> Result<T, ArgError<'a>> {
    Err(ArgError { message, argument })
}

impl<'a> Config<'a> {
    /// Parses `args`, whose first element is the program name.
    pub fn parse(args: &Args<'a>) -> Result<Config<'a>, ArgError<'a>> {
        let mut config = Config::default();
        let mut gateway = None;
        let mut echo = false;
        let mut autobahn = None;
        let mut it = args.iter().skip(1);
        while let Some(option) = it.next() {
            if option == "--help" || option == "-h" {
                config.help = true;
                continue;
            }
            if option == "--echo" {
                echo = true;
                continue;
            }
            if option == "--reconnect" {
                config.reconnect = true;
                continue;
            }
            let Some(&(_, kind)) = VALUE_OPTIONS.iter().find(|(name, _)| *name == option) else {
                return err("unknown option", option);
            };
            let Some(value) = it.next() else {
                return err("option needs a value", option);
            };
            match kind {
                ValueOption::Url => config.url = Some(parse_url(value)?),
                ValueOption::Autobahn => autobahn = Some(parse_url(value)?),
                ValueOption::Proto => {
                    config.protocol = match value {
                        "rfc6455" => Protocol::Rfc6455,
                        "hixie76" => Protocol::Hixie76,
                        _ => return err("--proto takes rfc6455 or hixie76", value),
                    }
                }
                ValueOption::Origin => config.origin = Some(value),
                ValueOption::Subprotocol => config.subprotocol = Some(value),
                ValueOption::Message => config.message = Some(value),
                ValueOption::Count => {
                    config.count = parse_u32(value, "--count takes a whole number")?
                }
                ValueOption::Retry => {
                    config.retries = parse_u32(value, "--retry takes a whole number")?
                }
                ValueOption::TimeoutMs => {
                    config.timeout_ms = parse_u32(value, "--timeout-ms takes a whole number")?;
                    if config.timeout_ms == 0 {
                        return err("--timeout-ms must be at least 1", value);
                    }
                }
                ValueOption::KeepaliveMs => {
                    config.keepalive_ms = parse_u32(value, "--keepalive-ms takes a whole number")?
                }
                ValueOption::Window => {
                    config.window =
                        decimal(value, MAX_WINDOW)
                            .filter(|&w| w >= 1)
                            .ok_or(ArgError {
                                message: "--window takes a number from 1 to 16",
                                argument: value,
                            })?
                }
                ValueOption::Ip => {
                    let (address, prefix) = split_at_byte(value, b'/', false).ok_or(ArgError {
                        message: "--ip takes A.B.C.D/N",
                        argument: value,
                    })?;
                    let address = parse_ipv4(address).ok_or(ArgError {
                        message: "--ip takes A.B.C.D/N",
                        argument: value,
                    })?;
                    let prefix_len = decimal(prefix, 32)
                        .filter(|p| *p >= 1)
                        .map(|p| p as u8)
                        .ok_or(ArgError {
                            message: "prefix length must be 1..32",
                            argument: value,
                        })?;
                    config.static_ip = Some(StaticIp {
                        address,
                        prefix_len,
                        gateway: None,
                    });
                }
                ValueOption::Gateway => {
                    gateway = Some(parse_ipv4(value).ok_or(ArgError {
                        message: "--gateway takes A.B.C.D",
                        argument: value,
                    })?)
                }
                ValueOption::Ping => {
                    config.ping = Some(parse_ipv4(value).ok_or(ArgError {
                        message: "--ping takes A.B.C.D",
                        argument: value,
                    })?)
                }
                ValueOption::Crash => {
                    config.crash = Some(match value {
                        "panic" => Crash::Panic,
                        "hardfault" => Crash::HardFault,
                        _ => return err("--crash takes panic or hardfault", value),
                    })
                }
            }
        }
        if let Some(gateway) = gateway {
            match config.static_ip.as_mut() {
                Some(ip) => ip.gateway = Some(gateway),
                None => return err("--gateway needs --ip", "--gateway"),
            }
        }
        config.mode = match (config.url.is_some(), echo, autobahn) {
            (_, true, Some(_)) => return err("--echo and --autobahn exclude each other", "--echo"),
            (false, true, None) => return err("--echo needs --url", "--echo"),
            (_, false, Some(url)) => {
                config.url = Some(url);
                Mode::Autobahn
            }
            (true, true, None) => Mode::Echo,
            (true, false, None) => Mode::ReverseEcho,
            (false, false, None) if config.ping.is_some() => Mode::Ping,
            (false, false, None) => Mode::BootCheck,
        };
        let client_option = if config.reconnect {
            Some("--reconnect")
        } else if config.keepalive_ms > 0 {
            Some("--keepalive-ms")
        } else if config.window > 1 {
            Some("--window")
        } else {
            None
        };
        if let Some(option) = client_option.filter(|_| config.mode != Mode::ReverseEcho) {
            return err(
                "--reconnect, --keepalive-ms and --window need --url without --echo",
                option,
            );
        }
        Ok(config)
    }
}

fn parse_u32<'a>(value: &'a str, message: &'static str) -> Result<u32, ArgError<'a>> {
    decimal(value, u32::MAX).ok_or(ArgError {
        message,
        argument: value,
    })
}

/// Parses a whole number up to `max` as `str::parse` does for unsigned integers
/// (an optional `+`, then at least one ASCII digit), in one small function instead
/// of core's generic parser for each width.
pub fn decimal(text: &str, max: u32) -> Option<u32> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    let mut value: u32 = 0;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add((b - b'0') as u32)?;
    }
    (value <= max).then_some(value)
}

/// Parses a dotted-quad IPv4 address; nothing else (no leading `+`, no empty parts).
pub fn parse_ipv4(text: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut rest = text;
    for (i, byte) in out.iter_mut().enumerate() {
        let (part, tail) = match split_at_byte(rest, b'.', false) {
            Some(split) if i < 3 => split,
            None if i == 3 => (rest, ""),
            _ => return None,
        };
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *byte = decimal(part, 255)? as u8;
        rest = tail;
    }
    Some(out)
}

/// `text` split around its first (or, with `last`, its last) byte `b`, an ASCII
/// character: as `split_once`/`rsplit_once` with a char, without core's generic
/// char searcher.
fn split_at_byte(text: &str, b: u8, last: bool) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let i = if last {
        bytes.iter().rposition(|&c| c == b)?
    } else {
        bytes.iter().position(|&c| c == b)?
    };
    Some((text.get(..i)?, text.get(i + 1..)?))
}

/// Parses `ws://A.B.C.D[:PORT][/PATH]` (port 80 and path `/` by default).
pub fn parse_url(text: &str) -> Result<WsUrl<'_>, ArgError<'_>> {
    let bad = |message| ArgError {
        message,
        argument: text,
    };
    let rest = text
        .strip_prefix("ws://")
        .ok_or(bad("URL must start with ws:// (wss is not supported)"))?;
    // `split_at_checked`, not `split_at`: `i` is always a char boundary (b'/' is
    // ASCII), but `split_at`'s panic would link core's str slice-error formatter
    // (0.9 KiB of code and text, measured) for this one call.
    let (authority, path) = rest
        .as_bytes()
        .iter()
        .position(|&c| c == b'/')
        .and_then(|i| rest.split_at_checked(i))
        .unwrap_or((rest, "/"));
    let (host, port) = match split_at_byte(authority, b':', true) {
        Some((host, port)) => (
            host,
            decimal(port, 65535)
                .filter(|p| *p != 0)
                .map(|p| p as u16)
                .ok_or(bad("bad port in URL"))?,
        ),
        None => (authority, 80),
    };
    let ip = parse_ipv4(host).ok_or(bad(
        "URL host must be an IPv4 address (no DNS on the board)",
    ))?;
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("URL path holds spaces or control characters"));
    }
    Ok(WsUrl {
        authority,
        ip,
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::split;

    fn parse_line(line: &str) -> Result<Config<'static>, String> {
        let buf: &'static mut [u8] = Box::leak(line.as_bytes().to_vec().into_boxed_slice());
        let args = split(buf).map_err(|e| e.as_str().to_string())?;
        let args: &'static Args<'static> = Box::leak(Box::new(args));
        Config::parse(args).map_err(|e| format!("{}: {}", e.message, e.argument))
    }

    #[test]
    fn defaults_to_boot_check() {
        let c = parse_line("firmware").unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn full_client_line() {
        let c = parse_line(
            r#"fw --url ws://10.0.2.2:8000/ws --proto hixie76 --count 3 --message "a b" --retry 4 --timeout-ms 900 --ip 10.0.2.15/24 --gateway 10.0.2.2 --origin http://x --subprotocol chat"#,
        )
        .unwrap();
        assert_eq!(c.mode, Mode::ReverseEcho);
        let url = c.url.unwrap();
        assert_eq!(
            (url.ip, url.port, url.path, url.authority),
            ([10, 0, 2, 2], 8000, "/ws", "10.0.2.2:8000")
        );
        assert_eq!(c.protocol, Protocol::Hixie76);
        assert_eq!((c.count, c.retries, c.timeout_ms), (3, 4, 900));
        assert_eq!(c.message, Some("a b"));
        assert_eq!(
            c.static_ip,
            Some(StaticIp {
                address: [10, 0, 2, 15],
                prefix_len: 24,
                gateway: Some([10, 0, 2, 2])
            })
        );
        assert_eq!((c.origin, c.subprotocol), (Some("http://x"), Some("chat")));
        assert_eq!((c.reconnect, c.keepalive_ms), (false, 0));
        let c = parse_line("fw --url ws://10.0.2.2/ --reconnect --keepalive-ms 500").unwrap();
        assert_eq!((c.reconnect, c.keepalive_ms), (true, 500));
        assert_eq!(c.window, 1);
        let c = parse_line("fw --url ws://10.0.2.2/ --window 16").unwrap();
        assert_eq!(c.window, 16);
    }

    #[test]
    fn modes() {
        assert_eq!(
            parse_line("f --url ws://1.2.3.4 --echo").unwrap().mode,
            Mode::Echo
        );
        let c = parse_line("f --autobahn ws://127.0.0.1:9001").unwrap();
        assert_eq!((c.mode, c.url.unwrap().path), (Mode::Autobahn, "/"));
        let c = parse_line("f --ping 10.0.2.2").unwrap();
        assert_eq!((c.mode, c.ping), (Mode::Ping, Some([10, 0, 2, 2])));
        let c = parse_line("f --ping 10.0.2.2 --url ws://10.0.2.2:1/").unwrap();
        assert_eq!(c.mode, Mode::ReverseEcho);
        assert_eq!(
            parse_line("f --crash hardfault").unwrap().crash,
            Some(Crash::HardFault)
        );
    }

    #[test]
    fn errors_name_the_argument() {
        for (line, expected) in [
            ("f --bogus", "unknown option: --bogus"),
            ("f --bogus 1", "unknown option: --bogus"),
            ("f --count", "option needs a value: --count"),
            ("f --count -1", "--count takes a whole number: -1"),
            ("f --proto http", "--proto takes rfc6455 or hixie76: http"),
            (
                "f --url http://1.2.3.4/",
                "URL must start with ws:// (wss is not supported): http://1.2.3.4/",
            ),
            (
                "f --url ws://host:80/",
                "URL host must be an IPv4 address (no DNS on the board): ws://host:80/",
            ),
            (
                "f --url ws://1.2.3.4:0/",
                "bad port in URL: ws://1.2.3.4:0/",
            ),
            (
                "f --url ws://1.2.3.4:99999/",
                "bad port in URL: ws://1.2.3.4:99999/",
            ),
            ("f --ip 10.0.2.15", "--ip takes A.B.C.D/N: 10.0.2.15"),
            (
                "f --ip 10.0.2.15/33",
                "prefix length must be 1..32: 10.0.2.15/33",
            ),
            ("f --gateway 1.2.3.4", "--gateway needs --ip: --gateway"),
            ("f --echo", "--echo needs --url: --echo"),
            ("f --timeout-ms 0", "--timeout-ms must be at least 1: 0"),
            (
                "f --keepalive-ms x",
                "--keepalive-ms takes a whole number: x",
            ),
            ("f --ping 1.2.3", "--ping takes A.B.C.D: 1.2.3"),
            ("f --crash boom", "--crash takes panic or hardfault: boom"),
            (
                "f --reconnect",
                "--reconnect, --keepalive-ms and --window need --url without --echo: --reconnect",
            ),
            (
                "f --url ws://1.2.3.4 --echo --keepalive-ms 9",
                "--reconnect, --keepalive-ms and --window need --url without --echo: --keepalive-ms",
            ),
            (
                "f --autobahn ws://1.2.3.4 --window 2",
                "--reconnect, --keepalive-ms and --window need --url without --echo: --window",
            ),
            ("f --window 0", "--window takes a number from 1 to 16: 0"),
            ("f --window 17", "--window takes a number from 1 to 16: 17"),
        ] {
            assert_eq!(parse_line(line).unwrap_err(), expected, "{line}");
        }
    }

    #[test]
    fn decimal_parses_like_str_parse() {
        for text in [
            "0",
            "7",
            "+7",
            "255",
            "256",
            "65535",
            "65536",
            "4294967295",
            "4294967296",
            "",
            "+",
            "-1",
            "1a",
            " 1",
            "00012",
        ] {
            assert_eq!(decimal(text, u32::MAX), text.parse::<u32>().ok(), "{text}");
            assert_eq!(
                decimal(text, 255).map(|v| v as u8),
                text.parse::<u8>().ok(),
                "{text}"
            );
            assert_eq!(
                decimal(text, 65535).map(|v| v as u16),
                text.parse::<u16>().ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn ipv4_is_strict() {
        assert_eq!(parse_ipv4("10.0.2.2"), Some([10, 0, 2, 2]));
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "1..2.3",
            "+1.2.3.4",
            "1.2.3.0004",
        ] {
            assert_eq!(parse_ipv4(bad), None, "{bad}");
        }
    }
}
