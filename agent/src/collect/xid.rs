//! XID and SXid reports in the kernel log.
//!
//! The NVIDIA driver prints every XID it raises to the kernel log, whether
//! or not an NVML client listens for it, and NVSwitch errors (SXids) only
//! there. Formats seen (real lines, with their sources, in
//! `tests/fixtures/kmsg/nvrm-xid-sxid-public-reports.txt`):
//!
//! ```text
//! NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus                       (older drivers)
//! NVRM: Xid (PCI:0000:00:05): 43, pid=1045242, name=pt_main_thread, Ch 00000008    (R470 and later)
//! NVRM: Xid (PCI:0000:a1:00): 79, pid='<unknown>', name=<unknown>, GPU has ...      (no process)
//! NVRM: Xid (PCI:0018:01:00): 145, RLW_RXPIPE Nonfatal XC0 i0 Link 13 (...)         (NVLink XIDs)
//! nvidia-nvswitch3: SXid (PCI:0000:04:00.0): 22013, Non-fatal, Link 44 Minion ...  (NVSwitch)
//! ```
//!
//! The GPU's PCI address is `domain:bus:device` without the function (NVML
//! writes `00000000:3B:00.0`); [`same_pci_device`] joins the two. Only
//! records of the kernel facility (0) count: any process with write access
//! to `/dev/kmsg` can inject a line that reads like an XID, but it lands in
//! the user facility.

use super::kmsg::KmsgRecord;

/// Which driver printed the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XidOrigin {
    /// `NVRM: Xid`: the GPU driver, about a GPU.
    Gpu,
    /// `nvidia-nvswitchN: SXid`: the NVSwitch driver, about a switch.
    NvSwitch,
}

/// One XID or SXid line, borrowed from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelXid<'a> {
    /// Who printed it.
    pub origin: XidOrigin,
    /// The device's PCI address as printed (`0000:3b:00`, or
    /// `0000:04:00.0` for a switch).
    pub pci: &'a str,
    /// For an SXid, the switch device (`nvidia-nvswitch3`).
    pub switch: Option<&'a str>,
    /// The XID or SXid number.
    pub xid: u64,
    /// The process the driver blames (`pid=`), when it names one.
    pub pid: Option<u32>,
    /// Its command name (`name=`), when known.
    pub process: Option<&'a str>,
    /// For an SXid, `Fatal` or `Non-fatal` when the line says.
    pub severity: Option<&'a str>,
    /// The rest of the line: the driver's description.
    pub message: &'a str,
}

/// Parses an XID or SXid record; `None` for any other record, a record not
/// from the kernel facility, or one that does not follow the format.
pub fn parse_xid<'a>(rec: &KmsgRecord<'a>) -> Option<KernelXid<'a>> {
    if !rec.from_kernel() {
        return None;
    }
    let text = std::str::from_utf8(rec.text).ok()?;
    let (origin, switch, rest) = if let Some(rest) = text.strip_prefix("NVRM: Xid (PCI:") {
        (XidOrigin::Gpu, None, rest)
    } else {
        let at = text.find(": SXid (PCI:")?;
        let device = &text[..at];
        if !device.starts_with("nvidia-nvswitch") {
            return None;
        }
        (
            XidOrigin::NvSwitch,
            Some(device),
            &text[at + ": SXid (PCI:".len()..],
        )
    };
    let (pci, rest) = rest.split_once("): ")?;
    if pci.is_empty()
        || !pci
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    {
        return None;
    }
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let xid = rest[..digits].parse().ok()?;
    let mut rest = rest[digits..].strip_prefix(',').unwrap_or(&rest[digits..]);
    rest = rest.trim_start();
    let mut pid = None;
    let mut process = None;
    let mut severity = None;
    if let Some(v) = rest.strip_prefix("pid=") {
        let (value, after) = v.split_once(", ").unwrap_or((v, ""));
        pid = value.parse().ok();
        rest = after;
        if let Some(v) = rest.strip_prefix("name=") {
            let (value, after) = v.split_once(", ").unwrap_or((v, ""));
            process = Some(value).filter(|n| !n.contains("<unknown>"));
            rest = after;
        }
    }
    if origin == XidOrigin::NvSwitch {
        for s in ["Non-fatal", "Fatal"] {
            if let Some(after) = rest.strip_prefix(s) {
                severity = Some(&rest[..s.len()]);
                rest = after.strip_prefix(", ").unwrap_or(after);
                break;
            }
        }
    }
    Some(KernelXid {
        origin,
        pci,
        switch,
        xid,
        pid,
        process,
        severity,
        message: rest,
    })
}

/// `(domain, bus, device)` of a PCI address written `DDDD:BB:DD[.F]`
/// (the kernel's) or `DDDDDDDD:BB:DD.F` (NVML's).
fn pci_parts(address: &str) -> Option<(u32, u32, u32)> {
    let mut parts = address.split(':');
    let (domain, bus, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let device = rest.split('.').next()?;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    Some((hex(domain)?, hex(bus)?, hex(device)?))
}

/// Whether a kernel line's PCI address and NVML's bus ID name the same
/// device (the kernel omits the function and writes a shorter domain).
pub fn same_pci_device(kernel: &str, nvml_bus_id: &str) -> bool {
    matches!((pci_parts(kernel), pci_parts(nvml_bus_id)), (Some(a), Some(b)) if a == b)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::collect::kmsg::parse_record;

    const PUBLIC: &str = include_str!("../../tests/fixtures/kmsg/nvrm-xid-sxid-public-reports.txt");

    fn public() -> Vec<KernelXid<'static>> {
        PUBLIC
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                parse_xid(&parse_record(l.as_bytes()).unwrap())
                    .unwrap_or_else(|| panic!("not an XID: {l}"))
            })
            .collect()
    }

    #[test]
    fn real_xid_lines_of_several_driver_generations() {
        let x = public();
        let gpu: Vec<(&str, u64, Option<u32>, Option<&str>)> = x
            .iter()
            .filter(|x| x.origin == XidOrigin::Gpu)
            .map(|x| (x.pci, x.xid, x.pid, x.process))
            .collect();
        assert_eq!(
            gpu,
            vec![
                ("0000:00:05", 43, Some(1_045_242), Some("pt_main_thread")),
                ("0000:00:07", 31, Some(2_512_125), Some("python3.10")),
                ("0000:00:08", 94, None, None),
                ("0000:a1:00", 79, None, None),
                ("0000:dc:00", 45, Some(1_818_990), Some("python3")),
                ("0018:01:00", 145, None, None),
                ("0000:44:00", 79, None, None),
            ]
        );
        assert_eq!(x[3].message, "GPU has fallen off the bus.");
        assert_eq!(x[2].message, "Contained: SM (0x1). RST: No, D-RST: No");
        assert_eq!(x[4].message, "Ch 00000001 caused by previous Xid 149");
        assert!(
            x[5].message
                .starts_with("RLW_RXPIPE Nonfatal XC0 i0 Link 13")
        );
        assert_eq!(x[6].message, "GPU has fallen off the bus");
    }

    #[test]
    fn real_sxid_lines_name_the_switch_and_severity() {
        let x = public();
        let sx: Vec<_> = x
            .iter()
            .filter(|x| x.origin == XidOrigin::NvSwitch)
            .collect();
        assert_eq!(
            sx.len(),
            4,
            "one SXid printed as three records, and another"
        );
        assert!(sx[..3].iter().all(|s| s.xid == 22013
            && s.pci == "0000:04:00.0"
            && s.switch == Some("nvidia-nvswitch3")
            && s.pid.is_none()));
        assert_eq!(
            (sx[3].xid, sx[3].pci, sx[3].switch),
            (12028, "0000:84:00.0", Some("nvidia-nvswitch1"))
        );
        assert!(sx[3].message.starts_with("Data {0x000001c0"));
        assert_eq!(sx[1].severity, Some("Non-fatal"));
        assert_eq!(sx[1].message, "Link 44 Minion Link DLREQ interrupt");
        assert_eq!(sx[0].severity, None, "the Data record");
    }

    #[test]
    fn only_the_kernel_facility_counts() {
        // The same text written from user space (facility 1, `echo > /dev/kmsg`).
        let forged = b"14,7,100,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=1, name=x, GPU has fallen off the bus.";
        assert_eq!(parse_xid(&parse_record(forged).unwrap()), None);
        let real =
            b"3,7,100,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=1, name=x, GPU has fallen off the bus.";
        assert_eq!(
            parse_xid(&parse_record(real).unwrap()).map(|x| x.xid),
            Some(79)
        );
    }

    #[test]
    fn other_and_broken_lines_are_not_xids() {
        for text in [
            "NVRM: GPU at PCI:0000:a1:00: GPU-979426f2-893a-7cbb-c4cf-81472f89a462",
            "NVRM: Xid (PCI:0000:a1:00): , GPU has fallen off the bus.",
            "NVRM: Xid (PCI:0000:a1:00 79",
            "NVRM: Xid (PCI:zz): 79, x",
            "evil: SXid (PCI:0000:04:00.0): 22013, Fatal, x",
            "Memory cgroup out of memory: Killed process 8048 (python3)",
        ] {
            let rec = format!("3,1,1,-;{text}");
            assert_eq!(
                parse_xid(&parse_record(rec.as_bytes()).unwrap()),
                None,
                "{text}"
            );
        }
    }

    #[test]
    fn kernel_and_nvml_pci_addresses_join() {
        assert!(same_pci_device("0000:3b:00", "00000000:3B:00.0"));
        assert!(same_pci_device("0018:01:00", "00000018:01:00.0"));
        assert!(!same_pci_device("0000:3b:00", "00000000:3C:00.0"));
        assert!(!same_pci_device("0000:3b", "00000000:3B:00.0"));
    }
}
