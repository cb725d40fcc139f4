//! Telling a run that is still going from one whose process died: a run's row records the
//! orchestrator process that executes it, and that process can be looked for later.
//!
//! Only a process on the same host can be looked for (on Linux, through `/proc`). It is known to
//! be gone when the host rebooted since, or when no process has its pid in its pid namespace.
//! Anything else (another host, another OS, a row written before processes were recorded) is
//! unknown, and a caller must treat the run as possibly live.

use serde::{Deserialize, Serialize};

/// The orchestrator process of a run, as its run row records it (JSON in `runs.process`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProcess {
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// The kernel's boot id (Linux), which changes at every boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// The process's pid namespace (Linux), so that a pid is only looked for where it means
    /// the same process (containers sharing a host name have namespaces of their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<String>,
    /// When the process started, in clock ticks after boot (Linux), so that another process
    /// given the same pid later is not taken for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
}

/// Whether a run's process still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// The process runs (or its pid was taken by another process since).
    Alive,
    /// The process is gone: the run will not finish by itself.
    Gone,
    /// It cannot be told from here.
    Unknown,
}

impl RunProcess {
    /// This process.
    pub fn current() -> RunProcess {
        RunProcess {
            host: host_name(),
            pid: std::process::id(),
            boot: read_trimmed("/proc/sys/kernel/random/boot_id"),
            pid_namespace: pid_namespace("self"),
            started: start_time("self"),
        }
    }

    /// The JSON recorded in a run row.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The process a run row's JSON records, if it is readable.
    pub fn from_json(json: &str) -> Option<RunProcess> {
        serde_json::from_str(json).ok()
    }

    /// Whether this process still runs, as far as this process can tell.
    pub fn liveness(&self) -> Liveness {
        let here = RunProcess::current();
        if self.host != here.host {
            return Liveness::Unknown;
        }
        if let (Some(then), Some(now)) = (&self.boot, &here.boot)
            && then != now
        {
            return Liveness::Gone;
        }
        // Only a pid of our own namespace can be looked up (and /proc must be there to look).
        match (&self.pid_namespace, &here.pid_namespace) {
            (Some(then), Some(now)) if then == now => {}
            _ => return Liveness::Unknown,
        }
        if !exists(self.pid) {
            return Liveness::Gone;
        }
        // The pid is taken; by the same process unless it started at another time.
        match (self.started, start_time(&self.pid.to_string())) {
            (Some(then), Some(now)) if then != now => Liveness::Gone,
            _ => Liveness::Alive,
        }
    }
}

impl std::fmt::Display for RunProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {}", self.pid, self.host)
    }
}

/// Whether a process `pid` exists. `kill(pid, 0)` sends nothing and tells it for another user's
/// process too (refused, `EPERM`), which `/proc` hides when mounted with `hidepid` (a live run
/// would show as died, and be resumed beside itself).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exists(pid: u32) -> bool {
    // 0 and negative pids name process groups: no run's.
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled; none is sent.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Whether a process `pid` exists, as `/proc` tells it.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The host name: the kernel's on Linux, else the environment's.
fn host_name() -> String {
    read_trimmed("/proc/sys/kernel/hostname")
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default()
}

/// The pid namespace of process `pid` (`self` for this one), where `/proc` tells it.
fn pid_namespace(pid: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .map(|link| link.to_string_lossy().into_owned())
}

/// When process `pid` (`self` for this one) started, in clock ticks after boot: field 22 of
/// `/proc/<pid>/stat`, counted after the command name (which may hold spaces and parentheses).
fn start_time(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields 3.. follow the name: the start time is the 20th of them.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_round_trips() {
        let here = RunProcess::current();
        assert_eq!(RunProcess::from_json(&here.to_json()), Some(here.clone()));
        assert_eq!(here.liveness(), Liveness::Alive);
    }

    #[test]
    fn another_host_is_unknown() {
        let elsewhere = RunProcess {
            host: format!("{}-elsewhere", RunProcess::current().host),
            ..RunProcess::current()
        };
        assert_eq!(elsewhere.liveness(), Liveness::Unknown);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_reboot_or_a_missing_pid_is_gone_and_a_live_pid_alive() {
        let here = RunProcess::current();
        let before_reboot = RunProcess {
            boot: Some("an-earlier-boot".to_owned()),
            ..here.clone()
        };
        assert_eq!(before_reboot.liveness(), Liveness::Gone);
        // Past the kernel's largest pid (pid_max is at most 2^22).
        let finished = RunProcess {
            pid: 1 << 23,
            ..here.clone()
        };
        assert_eq!(finished.liveness(), Liveness::Gone);
        let parent_pid = std::os::unix::process::parent_id();
        let parent = RunProcess {
            pid: parent_pid,
            started: start_time(&parent_pid.to_string()),
            ..here.clone()
        };
        assert!(parent.started.is_some());
        assert_eq!(parent.liveness(), Liveness::Alive);
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        child.wait().expect("reap true");
        let ended = RunProcess {
            pid: child.id(),
            ..here.clone()
        };
        assert_eq!(ended.liveness(), Liveness::Gone);
        // Our own pid, recorded with another start time: a process that had the pid before.
        let reused = RunProcess {
            started: here.started.map(|started| started + 1),
            ..here.clone()
        };
        assert_eq!(reused.liveness(), Liveness::Gone);
        // Our own pid in another namespace is not us.
        let same_pid_elsewhere = RunProcess {
            pid_namespace: Some("pid:[1]".to_owned()),
            ..here.clone()
        };
        assert_eq!(same_pid_elsewhere.liveness(), Liveness::Unknown);
        let other_namespace = RunProcess {
            pid_namespace: Some("pid:[1]".to_owned()),
            ..finished
        };
        assert_eq!(other_namespace.liveness(), Liveness::Unknown);
    }

    #[test]
    fn pids_that_name_no_process_do_not_exist() {
        assert!(super::exists(std::process::id()));
        // A process group (0, and u32::MAX as a negative pid), not a process.
        assert!(!super::exists(0));
        assert!(!super::exists(u32::MAX));
    }
}
