//! What the benchmark reads about a server process from /proc.

use anyhow::{bail, Context, Result};

/// The process's CPU time so far (user + system, all threads), in seconds, from
/// `/proc/PID/stat` (utime + stime, in clock ticks).
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    if fields.len() < 13 {
        bail!("short /proc/{pid}/stat");
    }
    let utime: u64 = fields[11].parse()?;
    let stime: u64 = fields[12].parse()?;
    Ok((utime + stime) as f64 / clock_ticks_per_second())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// The process's peak resident set size in KiB (`VmHWM` of `/proc/PID/status`).
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    for line in status.lines() {
        if let Some(v) = line.strip_prefix("VmHWM:") {
            return Ok(v.trim().trim_end_matches("kB").trim().parse()?);
        }
    }
    bail!("no VmHWM in /proc/{pid}/status")
}

/// CPU time (user + system) of the calling thread, in seconds.
pub fn thread_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Nanoseconds all threads of the process have spent on a CPU, and runnable but
/// waiting for one (woken, not yet running), from `/proc/PID/task/*/schedstat`:
/// nanosecond resolution, where `stat`'s 10 ms ticks are too coarse for a relay
/// that spends microseconds per frame.
pub fn sched_ns(pid: u32) -> Result<(u64, u64)> {
    let mut on_cpu = 0;
    let mut waiting = 0;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("read /proc/{pid}/task"))?;
    for task in tasks.flatten() {
        // A thread that ended between the listing and the read is simply skipped.
        let Ok(line) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let mut fields = line.split_whitespace().map(str::parse::<u64>);
        if let (Some(Ok(run)), Some(Ok(wait))) = (fields.next(), fields.next()) {
            on_cpu += run;
            waiting += wait;
        }
    }
    Ok((on_cpu, waiting))
}
