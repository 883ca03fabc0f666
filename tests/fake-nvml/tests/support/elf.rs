//! Simulating a driver that lacks a function, with the real dynamic loader.
//!
//! [`copy_without_symbol`] copies the built fake and renames one exported
//! symbol in its dynamic string table (`.dynstr`) by changing its first byte
//! (`nvml...` -> `xvml...`). The name keeps its length, so nothing else in the
//! file moves; `dlsym("nvml...")` then fails (the GNU hash still matches but
//! the name comparison does not), exactly as with an older `libnvidia-ml.so`
//! that predates the function. `nvml-wrapper` resolves every name at load and
//! fails only the calls whose symbol is missing (`FailedToLoadSymbol`).

use std::path::{Path, PathBuf};

/// The bytes of section `name` in a little-endian ELF64 file, as a range.
fn section(image: &[u8], name: &str) -> std::ops::Range<usize> {
    assert!(
        image.len() > 64 && image[..4] == *b"\x7fELF" && image[4] == 2 && image[5] == 1,
        "not a little-endian ELF64 file"
    );
    let u16_at = |at: usize| u16::from_le_bytes([image[at], image[at + 1]]) as usize;
    let u32_at =
        |at: usize| u32::from_le_bytes(image[at..at + 4].try_into().expect("4 bytes")) as usize;
    let u64_at =
        |at: usize| u64::from_le_bytes(image[at..at + 8].try_into().expect("8 bytes")) as usize;
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3A), u16_at(0x3C), u16_at(0x3E));
    let header = |i: usize| shoff + i * shentsize;
    let names_at = u64_at(header(shstrndx) + 0x18);
    (0..shnum)
        .find_map(|i| {
            let h = header(i);
            let start = names_at + u32_at(h);
            let end = start + image[start..].iter().position(|b| *b == 0)?;
            (&image[start..end] == name.as_bytes()).then(|| {
                let (offset, size) = (u64_at(h + 0x18), u64_at(h + 0x20));
                offset..offset + size
            })
        })
        .unwrap_or_else(|| panic!("no {name} section"))
}

/// Whether `symbol` is a name in the library's dynamic string table.
pub fn exports_name(library: &Path, symbol: &str) -> bool {
    let image = std::fs::read(library).expect("read the library");
    let dynstr = &image[section(&image, ".dynstr")];
    let wanted = [&[0][..], symbol.as_bytes(), &[0]].concat();
    dynstr.windows(wanted.len()).any(|w| w == wanted)
}

/// Copies `library` into `dir` with `symbol`'s dynamic name changed from
/// `nvml...` to `xvml...`, and returns the copy's path.
pub fn copy_without_symbol(library: &Path, dir: &Path, symbol: &str) -> PathBuf {
    let mut image = std::fs::read(library).expect("read the library");
    let range = section(&image, ".dynstr");
    let wanted = [&[0][..], symbol.as_bytes(), &[0]].concat();
    let at = image[range.clone()]
        .windows(wanted.len())
        .position(|w| w == wanted)
        .unwrap_or_else(|| panic!("{symbol} is not in .dynstr"));
    image[range.start + at + 1] = b'x';
    let copy = dir.join(format!("libnvidia-ml-without-{symbol}.so"));
    std::fs::write(&copy, image).expect("write the patched copy");
    copy
}
