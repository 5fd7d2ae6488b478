//! A watch on the machine's memory while a command runs (Linux). A problem too large for the
//! machine would otherwise end under the kernel's OOM killer, without a word and without its
//! results. When this process holds most of the memory and little is left, the guard first
//! asks the run to stop as Ctrl-C does (IPOPT and the trainers stop at their next iteration
//! and write their results); if memory keeps running out (e.g. while the NLP is being built,
//! which cannot stop halfway), it ends the process with a message and exit code 1.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Memory figures in bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryState {
    /// Memory the process may use in all: the machine's, or its control group's limit.
    pub total: u64,
    /// Memory still available to it.
    pub available: u64,
    /// This process's resident set.
    pub own: u64,
}

/// What the guard does about a [`MemoryState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing.
    Fine,
    /// Ask the run to stop and write its results.
    Stop,
    /// End the process with a message.
    Abort,
}

const MIB: u64 = 1 << 20;

/// The guard's rule: act only when this process holds more than half of the memory (otherwise
/// another process is the one to blame), stop below 3 % available (at least 256 MiB), abort
/// below 1.5 % (at least 128 MiB) — margins that a build growing by a few hundred MB a second
/// does not jump over between two looks.
pub fn assess(m: &MemoryState) -> Verdict {
    if m.own <= m.total / 2 {
        Verdict::Fine
    } else if m.available < (m.total * 3 / 200).max(128 * MIB) {
        Verdict::Abort
    } else if m.available < (m.total * 3 / 100).max(256 * MIB) {
        Verdict::Stop
    } else {
        Verdict::Fine
    }
}

/// A `key:  N kB` line of a /proc file, in bytes.
fn kilobytes(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let value = line[key.len()..].trim().trim_end_matches("kB").trim();
    value.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// The current figures, or `None` where /proc is not there to read.
pub fn read() -> Option<MemoryState> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let mut total = kilobytes(&meminfo, "MemTotal:")?;
    let mut available = kilobytes(&meminfo, "MemAvailable:")?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let own = kilobytes(&status, "VmRSS:")?;
    // A cgroup v2 limit ("max" when there is none) counts as the machine's size.
    let cgroup = |name: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{name}"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
    };
    if let (Some(limit), Some(used)) = (cgroup("memory.max"), cgroup("memory.current")) {
        total = total.min(limit);
        available = available.min(limit.saturating_sub(used));
    }
    Some(MemoryState {
        total,
        available,
        own,
    })
}

fn gigabytes(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// Starts the watch (a thread looking ten times a second); `stop` is the flag Ctrl-C sets.
/// Does nothing where the figures cannot be read.
pub fn watch(stop: Arc<AtomicBool>) {
    if read().is_none() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("memory-guard".into())
        .spawn(move || {
            let mut asked = false;
            loop {
                std::thread::sleep(Duration::from_millis(100));
                let Some(m) = read() else { return };
                match assess(&m) {
                    Verdict::Fine => {}
                    Verdict::Stop if !asked => {
                        asked = true;
                        eprintln!(
                            "\nwarning: memory nearly exhausted: this run holds {} of {} and {} \
                             are left; stopping it (as Ctrl-C would) to write its results",
                            gigabytes(m.own),
                            gigabytes(m.total),
                            gigabytes(m.available)
                        );
                        stop.store(true, Ordering::SeqCst);
                    }
                    Verdict::Stop => {}
                    Verdict::Abort => {
                        eprintln!(
                            "\nerror: out of memory: this run holds {} of {} and {} are left; \
                             the problem is too large for this machine (fewer collocation \
                             points or elements, or a smaller network)",
                            gigabytes(m.own),
                            gigabytes(m.total),
                            gigabytes(m.available)
                        );
                        std::process::exit(1);
                    }
                }
            }
        });
    // Without the thread the run goes on unguarded, as before.
    drop(spawned);
}

#[cfg(test)]
mod tests {
    use super::*;

    const GB: u64 = 1 << 30;

    fn state(total: u64, available: u64, own: u64) -> MemoryState {
        MemoryState {
            total,
            available,
            own,
        }
    }

    #[test]
    fn acts_only_when_this_process_holds_most_of_the_memory() {
        // Plenty left.
        assert_eq!(assess(&state(24 * GB, 10 * GB, 13 * GB)), Verdict::Fine);
        // Little left, but another process holds it.
        assert_eq!(assess(&state(24 * GB, GB / 10, 2 * GB)), Verdict::Fine);
        // Little left and it is ours: 3 % of 24 GiB is 737 MiB, 1.5 % 369 MiB.
        assert_eq!(assess(&state(24 * GB, 800 * MIB, 23 * GB)), Verdict::Fine);
        assert_eq!(assess(&state(24 * GB, 700 * MIB, 23 * GB)), Verdict::Stop);
        assert_eq!(assess(&state(24 * GB, 300 * MIB, 23 * GB)), Verdict::Abort);
        // Small machines keep the absolute margins (256 and 128 MiB).
        assert_eq!(assess(&state(GB, 200 * MIB, 700 * MIB)), Verdict::Stop);
        assert_eq!(assess(&state(GB, 100 * MIB, 900 * MIB)), Verdict::Abort);
    }

    #[test]
    fn reads_proc_lines() {
        let text = "MemTotal:       24567890 kB\nMemFree:  1 kB\nMemAvailable:   1000 kB\n";
        assert_eq!(kilobytes(text, "MemTotal:"), Some(24567890 * 1024));
        assert_eq!(kilobytes(text, "MemAvailable:"), Some(1024 * 1000));
        assert_eq!(kilobytes(text, "VmRSS:"), None);
        if cfg!(target_os = "linux") {
            let m = read().expect("/proc is readable on Linux");
            assert!(m.own > 0 && m.available <= m.total, "{m:?}");
        }
    }
}
