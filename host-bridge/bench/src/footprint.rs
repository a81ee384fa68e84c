//! Flash and static RAM of the firmware's release image, by part, from the ELF's
//! section sizes (`llvm-size -A`) and its symbols (`llvm-nm --size-sort -S`),
//! attributed to parts by their mangled crate/module path.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The parts, in the report's and the CSV's order.
pub const PARTS: [&str; 6] = ["driver", "smoltcp", "websocket", "app", "rt+core", "other"];

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Footprint {
    pub date_utc: String,
    pub commit: String,
    /// The firmware's sources had uncommitted changes when measured.
    pub dirty: bool,
    pub image: String,
    /// Flash: vector table, text, rodata and the initial values of .data.
    pub flash_total: u64,
    /// Static RAM: .data, .bss and .uninit (the stack takes the rest).
    pub ram_total: u64,
    /// Bytes per part, [`PARTS`] order; "other" takes what no symbol accounts for.
    pub flash: [u64; 6],
    pub ram: [u64; 6],
    /// .text only, by the source file of each 2-byte unit's line-table row (DWARF):
    /// code inlined into another part's function counts where it was written.
    #[serde(default)]
    pub text_by_source: Option<[u64; 6]>,
    /// The largest symbols: (part, flash or ram, bytes, demangled name).
    pub top: Vec<(String, String, u64, String)>,
}

pub const FLASH_BUDGET: u64 = 64 * 1024;
pub const RAM_BUDGET: u64 = 32 * 1024;

fn tool(names: &[&str]) -> Result<String> {
    for n in names {
        if Command::new(n)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Ok(n.to_string());
        }
    }
    bail!("none of {names:?} found (apt-get install llvm)")
}

/// Whether `name` mentions `path` (e.g. `smoltcp::`) as the start of a path.
fn mentions(name: &str, path: &str) -> bool {
    name.match_indices(path).any(|(i, _)| {
        i == 0
            || matches!(
                name.as_bytes()[i - 1],
                b'<' | b' ' | b'(' | b'&' | b'*' | b'[' | b','
            )
    })
}

/// The path a symbol's code belongs to: the self type of `<T as Trait>::f` or
/// `<T>::f`, else the function's own path, without generic arguments.
fn owner(name: &str) -> &str {
    let head = match name.strip_prefix('<') {
        Some(inner) => {
            let end = inner
                .find(" as ")
                .or_else(|| inner.find('>'))
                .unwrap_or(inner.len());
            &inner[..end]
        }
        None => &name[..name.find('<').unwrap_or(name.len())],
    };
    head.trim_start_matches(['&', '*', '[', '('])
        .trim_start_matches("mut ")
        .trim_start_matches("const ")
        .trim_start_matches("dyn ")
}

/// Crates that are there only for one part: the handshakes' digests for websocket,
/// smoltcp's own helpers for smoltcp.
const WEBSOCKET_DEPS: [&str; 6] = [
    "sha1::",
    "md5::",
    "digest::",
    "block_buffer::",
    "crypto_common::",
    "hybrid_array::",
];
const SMOLTCP_DEPS: [&str; 1] = ["managed::"];

/// The part named by a path's start, if it is one of ours.
fn our_part(path: &str) -> Option<usize> {
    if path.starts_with("firmware::ethernet") {
        Some(0)
    } else if path.starts_with("smoltcp::") || SMOLTCP_DEPS.iter().any(|d| path.starts_with(d)) {
        Some(1)
    } else if path.starts_with("websocket::") || WEBSOCKET_DEPS.iter().any(|d| path.starts_with(d))
    {
        Some(2)
    } else if path.starts_with("firmware::") || path.starts_with("reverse_echo::") || path == "main"
    {
        // The app's behaviour lives in its own crate (`firmware/reverse-echo`).
        Some(3)
    } else {
        None
    }
}

/// Which part ([`PARTS`] index) a demangled symbol belongs to: the crate of the code's
/// owner (`<smoltcp::X>::f::<firmware::ethernet::T>` is smoltcp's). Generic code of
/// core/alloc instantiated for one of our parts' types
/// (`core::ptr::drop_in_place<smoltcp::...>`) counts as the first part it names.
pub fn part_of(name: &str) -> usize {
    let own = owner(name);
    if let Some(p) = our_part(own) {
        return p;
    }
    let generic_std =
        own.starts_with("core::") || own.starts_with("alloc::") || !own.contains("::");
    if generic_std && name.contains("::") {
        for p in [0, 1, 2, 3] {
            let path = [
                "firmware::ethernet",
                "smoltcp::",
                "websocket::",
                "firmware::",
            ][p];
            if mentions(name, path) {
                return p;
            }
        }
    }
    if name.contains("::") {
        4
    } else if name == "main" {
        3
    } else {
        5
    }
}

/// Runs `tool ARGS IMAGE`; fails with its stderr (after `tool SHOWN IMAGE`)
/// unless it succeeds.
fn run_on(tool: &str, args: &[&str], image: &Path, shown: &str) -> Result<std::process::Output> {
    let out = Command::new(tool).args(args).arg(image).output()?;
    if !out.status.success() {
        bail!(
            "{tool} {shown}{}: {}",
            image.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

pub fn measure(image: &Path) -> Result<Footprint> {
    let size_tool = tool(&["llvm-size", "llvm-size-22"])?;
    let nm_tool = tool(&["llvm-nm", "llvm-nm-22"])?;
    let out = run_on(&size_tool, &["-A", "-d"], image, "-A ")?;
    let mut text = None;
    let mut fp = Footprint {
        image: image.display().to_string(),
        ..Default::default()
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, size, addr] = f[..] else { continue };
        let (Ok(size), Ok(addr)) = (size.parse::<u64>(), addr.parse::<u64>()) else {
            continue;
        };
        if !name.starts_with('.') || name.starts_with(".debug") || size == 0 {
            continue;
        }
        if matches!(
            name,
            ".comment" | ".ARM.attributes" | ".symtab" | ".strtab" | ".shstrtab"
        ) {
            continue;
        }
        if name == ".text" {
            text = Some((addr, size));
        }
        if addr >= 0x2000_0000 {
            fp.ram_total += size;
            if name == ".data" {
                fp.flash_total += size; // its initial values are copied from flash
            }
        } else {
            fp.flash_total += size;
        }
    }

    let out = run_on(&nm_tool, &["--size-sort", "-S", "--demangle"], image, "")?;
    let mut syms = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // ADDRESS SIZE TYPE NAME (the name may hold spaces)
        let mut it = line.splitn(4, ' ');
        let (Some(_addr), Some(size), Some(kind), Some(name)) =
            (it.next(), it.next(), it.next(), it.next())
        else {
            continue;
        };
        let Ok(size) = u64::from_str_radix(size, 16) else {
            continue;
        };
        // Drop the legacy mangling's hash suffix.
        let name = match name.rsplit_once("::h") {
            Some((head, hash))
                if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                head
            }
            _ => name,
        };
        let part = part_of(name);
        match kind.to_ascii_lowercase().as_str() {
            "t" | "r" => {
                fp.flash[part] += size;
                syms.push((part, "flash", size, name.to_string()));
            }
            "d" => {
                fp.flash[part] += size;
                fp.ram[part] += size;
                syms.push((part, "ram+flash", size, name.to_string()));
            }
            "b" => {
                fp.ram[part] += size;
                syms.push((part, "ram", size, name.to_string()));
            }
            _ => {}
        }
    }
    // What the symbols do not account for (padding, unsized data) is "other".
    let attributed: u64 = fp.flash.iter().sum();
    fp.flash[5] += fp.flash_total.saturating_sub(attributed);
    let attributed: u64 = fp.ram.iter().sum();
    fp.ram[5] += fp.ram_total.saturating_sub(attributed);
    fp.text_by_source = text.and_then(|(addr, size)| text_by_source(image, addr, size).ok());
    syms.sort_by_key(|s| std::cmp::Reverse(s.2));
    fp.top = syms
        .into_iter()
        .take(15)
        .map(|(p, k, s, n)| (PARTS[p].to_string(), k.to_string(), s, n))
        .collect();
    Ok(fp)
}

/// Which part a source file belongs to.
fn part_of_source(file: &str) -> usize {
    if file.contains("/firmware/src/ethernet/") {
        0
    } else if file.contains("/smoltcp-") || file.contains("/managed-") {
        1
    } else if file.contains("/firmware/websocket/")
        || [
            "/sha1-",
            "/md-5-",
            "/digest-",
            "/block-buffer-",
            "/crypto-common-",
            "/hybrid-array-",
        ]
        .iter()
        .any(|d| file.contains(d))
    {
        2
    } else if file.contains("/firmware/src/") {
        3
    } else if file.starts_with("??") || file.is_empty() {
        5
    } else {
        4
    }
}

/// Bytes of .text by part: for every halfword (Thumb's unit), the inline chain from
/// `llvm-symbolizer --inlining` (DWARF), innermost first; the first frame written in
/// one of our parts (driver, smoltcp, websocket, app) owns it, so `read_volatile`
/// inlined into the driver is the driver's, and core code no part inlined is rt+core.
fn text_by_source(image: &Path, addr: u64, size: u64) -> Result<[u64; 6]> {
    use std::io::Write;
    let tool = tool(&["llvm-symbolizer", "llvm-symbolizer-22"])?;
    let mut child = Command::new(&tool)
        .args(["--output-style=JSON", "--inlining", "-e"])
        .arg(image)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().context("llvm-symbolizer stdin")?;
    let feeder = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = String::new();
        for a in (addr..addr + size).step_by(2) {
            buf.push_str(&format!("{a:#x}\n"));
        }
        stdin.write_all(buf.as_bytes())
    });
    let out = child.wait_with_output()?;
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("feeder panicked"))??;
    let mut parts = [0u64; 6];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        let files: Vec<&str> = v["Symbol"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["FileName"].as_str()).collect())
            .unwrap_or_default();
        let part = files
            .iter()
            .map(|f| part_of_source(f))
            .find(|&p| p < 4)
            .unwrap_or(if files.iter().all(|f| f.is_empty()) {
                5
            } else {
                4
            });
        parts[part] += 2;
    }
    Ok(parts)
}

fn git(root: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The firmware image's path (`ci/cargo-firmware path`), built first if `build`.
pub fn firmware_image(root: &Path, build: bool) -> Result<PathBuf> {
    let fw = root.join("ci/cargo-firmware");
    if build {
        let st = Command::new(&fw).arg("build").current_dir(root).status()?;
        if !st.success() {
            bail!("ci/cargo-firmware build failed ({st})");
        }
    }
    let out = Command::new(&fw).arg("path").current_dir(root).output()?;
    let image = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !image.is_file() {
        bail!("no firmware image (ci/cargo-firmware path gave {image:?})");
    }
    Ok(image)
}

/// Builds the image with `ci/cargo-firmware build` and measures it.
pub fn build_and_measure(root: &Path, build: bool) -> Result<Footprint> {
    let image = firmware_image(root, build)?;
    let mut fp = measure(&image)?;
    fp.date_utc = crate::utc_now();
    fp.commit =
        git(root, &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|_| "unknown".into());
    fp.dirty = !git(root, &["status", "--porcelain", "--", "firmware"])
        .unwrap_or_default()
        .is_empty();
    Ok(fp)
}

const CSV_HEADER: &str = "date_utc,commit,dirty,flash_total,ram_total,\
flash_driver,flash_smoltcp,flash_websocket,flash_app,flash_rt_core,flash_other,\
ram_driver,ram_smoltcp,ram_websocket,ram_app,ram_rt_core,ram_other";

/// Adds this measurement to the history: one row per commit (a new measurement of
/// the same commit and dirtiness replaces the old row).
pub fn update_csv(csv: &Path, fp: &Footprint) -> Result<()> {
    let old = std::fs::read_to_string(csv).unwrap_or_default();
    let key = format!(",{},{},", fp.commit, fp.dirty);
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for line in old.lines().skip(1) {
        if !line.is_empty() && !line.contains(&key) {
            out.push_str(line);
            out.push('\n');
        }
    }
    let nums: Vec<String> = [fp.flash_total, fp.ram_total]
        .iter()
        .chain(fp.flash.iter())
        .chain(fp.ram.iter())
        .map(|n| n.to_string())
        .collect();
    out.push_str(&format!(
        "{},{},{},{}\n",
        fp.date_utc,
        fp.commit,
        fp.dirty,
        nums.join(",")
    ));
    std::fs::write(csv, out).with_context(|| format!("write {}", csv.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_by_path() {
        assert_eq!(part_of("firmware::ethernet::Mac::transmit"), 0);
        assert_eq!(
            part_of("<smoltcp::iface::interface::InterfaceInner>::dispatch_ip::<firmware::ethernet::TxToken>"),
            1
        );
        assert_eq!(
            part_of("<firmware::ethernet::TxToken as smoltcp::phy::TxToken>::consume"),
            0
        );
        assert_eq!(part_of("<char>::escape_debug_ext"), 4);
        assert_eq!(
            part_of("core::ptr::drop_in_place<smoltcp::iface::Interface>"),
            1
        );
        assert_eq!(
            part_of("<smoltcp::wire::ipv4::Address as core::fmt::Display>::fmt"),
            1
        );
        assert_eq!(part_of("websocket::rfc6455::Receiver::push"), 2);
        assert_eq!(part_of("firmware::app::run"), 3);
        assert_eq!(part_of("<reverse_echo::ReplyChecker>::next_unit"), 3);
        assert_eq!(part_of("firmware::__cortex_m_rt_main"), 3);
        assert_eq!(part_of("cortex_m_semihosting::hio::hstdout"), 4);
        assert_eq!(part_of("memcpy"), 5);
        assert_eq!(part_of("sha1::block_api::compress"), 2);
        // a module that merely ends in a crate's name is not that crate
        assert_eq!(part_of("firmware::app::my_websocket::x"), 3);
    }
}
