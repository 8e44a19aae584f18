//! The zip container of a `torch.save` checkpoint: its central directory
//! read with every offset and size checked against the file, and the data
//! of its stored (uncompressed) entries borrowed without a copy.
//!
//! The end-of-central-directory record must end the file (torch writes no
//! comment and nothing after it); a zip64 locator just before it points to
//! the zip64 record that torch's writer (miniz) adds once the archive
//! passes 4 GiB or 65535 entries, and each central entry may carry a zip64
//! extra field with its 64-bit sizes and offset. Sizes and CRCs come from
//! the central directory only: torch sets the data-descriptor flag and
//! leaves them zero in the local headers, which are read just for the
//! length of the name and the alignment padding before the data.
//!
//! Errors are messages; the checkpoint wraps them with the file name.

use std::collections::HashMap;
use std::ops::Range;

type ZipResult<T> = std::result::Result<T, String>;

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIGNATURE: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIGNATURE: u32 = 0x0606_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;

const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_LEN: usize = 56;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
/// The longest archive comment the format allows.
const MAX_COMMENT: usize = 0xffff;
/// The id of the zip64 extended-information extra field.
const ZIP64_EXTRA_ID: u16 = 0x0001;

/// The first bytes of a pickle of torch's legacy (before 1.6) format: the
/// magic number 0x1950a86a20f9469cfc6c as a LONG1 of protocol 2.
const LEGACY_MAGIC: [u8; 4] = [0x80, 0x02, 0x8a, 0x0a];

/// One stored entry: its name, where its data lies in the file, its CRC-32
/// (0 when the writer computed none).
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub name: String,
    pub data: Range<usize>,
    pub crc: u32,
}

/// The entries of an archive, in central-directory order.
#[derive(Debug)]
pub(crate) struct Archive {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

impl Archive {
    /// Reads the central directory of `bytes` and checks every entry's
    /// local header and data range.
    pub fn read(bytes: &[u8]) -> ZipResult<Archive> {
        let directory = find_directory(bytes)?;
        let entries = read_entries(bytes, &directory)?;
        let mut by_name = HashMap::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if by_name.insert(entry.name.clone(), i).is_some() {
                return Err(format!("zip: entry '{}' appears twice", super::shown(&entry.name)));
            }
        }
        Ok(Archive { entries, by_name })
    }

    /// Every entry, in central-directory order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }
}

/// Checks `data` (an entry's bytes) against the entry's CRC-32. A CRC of 0
/// is not checked: torch writes 0 when saving with `compute_crc32=False`.
pub(crate) fn check_crc(entry: &Entry, data: &[u8]) -> ZipResult<()> {
    if entry.crc == 0 {
        return Ok(());
    }
    let crc = crc32fast::hash(data);
    if crc != entry.crc {
        return Err(format!(
            "zip: entry '{}' is corrupt (CRC-32 {crc:#010x}, the directory says {:#010x})",
            super::shown(&entry.name),
            entry.crc
        ));
    }
    Ok(())
}

// ------------------------------------------------------------ fields

/// Little-endian fields of a record that must lie whole inside the file.
struct Record<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Record<'a> {
    /// The `len` bytes at `at`, or an error naming the record.
    fn at(bytes: &'a [u8], at: u64, len: usize, what: &'static str) -> ZipResult<Record<'a>> {
        let start = usize::try_from(at).ok();
        let slice = start.and_then(|s| bytes.get(s..s.checked_add(len)?));
        match slice {
            Some(bytes) => Ok(Record { bytes, what }),
            None => Err(format!("zip: the {what} at byte {at} lies outside the file ({} bytes)", bytes.len())),
        }
    }

    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.bytes[at..at + 4].try_into().expect("4 bytes"))
    }

    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().expect("8 bytes"))
    }

    fn expect_signature(&self, signature: u32, offset: u64) -> ZipResult<()> {
        if self.u32(0) == signature {
            Ok(())
        } else {
            Err(format!("zip: no {} signature at byte {offset}", self.what))
        }
    }
}

// --------------------------------------------------- end of directory

/// Where the central directory lies and how many entries it holds.
#[derive(Debug)]
struct Directory {
    offset: u64,
    size: u64,
    count: u64,
    /// Where the records after the directory begin: the directory must end
    /// before them.
    end_limit: u64,
}

/// The end-of-central-directory record (and the zip64 one when present).
fn find_directory(bytes: &[u8]) -> ZipResult<Directory> {
    let eocd_at = find_eocd(bytes)?;
    let eocd = Record::at(bytes, eocd_at as u64, EOCD_LEN, "end-of-central-directory record")?;
    let (disk, directory_disk) = (eocd.u16(4), eocd.u16(6));
    let (disk_count, count) = (eocd.u16(8), eocd.u16(10));
    let (size, offset) = (eocd.u32(12), eocd.u32(16));
    if let Some(locator_at) = eocd_at.checked_sub(ZIP64_LOCATOR_LEN) {
        let locator = Record::at(bytes, locator_at as u64, ZIP64_LOCATOR_LEN, "zip64 locator")?;
        if locator.u32(0) == ZIP64_LOCATOR_SIGNATURE {
            return zip64_directory(bytes, &locator, locator_at as u64);
        }
    }
    if disk != 0 || directory_disk != 0 || disk_count != count {
        return Err("zip: multi-disk archives are not supported".to_string());
    }
    if count == 0xffff || size == 0xffff_ffff || offset == 0xffff_ffff {
        return Err("zip: the end-of-central-directory record asks for zip64 values but no zip64 locator precedes it".to_string());
    }
    Ok(Directory { offset: offset.into(), size: size.into(), count: count.into(), end_limit: eocd_at as u64 })
}

/// The offset of the end-of-central-directory record: the last signature
/// whose comment ends exactly at the end of the file.
fn find_eocd(bytes: &[u8]) -> ZipResult<usize> {
    let Some(last) = bytes.len().checked_sub(EOCD_LEN) else {
        return Err(not_a_zip(bytes));
    };
    let first = last.saturating_sub(MAX_COMMENT);
    for at in (first..=last).rev() {
        let record = &bytes[at..at + EOCD_LEN];
        let signature = u32::from_le_bytes(record[..4].try_into().expect("4 bytes"));
        let comment = usize::from(u16::from_le_bytes([record[20], record[21]]));
        if signature == EOCD_SIGNATURE && at + EOCD_LEN + comment == bytes.len() {
            return Ok(at);
        }
    }
    Err(not_a_zip(bytes))
}

/// Why a file without an end-of-central-directory record is refused.
fn not_a_zip(bytes: &[u8]) -> String {
    if bytes.starts_with(&LEGACY_MAGIC) {
        "not a zip archive: this is torch's legacy format (torch.save before torch 1.6), which is not supported; \
         re-save it with a newer torch"
            .to_string()
    } else if bytes.starts_with(b"PK\x03\x04") {
        format!("zip: no end-of-central-directory record at the end of the file ({} bytes): truncated or corrupt", bytes.len())
    } else {
        format!(
            "not a zip archive (no end-of-central-directory record in {} bytes): torch.save has written zip files since torch 1.6",
            bytes.len()
        )
    }
}

/// The zip64 end-of-central-directory record that `locator` points to.
fn zip64_directory(bytes: &[u8], locator: &Record, locator_at: u64) -> ZipResult<Directory> {
    let (record_disk, record_at, disks) = (locator.u32(4), locator.u64(8), locator.u32(16));
    if record_disk != 0 || disks > 1 {
        return Err("zip: multi-disk archives are not supported".to_string());
    }
    let record = Record::at(bytes, record_at, ZIP64_EOCD_LEN, "zip64 end-of-central-directory record")?;
    record.expect_signature(ZIP64_EOCD_SIGNATURE, record_at)?;
    let end = record_at.checked_add(ZIP64_EOCD_LEN as u64);
    if end.is_none_or(|end| end > locator_at) {
        return Err(format!("zip: the zip64 end-of-central-directory record at byte {record_at} overlaps its locator"));
    }
    let (disk, directory_disk) = (record.u32(16), record.u32(20));
    let (disk_count, count) = (record.u64(24), record.u64(32));
    if disk != 0 || directory_disk != 0 || disk_count != count {
        return Err("zip: multi-disk archives are not supported".to_string());
    }
    Ok(Directory { offset: record.u64(48), size: record.u64(40), count, end_limit: record_at })
}

// ------------------------------------------------------ central entries

/// The fields of a central-directory entry that locate its data.
struct Central {
    name: String,
    method: u16,
    flags: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    local_offset: u64,
}

/// Every entry of the central directory, with its local header checked.
fn read_entries(bytes: &[u8], directory: &Directory) -> ZipResult<Vec<Entry>> {
    let end = directory.offset.checked_add(directory.size);
    if end.is_none_or(|end| end > directory.end_limit) {
        return Err(format!(
            "zip: the central directory (bytes {} + {}) runs past the end-of-directory record at byte {}",
            directory.offset, directory.size, directory.end_limit
        ));
    }
    // Each entry takes at least CENTRAL_LEN bytes: a count the directory
    // cannot hold is refused before anything is allocated by it.
    if directory.count.checked_mul(CENTRAL_LEN as u64).is_none_or(|n| n > directory.size) {
        return Err(format!("zip: {} entries cannot fit in a central directory of {} bytes", directory.count, directory.size));
    }
    let mut entries = Vec::with_capacity(directory.count as usize);
    let mut at = directory.offset;
    let directory_end = directory.offset + directory.size;
    for _ in 0..directory.count {
        let (central, next) = read_central(bytes, at, directory_end)?;
        entries.push(locate_data(bytes, central, directory.offset)?);
        at = next;
    }
    Ok(entries)
}

/// The central entry at `at` (which must end by `limit`), and where the
/// next one begins.
fn read_central(bytes: &[u8], at: u64, limit: u64) -> ZipResult<(Central, u64)> {
    let record = Record::at(bytes, at, CENTRAL_LEN, "central directory entry")?;
    record.expect_signature(CENTRAL_SIGNATURE, at)?;
    let (name_len, extra_len, comment_len) = (record.u16(28), record.u16(30), record.u16(32));
    let variable = usize::from(name_len) + usize::from(extra_len) + usize::from(comment_len);
    let next = at + (CENTRAL_LEN + variable) as u64;
    if next > limit {
        return Err(format!("zip: the central directory entry at byte {at} runs past the end of the directory"));
    }
    let tail = Record::at(bytes, at + CENTRAL_LEN as u64, variable, "central directory entry")?.bytes;
    let (name, rest) = tail.split_at(usize::from(name_len));
    let extra = &rest[..usize::from(extra_len)];
    let name = std::str::from_utf8(name).map_err(|_| format!("zip: the name of the entry at byte {at} is not UTF-8"))?.to_string();
    let mut central = Central {
        name,
        method: record.u16(10),
        flags: record.u16(8),
        crc: record.u32(16),
        compressed: record.u32(20).into(),
        size: record.u32(24).into(),
        local_offset: record.u32(42).into(),
    };
    let disk = record.u16(34);
    apply_zip64_extra(&mut central, disk, extra)?;
    Ok((central, next))
}

/// Replaces the 32-bit fields saturated at `0xffffffff` with the 64-bit
/// values of the zip64 extra field, which holds exactly those, in order.
fn apply_zip64_extra(central: &mut Central, disk: u16, extra: &[u8]) -> ZipResult<()> {
    let name = super::shown(&central.name);
    let mut zip64 = None;
    let mut rest = extra;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(format!("zip: entry '{name}' has a truncated extra field"));
        }
        let id = u16::from_le_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        let Some(data) = rest.get(4..4 + len) else {
            return Err(format!("zip: entry '{name}' has an extra field longer than its extra data"));
        };
        if id == ZIP64_EXTRA_ID {
            zip64 = Some(data);
        }
        rest = &rest[4 + len..];
    }
    let mut fields = zip64.unwrap_or_default();
    let mut take = |value: &mut u64| -> ZipResult<()> {
        if *value != 0xffff_ffff {
            return Ok(());
        }
        let Some((field, tail)) = fields.split_first_chunk::<8>() else {
            return Err(format!("zip: entry '{name}' needs a zip64 value its extra field does not hold"));
        };
        *value = u64::from_le_bytes(*field);
        fields = tail;
        Ok(())
    };
    take(&mut central.size)?;
    take(&mut central.compressed)?;
    take(&mut central.local_offset)?;
    // The disk number comes last (as 4 bytes) when it is saturated; any
    // disk but the first is another file of a split archive.
    if disk != 0 {
        return Err(format!("zip: entry '{name}' lies on disk {disk} of a multi-disk archive"));
    }
    Ok(())
}

/// The data range of a central entry, after checking that it is stored
/// and that its local header agrees.
fn locate_data(bytes: &[u8], central: Central, directory_offset: u64) -> ZipResult<Entry> {
    let name = super::shown(&central.name);
    if central.flags & 0x41 != 0 {
        return Err(format!("zip: entry '{name}' is encrypted"));
    }
    if central.method != 0 {
        return Err(format!(
            "zip: entry '{name}' is compressed ({}); torch.save stores entries uncompressed, only stored entries are read",
            method_name(central.method)
        ));
    }
    if central.compressed != central.size {
        return Err(format!(
            "zip: stored entry '{name}' has {} compressed bytes but {} uncompressed ones",
            central.compressed, central.size
        ));
    }
    let at = central.local_offset;
    let local = Record::at(bytes, at, LOCAL_LEN, "local header")?;
    local.expect_signature(LOCAL_SIGNATURE, at)?;
    if local.u16(8) != central.method {
        return Err(format!("zip: the local header of entry '{name}' gives another compression method"));
    }
    let (name_len, extra_len) = (u64::from(local.u16(26)), u64::from(local.u16(28)));
    let local_name = Record::at(bytes, at + LOCAL_LEN as u64, name_len as usize, "local header")?.bytes;
    if local_name != central.name.as_bytes() {
        return Err(format!("zip: the local header at byte {at} names another entry than '{name}'"));
    }
    let start = at + LOCAL_LEN as u64 + name_len + extra_len;
    let end = start.checked_add(central.size);
    // Stored data lies between its local header and the central directory.
    match end {
        Some(end) if end <= directory_offset => Ok(Entry { name: central.name, data: start as usize..end as usize, crc: central.crc }),
        _ => Err(format!(
            "zip: the {} bytes of entry '{name}' at byte {start} run past the start of the central directory (byte {directory_offset})",
            central.size
        )),
    }
}

/// A compression method's name, for messages.
fn method_name(method: u16) -> String {
    match method {
        8 => "method 8, deflate".to_string(),
        9 => "method 9, deflate64".to_string(),
        12 => "method 12, bzip2".to_string(),
        14 => "method 14, LZMA".to_string(),
        93 => "method 93, zstd".to_string(),
        other => format!("method {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored archive of `files`, laid out as torch lays it out (data
    /// descriptor flag, zero sizes in the local headers).
    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        build(files, false)
    }

    /// The same archive as miniz writes it past 4 GiB: every central size
    /// and offset saturated and given in a zip64 extra field, and a zip64
    /// end-of-central-directory record with its locator.
    fn archive64(files: &[(&str, &[u8])]) -> Vec<u8> {
        build(files, true)
    }

    fn build(files: &[(&str, &[u8])], zip64: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        let narrow = |v: u64| if zip64 { u32::MAX } else { v as u32 };
        for (name, data) in files {
            let offset = out.len() as u64;
            out.extend_from_slice(&LOCAL_SIGNATURE.to_le_bytes());
            out.extend_from_slice(&[0, 0, 8, 8, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&[0; 12]);
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            let len = data.len() as u64;
            central.extend_from_slice(&CENTRAL_SIGNATURE.to_le_bytes());
            central.extend_from_slice(&[0, 0, 0, 0, 8, 8, 0, 0, 0, 0, 0, 0]);
            central.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
            central.extend_from_slice(&narrow(len).to_le_bytes());
            central.extend_from_slice(&narrow(len).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&(if zip64 { 28u16 } else { 0 }).to_le_bytes());
            central.extend_from_slice(&[0; 10]);
            central.extend_from_slice(&narrow(offset).to_le_bytes());
            central.extend_from_slice(name.as_bytes());
            if zip64 {
                central.extend_from_slice(&ZIP64_EXTRA_ID.to_le_bytes());
                central.extend_from_slice(&24u16.to_le_bytes());
                for v in [len, len, offset] {
                    central.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        let cd_offset = out.len() as u64;
        out.extend_from_slice(&central);
        if zip64 {
            let record_at = out.len() as u64;
            out.extend_from_slice(&ZIP64_EOCD_SIGNATURE.to_le_bytes());
            out.extend_from_slice(&44u64.to_le_bytes());
            out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            for v in [files.len() as u64, files.len() as u64, central.len() as u64, cd_offset] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&ZIP64_LOCATOR_SIGNATURE.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&record_at.to_le_bytes());
            out.extend_from_slice(&1u32.to_le_bytes());
        }
        let count = if zip64 { u16::MAX } else { files.len() as u16 };
        out.extend_from_slice(&EOCD_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&narrow(central.len() as u64).to_le_bytes());
        out.extend_from_slice(&narrow(cd_offset).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn reads_stored_entries() {
        let bytes = archive(&[("a/x", b"hello"), ("a/y", b"")]);
        let zip = Archive::read(&bytes).unwrap();
        let x = zip.get("a/x").unwrap();
        assert_eq!(&bytes[x.data.clone()], b"hello");
        check_crc(x, &bytes[x.data.clone()]).unwrap();
        assert!(check_crc(x, b"hellp").unwrap_err().contains("corrupt"));
        assert_eq!(zip.get("a/y").unwrap().data.len(), 0);
        assert_eq!(zip.entries().len(), 2);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = archive(&[("a/x", b"hello"), ("a/y", b"world")]);
        for len in 0..bytes.len() {
            assert!(Archive::read(&bytes[..len]).is_err(), "truncated to {len}");
        }
    }

    #[test]
    fn reads_zip64_directories() {
        let files: [(&str, &[u8]); 2] = [("a/x", b"hello"), ("a/y", b"zip64")];
        let bytes = archive64(&files);
        let zip = Archive::read(&bytes).unwrap();
        for (name, data) in files {
            let entry = zip.get(name).unwrap();
            assert_eq!(&bytes[entry.data.clone()], data);
            check_crc(entry, data).unwrap();
        }
        for len in 0..bytes.len() {
            assert!(Archive::read(&bytes[..len]).is_err(), "truncated to {len}");
        }
        // A saturated field whose value the extra field does not hold.
        let mut short = bytes.clone();
        let extra_len = CENTRAL_LEN - 16;
        let first_central = short.windows(4).position(|w| w == CENTRAL_SIGNATURE.to_le_bytes()).unwrap();
        short[first_central + extra_len..first_central + extra_len + 2].copy_from_slice(&12u16.to_le_bytes());
        short[first_central + CENTRAL_LEN + 3 + 2..first_central + CENTRAL_LEN + 3 + 4].copy_from_slice(&8u16.to_le_bytes());
        let err = Archive::read(&short).unwrap_err();
        assert!(err.contains("zip64 value"), "{err}");
    }

    #[test]
    fn duplicates_and_compression_are_refused() {
        let bytes = archive(&[("a/x", b"1"), ("a/x", b"2")]);
        assert!(Archive::read(&bytes).unwrap_err().contains("appears twice"));
        let mut bytes = archive(&[("a/x", b"1")]);
        let central = bytes.len() - EOCD_LEN - CENTRAL_LEN - 3;
        bytes[central + 10] = 8;
        assert!(Archive::read(&bytes).unwrap_err().contains("deflate"));
    }

    #[test]
    fn legacy_and_foreign_files_say_what_they_are() {
        assert!(Archive::read(&[0x80, 0x02, 0x8a, 0x0a, 0, 0]).unwrap_err().contains("legacy"));
        assert!(Archive::read(&[0u8; 100]).unwrap_err().contains("not a zip archive"));
    }
}
