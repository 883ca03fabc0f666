//! Allocation-free parsers for the cgroup and `/proc` files the agent reads.
//!
//! Every parser takes the file's raw bytes, never panics on any input, and
//! reports the 1-based line and the field it could not read. Keys the agent
//! does not use are skipped without looking at their values, so a kernel
//! that adds or reorders keys keeps working.

use gpuscope_model::{CgroupVersion, CpuStats, MemoryEvents, MemoryStats, Psi, PsiLine};

/// Values at or above this are "no limit" (2^62): v2 prints `max`, v1
/// prints `PAGE_COUNTER_MAX * PAGE_SIZE` (9223372036854771712 with 4 KiB
/// pages), and no real limit is anywhere near it.
pub const UNLIMITED_THRESHOLD: u64 = 1 << 62;

/// Why a kernel file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A field's value is not the number the kernel writes there.
    #[error("line {line}: field `{field}`: invalid number")]
    Number {
        /// 1-based line number.
        line: usize,
        /// The key whose value is malformed.
        field: &'static str,
    },
    /// A line does not have the `key value` / `key=value` shape.
    #[error("line {line}: malformed line")]
    Syntax {
        /// 1-based line number.
        line: usize,
    },
    /// A key the format requires is absent.
    #[error("missing field `{field}`")]
    Missing {
        /// The absent key.
        field: &'static str,
    },
    /// The file is empty (or only whitespace) where a value was expected.
    #[error("empty file")]
    Empty,
}

/// Parses an unsigned decimal number (surrounding ASCII whitespace
/// allowed). `None` when it is not one or overflows `u64`.
pub fn parse_u64(bytes: &[u8]) -> Option<u64> {
    let bytes = bytes.trim_ascii();
    if bytes.is_empty() || bytes.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

fn parse_f32(bytes: &[u8]) -> Option<f32> {
    let s = std::str::from_utf8(bytes).ok()?;
    let v: f32 = s.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Lines of a file with their 1-based numbers, blank lines skipped.
fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_ascii()))
        .filter(|(_, l)| !l.is_empty())
}

/// Splits a `key value` line at its first run of whitespace.
fn key_value(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = line.iter().position(|b| b.is_ascii_whitespace())?;
    let (k, v) = line.split_at(at);
    Some((k, v.trim_ascii()))
}

/// Iterates `key value` lines and hands each key and value to `f`, which
/// looks only at the keys it knows.
fn for_each_kv<'a>(
    text: &'a [u8],
    mut f: impl FnMut(usize, &'a [u8], &'a [u8]) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    for (n, line) in lines(text) {
        // A key without a value is malformed only if it is a key we use; the
        // callback decides, so hand it an empty value.
        let (k, v) = key_value(line).unwrap_or((line, &[]));
        f(n, k, v)?;
    }
    Ok(())
}

fn num(line: usize, field: &'static str, v: &[u8]) -> Result<u64, ParseError> {
    parse_u64(v).ok_or(ParseError::Number { line, field })
}

/// Parses a single value that may be `max` (v2) or v1's unlimited
/// 9223372036854771712: both, and anything ≥ 2^62, give `None`.
pub fn parse_u64_or_max(text: &[u8]) -> Result<Option<u64>, ParseError> {
    let t = text.trim_ascii();
    if t.is_empty() {
        return Err(ParseError::Empty);
    }
    if t == b"max" {
        return Ok(None);
    }
    let n = num(1, "value", t)?;
    Ok((n < UNLIMITED_THRESHOLD).then_some(n))
}

/// Parses a single unsigned number (`memory.current`, `memory.failcnt`,
/// `cpuacct.usage`, ...).
pub fn parse_single_u64(text: &[u8]) -> Result<u64, ParseError> {
    let t = text.trim_ascii();
    if t.is_empty() {
        return Err(ParseError::Empty);
    }
    num(1, "value", t)
}

/// Parses v2 `memory.events` (`low high max oom oom_kill oom_group_kill`).
///
/// Sets `oom`, `oom_kill`, `oom_group_kill`, `max` and `high`; leaves the
/// v1-only fields alone. Unknown keys are ignored; keys an older kernel
/// lacks (`oom_group_kill` before 5.14) become `None`. `oom_kill` is
/// required (it exists since 4.13).
pub fn parse_memory_events(text: &[u8], out: &mut MemoryEvents) -> Result<(), ParseError> {
    out.oom = None;
    out.oom_group_kill = None;
    out.max = None;
    out.high = None;
    let mut oom_kill = None;
    for_each_kv(text, |n, k, v| {
        match k {
            b"oom" => out.oom = Some(num(n, "oom", v)?),
            b"oom_kill" => oom_kill = Some(num(n, "oom_kill", v)?),
            b"oom_group_kill" => out.oom_group_kill = Some(num(n, "oom_group_kill", v)?),
            b"max" => out.max = Some(num(n, "max", v)?),
            b"high" => out.high = Some(num(n, "high", v)?),
            _ => {}
        }
        Ok(())
    })?;
    out.oom_kill = oom_kill.ok_or(ParseError::Missing { field: "oom_kill" })?;
    Ok(())
}

/// Parses v1 `memory.oom_control` (`oom_kill_disable`, `under_oom`,
/// `oom_kill`).
///
/// Sets `under_oom` and `oom_kill`; leaves the other fields alone. Kernels
/// before 4.13 do not print `oom_kill`: it is then reported as 0, so on
/// those kernels kills can only be seen in the kernel log (`under_oom` and
/// `memory.failcnt` still move).
pub fn parse_oom_control(text: &[u8], out: &mut MemoryEvents) -> Result<(), ParseError> {
    let mut under_oom = None;
    let mut oom_kill = 0;
    let mut seen_disable = false;
    for_each_kv(text, |n, k, v| {
        match k {
            b"oom_kill_disable" => {
                num(n, "oom_kill_disable", v)?;
                seen_disable = true;
            }
            b"under_oom" => under_oom = Some(num(n, "under_oom", v)? != 0),
            b"oom_kill" => oom_kill = num(n, "oom_kill", v)?,
            _ => {}
        }
        Ok(())
    })?;
    if !seen_disable {
        return Err(ParseError::Missing {
            field: "oom_kill_disable",
        });
    }
    out.under_oom = Some(under_oom.ok_or(ParseError::Missing { field: "under_oom" })?);
    out.oom_kill = oom_kill;
    Ok(())
}

/// Parses `memory.stat` into `anon_bytes`, `file_bytes` and `shmem_bytes`
/// (the other fields of `out` are left alone).
///
/// v2: `anon`, `file`, `shmem`. v1: the hierarchical `total_rss`,
/// `total_cache`, `total_shmem` (which include child cgroups), falling back
/// to the local `rss`, `cache`, `shmem` when a total is absent. A key that
/// is absent altogether leaves its field 0.
///
/// Also the reclaim counters into `reclaim` (`None` when absent): v2
/// `pgmajfault`, `workingset_refault_anon`, `workingset_refault_file`
/// (5.9+; before, one `workingset_refault` counted page cache only). v1
/// keeps `pgmajfault` and `total_pgmajfault` (preferred) and no refault
/// counters at all.
pub fn parse_memory_stat(
    text: &[u8],
    version: CgroupVersion,
    out: &mut MemoryStats,
) -> Result<(), ParseError> {
    // [anon, file, shmem] x [local, total]
    let mut local = [None::<u64>; 3];
    let mut total = [None::<u64>; 3];
    // [pgmajfault, refault_anon, refault_file] and v1 total_pgmajfault.
    let mut reclaim = [None::<u64>; 3];
    let mut total_majfault = None;
    for_each_kv(text, |n, k, v| {
        let slot = match (version, k) {
            (_, b"pgmajfault") => Some((&mut reclaim[0], "pgmajfault")),
            (CgroupVersion::V1, b"total_pgmajfault") => {
                Some((&mut total_majfault, "total_pgmajfault"))
            }
            (CgroupVersion::V2, b"workingset_refault_anon") => {
                Some((&mut reclaim[1], "workingset_refault_anon"))
            }
            (CgroupVersion::V2, b"workingset_refault_file" | b"workingset_refault") => {
                Some((&mut reclaim[2], "workingset_refault_file"))
            }
            (CgroupVersion::V2, b"anon") => Some((&mut local[0], "anon")),
            (CgroupVersion::V2, b"file") => Some((&mut local[1], "file")),
            (CgroupVersion::V2, b"shmem") => Some((&mut local[2], "shmem")),
            (CgroupVersion::V1, b"rss") => Some((&mut local[0], "rss")),
            (CgroupVersion::V1, b"cache") => Some((&mut local[1], "cache")),
            (CgroupVersion::V1, b"shmem") => Some((&mut local[2], "shmem")),
            (CgroupVersion::V1, b"total_rss") => Some((&mut total[0], "total_rss")),
            (CgroupVersion::V1, b"total_cache") => Some((&mut total[1], "total_cache")),
            (CgroupVersion::V1, b"total_shmem") => Some((&mut total[2], "total_shmem")),
            _ => None,
        };
        if let Some((slot, field)) = slot {
            *slot = Some(num(n, field, v)?);
        }
        Ok(())
    })?;
    let pick = |i: usize| total[i].or(local[i]).unwrap_or(0);
    out.anon_bytes = pick(0);
    out.file_bytes = pick(1);
    out.shmem_bytes = pick(2);
    out.reclaim = gpuscope_model::Reclaim {
        pgmajfault: total_majfault.or(reclaim[0]),
        workingset_refault_anon: reclaim[1],
        workingset_refault_file: reclaim[2],
    };
    Ok(())
}

fn parse_psi_line(n: usize, rest: &[u8]) -> Result<PsiLine, ParseError> {
    let mut line = PsiLine::default();
    let mut seen = 0u8;
    for field in rest
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
    {
        let eq = field
            .iter()
            .position(|&b| b == b'=')
            .ok_or(ParseError::Syntax { line: n })?;
        let (k, v) = (&field[..eq], &field[eq + 1..]);
        match k {
            b"avg10" => {
                line.avg10 = parse_f32(v).ok_or(ParseError::Number {
                    line: n,
                    field: "avg10",
                })?;
                seen |= 1;
            }
            b"avg60" => {
                line.avg60 = parse_f32(v).ok_or(ParseError::Number {
                    line: n,
                    field: "avg60",
                })?;
                seen |= 2;
            }
            b"avg300" => {
                line.avg300 = parse_f32(v).ok_or(ParseError::Number {
                    line: n,
                    field: "avg300",
                })?;
                seen |= 4;
            }
            b"total" => {
                line.total_us = num(n, "total", v)?;
                seen |= 8;
            }
            _ => {}
        }
    }
    match seen {
        15 => Ok(line),
        s if s & 8 == 0 => Err(ParseError::Missing { field: "total" }),
        _ => Err(ParseError::Missing {
            field: "avg10/avg60/avg300",
        }),
    }
}

/// Parses a pressure file (`some avg10=.. avg60=.. avg300=.. total=..`,
/// optionally followed by a `full ...` line).
pub fn parse_psi(text: &[u8]) -> Result<Psi, ParseError> {
    let mut some = None;
    let mut full = None;
    for (n, line) in lines(text) {
        let (k, rest) = key_value(line).ok_or(ParseError::Syntax { line: n })?;
        match k {
            b"some" => some = Some(parse_psi_line(n, rest)?),
            b"full" => full = Some(parse_psi_line(n, rest)?),
            _ => return Err(ParseError::Syntax { line: n }),
        }
    }
    Ok(Psi {
        some: some.ok_or(ParseError::Missing { field: "some" })?,
        full,
    })
}

/// Parses v2 `cpu.stat`: `usage_usec` (required), `nr_throttled` and
/// `throttled_usec` (present only when the cpu controller is enabled for
/// the cgroup; `None` otherwise).
pub fn parse_cpu_stat(text: &[u8], out: &mut CpuStats) -> Result<(), ParseError> {
    let mut usage = None;
    out.nr_throttled = None;
    out.throttled_us = None;
    for_each_kv(text, |n, k, v| {
        match k {
            b"usage_usec" => usage = Some(num(n, "usage_usec", v)?),
            b"nr_throttled" => out.nr_throttled = Some(num(n, "nr_throttled", v)?),
            b"throttled_usec" => out.throttled_us = Some(num(n, "throttled_usec", v)?),
            _ => {}
        }
        Ok(())
    })?;
    out.usage_us = usage.ok_or(ParseError::Missing {
        field: "usage_usec",
    })?;
    Ok(())
}

/// Parses `/proc/meminfo` and returns `(MemTotal, MemAvailable)` in bytes
/// (the file gives kB). Both are required (`MemAvailable` exists since 3.14).
pub fn parse_meminfo(text: &[u8]) -> Result<(u64, u64), ParseError> {
    let mut total = None;
    let mut avail = None;
    for (n, line) in lines(text) {
        let (slot, field, rest) = if let Some(rest) = line.strip_prefix(b"MemTotal:") {
            (&mut total, "MemTotal", rest)
        } else if let Some(rest) = line.strip_prefix(b"MemAvailable:") {
            (&mut avail, "MemAvailable", rest)
        } else {
            continue;
        };
        let rest = rest.trim_ascii();
        let digits = rest.strip_suffix(b"kB").unwrap_or(rest);
        let kb = num(n, field, digits)?;
        *slot = Some(
            kb.checked_mul(1024)
                .ok_or(ParseError::Number { line: n, field })?,
        );
    }
    Ok((
        total.ok_or(ParseError::Missing { field: "MemTotal" })?,
        avail.ok_or(ParseError::Missing {
            field: "MemAvailable",
        })?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sections of a `== name` sectioned kernel-sample file.
    pub(crate) fn section<'a>(text: &'a str, name: &str) -> &'a str {
        let head = format!("== {name}\n");
        let start = text.find(&head).map(|i| i + head.len()).unwrap_or_else(|| {
            panic!("section {name} missing");
        });
        let rest = &text[start..];
        let end = rest.find("\n== ").map_or(rest.len(), |i| i + 1);
        &rest[..end]
    }

    const V1_AFTER_OOM: &str =
        include_str!("../../tests/fixtures/kernel-samples/cgroup-v1-memory-after-oom.txt");
    const V2_VM: &str =
        include_str!("../../tests/fixtures/kernel-samples/cgroup-v2-oom-kernel-6.1-vm.txt");
    const PROC_PRESSURE: &str =
        include_str!("../../tests/fixtures/kernel-samples/proc-pressure.txt");

    #[test]
    fn v1_sample_oom_control_and_files() {
        let mut ev = MemoryEvents::default();
        parse_oom_control(
            section(V1_AFTER_OOM, "memory.oom_control").as_bytes(),
            &mut ev,
        )
        .expect("oom_control");
        assert_eq!(ev.oom_kill, 1);
        assert_eq!(ev.under_oom, Some(false));
        assert_eq!(ev.oom, None);
        assert_eq!(
            parse_single_u64(section(V1_AFTER_OOM, "memory.failcnt").as_bytes()),
            Ok(24)
        );
        assert_eq!(
            parse_single_u64(section(V1_AFTER_OOM, "memory.usage_in_bytes").as_bytes()),
            Ok(225_280)
        );
        assert_eq!(
            parse_u64_or_max(section(V1_AFTER_OOM, "memory.max_usage_in_bytes").as_bytes()),
            Ok(Some(67_108_864))
        );
        assert_eq!(
            parse_u64_or_max(section(V1_AFTER_OOM, "memory.limit_in_bytes").as_bytes()),
            Ok(Some(67_108_864))
        );
        let mut st = MemoryStats {
            anon_bytes: 9,
            file_bytes: 9,
            shmem_bytes: 9,
            ..Default::default()
        };
        parse_memory_stat(
            section(V1_AFTER_OOM, "memory.stat").as_bytes(),
            CgroupVersion::V1,
            &mut st,
        )
        .expect("stat");
        assert_eq!((st.anon_bytes, st.file_bytes, st.shmem_bytes), (0, 0, 0));
    }

    #[test]
    fn v1_stat_prefers_totals_and_falls_back() {
        let mut st = MemoryStats::default();
        let text = b"cache 10\nrss 20\nshmem 30\ntotal_cache 100\ntotal_rss 200\n";
        parse_memory_stat(text, CgroupVersion::V1, &mut st).expect("stat");
        assert_eq!(
            (st.anon_bytes, st.file_bytes, st.shmem_bytes),
            (200, 100, 30)
        );
        // v2 keys are not v1 keys.
        parse_memory_stat(b"anon 5\nfile 6\n", CgroupVersion::V1, &mut st).expect("stat");
        assert_eq!((st.anon_bytes, st.file_bytes), (0, 0));
    }

    #[test]
    fn reclaim_counters_per_version() {
        // v2 since 5.9: major faults and both refault counters.
        let mut st = MemoryStats::default();
        let v2 = b"anon 5\nfile 6\npgfault 900\npgmajfault 41\nworkingset_refault_anon 7\nworkingset_refault_file 1300\n";
        parse_memory_stat(v2, CgroupVersion::V2, &mut st).expect("stat");
        assert_eq!(st.reclaim.pgmajfault, Some(41));
        assert_eq!(st.reclaim.workingset_refault_anon, Some(7));
        assert_eq!(st.reclaim.workingset_refault_file, Some(1300));
        assert_eq!(st.reclaim.refaults(), Some(1307));
        // v2 before 5.9: one page-cache refault counter.
        parse_memory_stat(
            b"pgmajfault 1\nworkingset_refault 8\n",
            CgroupVersion::V2,
            &mut st,
        )
        .expect("stat");
        assert_eq!(st.reclaim.workingset_refault_anon, None);
        assert_eq!(st.reclaim.workingset_refault_file, Some(8));
        // v1: the hierarchical total is preferred, and there are no refaults.
        let v1 = b"cache 1\npgmajfault 3\ntotal_pgmajfault 12\nworkingset_refault_file 5\n";
        parse_memory_stat(v1, CgroupVersion::V1, &mut st).expect("stat");
        assert_eq!(st.reclaim.pgmajfault, Some(12));
        assert_eq!(st.reclaim.refaults(), None);
        parse_memory_stat(b"pgmajfault 3\n", CgroupVersion::V1, &mut st).expect("stat");
        assert_eq!(st.reclaim.pgmajfault, Some(3));
        // A counter that is not a number names itself.
        let e = parse_memory_stat(b"pgmajfault x\n", CgroupVersion::V2, &mut st);
        assert!(format!("{e:?}").contains("pgmajfault"), "{e:?}");
    }

    #[test]
    fn v2_stat() {
        let mut st = MemoryStats::default();
        let text = b"anon 33398784\nfile 8192\nkernel 1\nshmem 4096\nfile_mapped 0\n";
        parse_memory_stat(text, CgroupVersion::V2, &mut st).expect("stat");
        assert_eq!(
            (st.anon_bytes, st.file_bytes, st.shmem_bytes),
            (33_398_784, 8192, 4096)
        );
    }

    #[test]
    fn v2_sample_events_and_pressure() {
        let start = V2_VM.find("--- [cghog] memory.events:\n").expect("events") + 27;
        let end = start + V2_VM[start..].find("---").expect("end");
        let mut ev = MemoryEvents {
            failcnt: Some(3),
            ..Default::default()
        };
        parse_memory_events(&V2_VM.as_bytes()[start..end], &mut ev).expect("events");
        assert_eq!(
            ev,
            MemoryEvents {
                oom: Some(1),
                oom_kill: 1,
                oom_group_kill: Some(0),
                max: Some(35),
                high: Some(0),
                under_oom: None,
                failcnt: Some(3),
            }
        );

        let start = V2_VM.find("--- [cghog] memory.pressure:\n").expect("psi") + 29;
        let end = start + V2_VM[start..].find("---").expect("end");
        let psi = parse_psi(&V2_VM.as_bytes()[start..end]).expect("psi");
        assert_eq!(psi.some.total_us, 6251);
        assert_eq!(psi.full.expect("full").total_us, 6251);
        assert_eq!(psi.some.avg10, 0.0);

        let peak = V2_VM.find("memory.peak: ").expect("peak") + 13;
        let end = peak + V2_VM[peak..].find('\n').expect("nl");
        assert_eq!(
            parse_u64_or_max(&V2_VM.as_bytes()[peak..end]),
            Ok(Some(33_554_432))
        );
    }

    #[test]
    fn events_without_group_kill_and_unknown_keys() {
        let mut ev = MemoryEvents {
            oom_group_kill: Some(7),
            ..Default::default()
        };
        parse_memory_events(
            b"low 0\nhigh 4\nmax 2\noom 1\noom_kill 1\nsock_throttled 9\n",
            &mut ev,
        )
        .expect("events");
        assert_eq!(ev.oom_group_kill, None);
        assert_eq!(ev.high, Some(4));
        assert_eq!(ev.oom_kill, 1);
        assert_eq!(
            parse_memory_events(b"low 0\nhigh 0\n", &mut ev),
            Err(ParseError::Missing { field: "oom_kill" })
        );
        assert_eq!(
            parse_memory_events(b"low 0\noom_kill x1\n", &mut ev),
            Err(ParseError::Number {
                line: 2,
                field: "oom_kill"
            })
        );
        assert_eq!(
            parse_memory_events(b"oom_kill\n", &mut ev),
            Err(ParseError::Number {
                line: 1,
                field: "oom_kill"
            })
        );
    }

    #[test]
    fn oom_control_before_4_13() {
        let mut ev = MemoryEvents::default();
        parse_oom_control(b"oom_kill_disable 0\nunder_oom 1\n", &mut ev).expect("old");
        assert_eq!(ev.oom_kill, 0);
        assert_eq!(ev.under_oom, Some(true));
        assert!(parse_oom_control(b"garbage\n", &mut ev).is_err());
    }

    #[test]
    fn proc_pressure_sample() {
        let cpu = parse_psi(section(PROC_PRESSURE, "/proc/pressure/cpu").as_bytes()).expect("cpu");
        assert_eq!(cpu.some.avg10, 47.80);
        assert_eq!(cpu.some.avg60, 19.02);
        assert_eq!(cpu.some.avg300, 5.19);
        assert_eq!(cpu.some.total_us, 18_727_649);
        assert_eq!(cpu.full.expect("full").total_us, 0);
        let io = parse_psi(section(PROC_PRESSURE, "/proc/pressure/io").as_bytes()).expect("io");
        assert_eq!(io.some.total_us, 1_904_463);
        let full = io.full.expect("full");
        assert_eq!((full.avg10, full.avg60, full.avg300), (0.11, 0.55, 0.25));
        assert_eq!(full.total_us, 1_535_723);
        let mem =
            parse_psi(section(PROC_PRESSURE, "/proc/pressure/memory").as_bytes()).expect("mem");
        assert_eq!(
            (mem.some.total_us, mem.full.expect("full").total_us),
            (1937, 1754)
        );
    }

    #[test]
    fn psi_old_cpu_without_full_and_errors() {
        let p = parse_psi(b"some avg10=1.50 avg60=0.00 avg300=0.00 total=42\n").expect("psi");
        assert_eq!(p.full, None);
        assert_eq!(p.some.avg10, 1.5);
        assert_eq!(
            parse_psi(b"some avg10=1.50 avg60=0.00 avg300=0.00\n"),
            Err(ParseError::Missing { field: "total" })
        );
        assert_eq!(
            parse_psi(b"some avg10=x avg60=0.00 avg300=0.00 total=1\n"),
            Err(ParseError::Number {
                line: 1,
                field: "avg10"
            })
        );
        assert_eq!(
            parse_psi(b"some avg10=NaN avg60=0.00 avg300=0.00 total=1\n"),
            Err(ParseError::Number {
                line: 1,
                field: "avg10"
            })
        );
        assert_eq!(parse_psi(b""), Err(ParseError::Missing { field: "some" }));
        assert_eq!(parse_psi(b"bogus\n"), Err(ParseError::Syntax { line: 1 }));
    }

    #[test]
    fn cpu_stat() {
        let mut c = CpuStats::default();
        parse_cpu_stat(
            b"usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 5\nnr_throttled 2\nthrottled_usec 300\n",
            &mut c,
        )
        .expect("cpu");
        assert_eq!(
            c,
            CpuStats {
                usage_us: 1000,
                nr_throttled: Some(2),
                throttled_us: Some(300)
            }
        );
        parse_cpu_stat(b"usage_usec 7\nuser_usec 6\nsystem_usec 1\n", &mut c).expect("cpu");
        assert_eq!(
            (c.usage_us, c.nr_throttled, c.throttled_us),
            (7, None, None)
        );
        assert!(parse_cpu_stat(b"user_usec 6\n", &mut c).is_err());
    }

    #[test]
    fn u64_or_max() {
        assert_eq!(parse_u64_or_max(b"max\n"), Ok(None));
        assert_eq!(parse_u64_or_max(b"9223372036854771712\n"), Ok(None));
        assert_eq!(parse_u64_or_max(b"4611686018427387904"), Ok(None));
        assert_eq!(
            parse_u64_or_max(b"4611686018427387903"),
            Ok(Some((1 << 62) - 1))
        );
        assert_eq!(parse_u64_or_max(b"33554432\n"), Ok(Some(33_554_432)));
        assert_eq!(parse_u64_or_max(b""), Err(ParseError::Empty));
        assert!(parse_u64_or_max(b"-1").is_err());
        assert!(parse_u64_or_max(b"18446744073709551616").is_err());
        assert!(parse_u64_or_max(b"1 2").is_err());
    }

    #[test]
    fn meminfo() {
        let text = b"MemTotal:       24684084 kB\nMemFree:        23710088 kB\nMemAvailable:   24324588 kB\n";
        assert_eq!(
            parse_meminfo(text),
            Ok((24_684_084 * 1024, 24_324_588 * 1024))
        );
        assert_eq!(
            parse_meminfo(b"MemTotal: 1 kB\n"),
            Err(ParseError::Missing {
                field: "MemAvailable"
            })
        );
        assert_eq!(
            parse_meminfo(b"MemTotal: x kB\n"),
            Err(ParseError::Number {
                line: 1,
                field: "MemTotal"
            })
        );
    }

    #[test]
    fn never_panics_on_junk() {
        let junk: [&[u8]; 8] = [
            b"",
            b"\n\n\n",
            b"\xff\xfe\x00",
            b"some",
            b"some avg10==",
            b"full avg10=1 avg60=1 avg300=1 total=1",
            b"oom_kill 99999999999999999999999",
            b"= = =",
        ];
        let mut ev = MemoryEvents::default();
        let mut st = MemoryStats::default();
        let mut c = CpuStats::default();
        for j in junk {
            let _ = parse_memory_events(j, &mut ev);
            let _ = parse_oom_control(j, &mut ev);
            let _ = parse_memory_stat(j, CgroupVersion::V1, &mut st);
            let _ = parse_memory_stat(j, CgroupVersion::V2, &mut st);
            let _ = parse_psi(j);
            let _ = parse_cpu_stat(j, &mut c);
            let _ = parse_u64_or_max(j);
            let _ = parse_meminfo(j);
        }
        assert!(parse_psi(b"full avg10=1 avg60=1 avg300=1 total=1").is_err());
    }
}
