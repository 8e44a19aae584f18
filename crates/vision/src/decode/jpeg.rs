//! Whether a JPEG holds every block its frame header promises.
//!
//! The JPEG decoder the image crate drives (zune-jpeg, in its lenient mode)
//! pads an image whose entropy-coded data stops early: a file cut short, or
//! one whose scans end (with an end-of-image marker) long before the blocks
//! of the size its header claims, decodes to grey or zeroed pixels without
//! an error. [`check_complete`] walks the file before it is decoded: every
//! marker segment, and the Huffman-coded data of every scan, block by block
//! (sequential and progressive, interleaved or not, restart intervals), and
//! fails when
//!
//! - the file ends before its end-of-image marker (inside a segment, inside
//!   a scan or between them);
//! - a scan's data ends before its last block, or holds a code its Huffman
//!   table does not define, or lacks a restart marker where its interval
//!   puts one;
//! - a component is never scanned, or (progressive) a coefficient is left
//!   without its last refinement: the scans stop early.
//!
//! Coefficient values are skipped, not decoded; pixels are the decoder's.
//! Data after the end-of-image marker (a second image, padding) is ignored.

mod entropy;

use entropy::{Bits, Fault, Huffman, Tables};

/// A failure's message, for an image error naming the file.
type Check<T> = std::result::Result<T, String>;

/// Checks that the JPEG in `data` (whose headers the decoder has read) is
/// complete; see the module docs.
pub(super) fn check_complete(data: &[u8]) -> Check<()> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err("not a JPEG stream (no start-of-image marker)".into());
    }
    let mut file = JpegFile { data, frame: None, tables: Tables::default(), restart_interval: 0, scans: 0 };
    let mut pos = 2;
    loop {
        let Some((marker, at)) = next_marker(data, pos) else {
            return Err("the data ends before the end-of-image marker (truncated file)".into());
        };
        pos = at;
        match marker {
            0xD9 => return file.finish(),
            0xD8 | 0x01 => {}
            _ => {
                let segment = segment(data, pos, marker)?;
                pos += 2 + segment.len();
                match marker {
                    0xC0..=0xC2 => file.start_frame(segment, marker == 0xC2)?,
                    0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                        return Err(format!("unsupported JPEG coding process (SOF{})", marker - 0xC0))
                    }
                    0xC4 => file.tables.define(segment)?,
                    0xDD => file.restart_interval = be16(segment, 0, "DRI")? as usize,
                    0xDA => pos = file.scan(segment, pos)?,
                    _ => {}
                }
            }
        }
    }
}

/// The next marker at or after `pos` (bytes before it that are not a marker
/// are skipped, as are fill bytes, stuffed zeros and restart markers) and
/// the position after it.
fn next_marker(data: &[u8], mut pos: usize) -> Option<(u8, usize)> {
    loop {
        let (m, after) = next_marker_or_restart(data, pos)?;
        if !(0xD0..=0xD7).contains(&m) {
            return Some((m, after));
        }
        pos = after;
    }
}

/// As [`next_marker`], stopping at restart markers too.
fn next_marker_or_restart(data: &[u8], mut pos: usize) -> Option<(u8, usize)> {
    loop {
        pos += data.get(pos..)?.iter().position(|&b| b == 0xFF)?;
        while data.get(pos) == Some(&0xFF) {
            pos += 1;
        }
        let m = *data.get(pos)?;
        pos += 1;
        if m != 0x00 {
            return Some((m, pos));
        }
    }
}

/// The payload of the segment whose length field is at `pos`.
fn segment(data: &[u8], pos: usize, marker: u8) -> Check<&[u8]> {
    let len = be16(data, pos, "a segment length").map_err(|_| truncated_in(marker))? as usize;
    if len < 2 {
        return Err(format!("marker 0xFF{marker:02X} has a length of {len} bytes (at least 2 expected)"));
    }
    data.get(pos + 2..pos + len).ok_or_else(|| truncated_in(marker))
}

fn truncated_in(marker: u8) -> String {
    format!("the data ends inside the 0xFF{marker:02X} segment (truncated file)")
}

fn be16(data: &[u8], at: usize, what: &str) -> Check<u16> {
    match data.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(format!("{what} segment is too short")),
    }
}

fn byte(data: &[u8], at: usize, what: &str) -> Check<u8> {
    data.get(at).copied().ok_or_else(|| format!("{what} segment is too short"))
}

/// A component of the frame and what the scans have coded of it.
struct Component {
    id: u8,
    h: usize,
    v: usize,
    /// Blocks across and down when the component is scanned alone.
    blocks_wide: usize,
    blocks_high: usize,
    /// The successive-approximation bit each coefficient was last coded to.
    coded_to: [Option<u8>; 64],
    /// Per block, which AC coefficients are nonzero (progressive
    /// refinement scans read a correction bit for each of them).
    nonzero: Vec<u64>,
}

struct Frame {
    progressive: bool,
    components: Vec<Component>,
    mcus_wide: usize,
    mcus_high: usize,
}

struct JpegFile<'a> {
    data: &'a [u8],
    frame: Option<Frame>,
    tables: Tables,
    restart_interval: usize,
    scans: usize,
}

/// The most scans a file may hold, zune-jpeg's limit (a progressive file
/// has about ten; each scan costs a pass over its blocks).
const MAX_SCANS: usize = 100;

impl JpegFile<'_> {
    fn start_frame(&mut self, s: &[u8], progressive: bool) -> Check<()> {
        if self.frame.is_some() {
            return Err("a second frame header".into());
        }
        let (height, width, count) = (be16(s, 1, "SOF")? as usize, be16(s, 3, "SOF")? as usize, byte(s, 5, "SOF")? as usize);
        if width == 0 || height == 0 || !(1..=4).contains(&count) {
            return Err(format!("the frame header claims {width}x{height} pixels in {count} components"));
        }
        let mut components = Vec::with_capacity(count);
        for c in 0..count {
            let (id, hv) = (byte(s, 6 + 3 * c, "SOF")?, byte(s, 7 + 3 * c, "SOF")?);
            let (h, v) = ((hv >> 4) as usize, (hv & 15) as usize);
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return Err(format!("component {id} has sampling factors {h}x{v} (1 to 4 expected)"));
            }
            components.push(Component { id, h, v, blocks_wide: 0, blocks_high: 0, coded_to: [None; 64], nonzero: Vec::new() });
        }
        let hmax = components.iter().map(|c| c.h).max().unwrap_or(1);
        let vmax = components.iter().map(|c| c.v).max().unwrap_or(1);
        for c in &mut components {
            c.blocks_wide = (width * c.h).div_ceil(hmax).div_ceil(8);
            c.blocks_high = (height * c.v).div_ceil(vmax).div_ceil(8);
        }
        let frame = Frame { progressive, components, mcus_wide: width.div_ceil(8 * hmax), mcus_high: height.div_ceil(8 * vmax) };
        self.frame = Some(frame);
        Ok(())
    }

    /// Walks the scan whose header is `s` and whose data starts at `pos`;
    /// the position of the marker after it.
    fn scan(&mut self, s: &[u8], pos: usize) -> Check<usize> {
        let frame = self.frame.as_mut().ok_or("a scan before the frame header")?;
        self.scans += 1;
        if self.scans > MAX_SCANS {
            return Err(format!("more than {MAX_SCANS} scans"));
        }
        let header = ScanHeader::parse(s, frame)?;
        let kind = header.kind(frame.progressive);
        for &(c, _, _) in &header.components {
            let component = &mut frame.components[c];
            if matches!(kind, Kind::AcFirst | Kind::AcRefine) && component.nonzero.is_empty() {
                let blocks = component.blocks_wide * component.blocks_high;
                component.nonzero.try_reserve_exact(blocks).map_err(|_| format!("cannot allocate {blocks} block flags"))?;
                component.nonzero.resize(blocks, 0);
            }
        }
        let needs_dc = matches!(kind, Kind::Sequential | Kind::DcFirst);
        let needs_ac = matches!(kind, Kind::Sequential | Kind::AcFirst | Kind::AcRefine);
        for &(_, dc, ac) in &header.components {
            if needs_dc {
                self.tables.ensure(0, dc)?;
            }
            if needs_ac {
                self.tables.ensure(1, ac)?;
            }
        }
        let tables = &self.tables;
        let coders: Vec<_> = header
            .components
            .iter()
            .map(|&(c, dc, ac)| (c, needs_dc.then(|| tables.get(0, dc)).flatten(), needs_ac.then(|| tables.get(1, ac)).flatten()))
            .collect();
        let interleaved = header.components.len() > 1;
        let (units, unit_blocks) = if interleaved {
            let per_mcu = header.components.iter().map(|&(c, _, _)| frame.components[c].h * frame.components[c].v).sum();
            (frame.mcus_wide * frame.mcus_high, per_mcu)
        } else {
            let c = &frame.components[header.components[0].0];
            (c.blocks_wide * c.blocks_high, 1)
        };
        let total = units * unit_blocks;
        let mut walk = ScanWalk { bits: Bits::new(self.data, pos), eobrun: 0, kind, header: &header };
        let mut done = 0;
        for unit in 0..units {
            if self.restart_interval > 0 && unit > 0 && unit % self.restart_interval == 0 {
                walk.restart().map_err(|f| f.message(|| format!("a restart marker is missing after block {done} (corrupt file)")))?;
            }
            for &(c, dc, ac) in &coders {
                let component = &mut frame.components[c];
                let repeat = if interleaved { component.h * component.v } else { 1 };
                for _ in 0..repeat {
                    let flags = if interleaved { None } else { component.nonzero.get_mut(unit) };
                    walk.block(dc, ac, flags).map_err(|f| {
                        f.message(|| {
                            format!("the scan data ends after {done} of the {total} blocks the header claims (truncated or corrupt file)")
                        })
                    })?;
                    done += 1;
                }
            }
        }
        let end = walk.bits.pos;
        for &(c, _, _) in &header.components {
            for k in header.start..=header.end.min(63) {
                frame.components[c].coded_to[k] = Some(header.low_bit);
            }
        }
        Ok(end)
    }

    /// The checks once the end-of-image marker is reached.
    fn finish(&self) -> Check<()> {
        let frame = self.frame.as_ref().ok_or("no frame header before the end-of-image marker")?;
        for c in &frame.components {
            if c.coded_to.iter().all(Option::is_none) {
                return Err(format!("component {} has no scan data (truncated file)", c.id));
            }
            if let Some(k) = c.coded_to.iter().position(|&a| a != Some(0)) {
                return Err(format!("the scans end before coefficient {k} of component {} is complete (truncated file)", c.id));
            }
        }
        Ok(())
    }
}

/// The components a scan codes (frame index, DC table, AC table), its
/// spectral band and successive-approximation bits.
struct ScanHeader {
    components: Vec<(usize, u8, u8)>,
    start: usize,
    end: usize,
    high_bit: u8,
    low_bit: u8,
}

impl ScanHeader {
    fn parse(s: &[u8], frame: &Frame) -> Check<ScanHeader> {
        let count = byte(s, 0, "SOS")? as usize;
        if !(1..=4).contains(&count) {
            return Err(format!("a scan of {count} components (1 to 4 expected)"));
        }
        let mut components = Vec::with_capacity(count);
        for i in 0..count {
            let (id, tables) = (byte(s, 1 + 2 * i, "SOS")?, byte(s, 2 + 2 * i, "SOS")?);
            let c = frame
                .components
                .iter()
                .position(|c| c.id == id)
                .ok_or_else(|| format!("a scan of component {id}, which the frame lacks"))?;
            components.push((c, tables >> 4, tables & 15));
        }
        let at = 1 + 2 * count;
        let (start, end, bits) = (byte(s, at, "SOS")? as usize, byte(s, at + 1, "SOS")? as usize, byte(s, at + 2, "SOS")?);
        let header = ScanHeader { components, start, end, high_bit: bits >> 4, low_bit: bits & 15 };
        if frame.progressive && (start > end || end > 63 || (start == 0 && end != 0) || (start > 0 && count > 1)) {
            return Err(format!("a progressive scan of coefficients {start} to {end} in {count} components"));
        }
        if !frame.progressive {
            return Ok(ScanHeader { start: 0, end: 63, high_bit: 0, low_bit: 0, ..header });
        }
        Ok(header)
    }

    fn kind(&self, progressive: bool) -> Kind {
        match (progressive, self.start, self.high_bit) {
            (false, _, _) => Kind::Sequential,
            (true, 0, 0) => Kind::DcFirst,
            (true, 0, _) => Kind::DcRefine,
            (true, _, 0) => Kind::AcFirst,
            (true, _, _) => Kind::AcRefine,
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Sequential,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

struct ScanWalk<'a, 'h> {
    bits: Bits<'a>,
    eobrun: u32,
    kind: Kind,
    header: &'h ScanHeader,
}

impl ScanWalk<'_, '_> {
    /// Consumes the restart marker at the end of an interval.
    fn restart(&mut self) -> Result<(), Fault> {
        self.eobrun = 0;
        self.bits.restart()
    }

    /// Skips one block's codes; `nonzero` is the block's coefficient flags
    /// (AC scans of a progressive frame).
    fn block(&mut self, dc: Option<&Huffman>, ac: Option<&Huffman>, nonzero: Option<&mut u64>) -> Result<(), Fault> {
        let (start, end) = (self.header.start, self.header.end);
        match (self.kind, dc, ac) {
            (Kind::Sequential, Some(dc), Some(ac)) => {
                self.dc(dc)?;
                let mut k = 1;
                while k < 64 {
                    let (run, size) = split(self.bits.decode(ac)?);
                    if size == 0 && run != 15 {
                        break;
                    }
                    self.bits.bits(size)?;
                    k += run as usize + 1;
                }
                Ok(())
            }
            (Kind::DcFirst, Some(dc), _) => self.dc(dc),
            (Kind::DcRefine, _, _) => self.bits.bit().map(drop),
            (Kind::AcFirst, _, Some(ac)) => {
                let mut flags = 0u64;
                if self.eobrun > 0 {
                    self.eobrun -= 1;
                } else {
                    let mut k = start;
                    while k <= end {
                        let (run, size) = split(self.bits.decode(ac)?);
                        if size == 0 && run < 15 {
                            self.eobrun = (1 << run) - 1 + self.bits.bits(run)?;
                            break;
                        }
                        k += run as usize;
                        if size > 0 {
                            self.bits.bits(size)?;
                            flags |= 1u64.checked_shl(k as u32).unwrap_or(0);
                        }
                        k += 1;
                    }
                }
                if let Some(nonzero) = nonzero {
                    *nonzero |= flags;
                }
                Ok(())
            }
            (Kind::AcRefine, _, Some(ac)) => {
                let mut scratch = 0;
                self.refine(ac, nonzero.unwrap_or(&mut scratch))
            }
            _ => Err(Fault::Corrupt("a scan without the Huffman tables it needs".into())),
        }
    }

    fn dc(&mut self, dc: &Huffman) -> Result<(), Fault> {
        let size = self.bits.decode(dc)? as u32;
        if size > 16 {
            return Err(Fault::Corrupt(format!("a DC difference of {size} bits (corrupt file)")));
        }
        self.bits.bits(size).map(drop)
    }

    /// An AC refinement scan's block, as libjpeg's `decode_mcu_AC_refine`
    /// reads it.
    fn refine(&mut self, ac: &Huffman, nonzero: &mut u64) -> Result<(), Fault> {
        let (mut k, end) = (self.header.start, self.header.end);
        let is_set = |flags: u64, k: usize| (flags >> k) & 1 == 1;
        if self.eobrun == 0 {
            while k <= end {
                let (run, size) = split(self.bits.decode(ac)?);
                let mut zeros = run as i32;
                if size != 0 {
                    self.bits.bit()?;
                } else if run != 15 {
                    self.eobrun = (1 << run) + self.bits.bits(run)?;
                    break;
                }
                while k <= end {
                    if is_set(*nonzero, k) {
                        self.bits.bit()?;
                    } else {
                        zeros -= 1;
                        if zeros < 0 {
                            break;
                        }
                    }
                    k += 1;
                }
                if size != 0 && k <= end {
                    *nonzero |= 1 << k;
                }
                k += 1;
            }
        }
        if self.eobrun > 0 {
            while k <= end {
                if is_set(*nonzero, k) {
                    self.bits.bit()?;
                }
                k += 1;
            }
            self.eobrun -= 1;
        }
        Ok(())
    }
}

/// An AC symbol's zero run and magnitude size.
fn split(symbol: u8) -> (u32, u32) {
    ((symbol >> 4) as u32, (symbol & 15) as u32)
}
