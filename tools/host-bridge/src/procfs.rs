//! What the supervisor needs from `/proc`: a process's state, parent,
//! group and start time (`/proc/<pid>/stat`), the descendants of a
//! process, and (for tests and diagnostics) the processes whose
//! environment holds a given variable.

use std::collections::{BTreeMap, BTreeSet};

/// The fields of `/proc/<pid>/stat` the bridge uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    /// `R`, `S`, `D`, `Z` (zombie: exited, not yet reaped), ...
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    /// Field 22: start time in clock ticks since boot. With the pid it
    /// identifies a process across pid reuse.
    pub start_time: u64,
}

impl ProcStat {
    /// Exited (zombie or dead), only waiting to be reaped.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so the fields
/// are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state), so field N is rest[N - 3].
    Some(ProcStat {
        pid,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        pgrp: rest.get(2)?.parse().ok()?,
        session: rest.get(3)?.parse().ok()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

/// `/proc/<pid>/stat`, or `None` if there is no such process.
pub fn stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Every process in `/proc` (thread group leaders; threads are not listed).
pub fn all() -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// All descendants of `root` (children, their children, ...), found by
/// following parent pids through one snapshot of `/proc`. Zombies are
/// included (they still need reaping); `root` itself is not.
pub fn descendants(root: i32) -> Vec<ProcStat> {
    let procs = all();
    let mut children: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    for (i, p) in procs.iter().enumerate() {
        children.entry(p.ppid).or_default().push(i);
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        for &i in children.get(&pid).map(Vec::as_slice).unwrap_or(&[]) {
            let p = procs[i];
            if seen.insert(p.pid) {
                out.push(p);
                todo.push(p.pid);
            }
        }
    }
    out
}

/// True if `pid` is a live (not zombie) process that started at
/// `start_time`: the same process that was recorded, not a reused pid.
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_time == start_time && !s.is_dead())
}

/// Pids of the live processes whose environment contains every one of
/// the `NAME=VALUE` pairs (needs permission to read `/proc/<pid>/environ`:
/// the same user, or root).
pub fn with_env(pairs: &[(&str, &str)]) -> Vec<i32> {
    let needles: Vec<Vec<u8>> = pairs.iter().map(|(n, v)| format!("{n}={v}").into_bytes()).collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            stat(pid).is_some_and(|s| !s.is_dead())
                && std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                    needles
                        .iter()
                        .all(|needle| env.split(|&b| b == 0).any(|entry| entry == needle.as_slice()))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_odd_command_names() {
        let line = "4242 (my (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let s = parse_stat(line).unwrap();
        assert_eq!(
            s,
            ProcStat {
                pid: 4242,
                state: 'S',
                ppid: 1,
                pgrp: 4242,
                session: 4242,
                start_time: 987654
            }
        );
    }

    #[test]
    fn reads_this_process() {
        let me = stat(std::process::id() as i32).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(is_alive(me.pid, me.start_time));
        assert!(!is_alive(me.pid, me.start_time + 1));
    }
}
