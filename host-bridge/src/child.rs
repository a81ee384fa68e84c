//! Child processes that do not outlive us.
//!
//! A parent killed with SIGKILL runs no destructor, so `kill_on_drop` and friends
//! cannot stop its children. Linux can: `PR_SET_PDEATHSIG` asks the kernel to send
//! the child a signal when its parent dies. The setting survives `exec` (of a
//! program that is not set-uid), so it holds for QEMU behind `ci/qemu-run`'s
//! `exec timeout` and for dnsmasq behind `ip netns exec`.
//!
//! "Parent" is the *thread* that forked: the caller must spawn from a thread that
//! lives as long as the child should (the main thread, or a runtime worker; not a
//! short-lived blocking-pool thread).

use std::os::unix::process::CommandExt;

/// Has `cmd`'s process receive `signal` when this process (the spawning thread)
/// dies, however it dies.
pub fn end_with_parent(cmd: &mut std::process::Command, signal: nix::sys::signal::Signal) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: prctl, getppid and kill are.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl: then nobody will signal.
            if libc::getppid() != parent as libc::pid_t {
                libc::kill(libc::getpid(), signal as libc::c_int);
            }
            Ok(())
        });
    }
}
