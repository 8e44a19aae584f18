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

/// Why walking a scan stopped.
enum Fault {
    /// The entropy-coded data ended (a marker or the end of the file).
    Short,
    /// The data is not what the tables allow.
    Corrupt(String),
}

impl Fault {
    fn message(self, short: impl FnOnce() -> String) -> String {
        match self {
            Fault::Short => short(),
            Fault::Corrupt(m) => m,
        }
    }
}

/// Reads entropy-coded bits, removing stuffed zero bytes and stopping at a
/// marker.
struct Bits<'a> {
    data: &'a [u8],
    /// The next byte to read into `acc`.
    pos: usize,
    /// The unread bits: the low `left` bits of `acc`.
    acc: u64,
    left: u32,
    /// A marker or the end of the file was reached at `pos`.
    ended: bool,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        Bits { data, pos, acc: 0, left: 0, ended: false }
    }

    fn refill(&mut self) {
        while self.left <= 56 && !self.ended {
            let b = self.data.get(self.pos).copied();
            match (b, self.data.get(self.pos + 1)) {
                (Some(0xFF), Some(0x00)) => self.pos += 2,
                (Some(0xFF), _) | (None, _) => {
                    self.ended = true;
                    break;
                }
                (Some(_), _) => self.pos += 1,
            }
            self.acc = (self.acc << 8) | b.unwrap_or(0) as u64;
            self.left += 8;
        }
    }

    /// The next `n` (at most 16) bits.
    fn bits(&mut self, n: u32) -> Result<u32, Fault> {
        if self.left < n {
            self.refill();
            if self.left < n {
                return Err(Fault::Short);
            }
        }
        self.left -= n;
        Ok(((self.acc >> self.left) & ((1 << n) - 1)) as u32)
    }

    fn bit(&mut self) -> Result<u32, Fault> {
        self.bits(1)
    }

    fn decode(&mut self, table: &Huffman) -> Result<u8, Fault> {
        if self.left < 16 {
            self.refill();
        }
        if self.left >= 16 {
            let next = ((self.acc >> (self.left - 16)) & 0xFFFF) as i32;
            let entry = table.lookup[(next >> (16 - LOOKUP_BITS)) as usize];
            if entry != 0 {
                self.left -= (entry >> 8) as u32;
                return Ok(entry as u8);
            }
            for len in LOOKUP_BITS as usize + 1..=16 {
                let code = next >> (16 - len);
                if code <= table.max_code[len] {
                    self.left -= len as u32;
                    return Ok(table.value(len, code));
                }
            }
            return Err(bad_code());
        }
        // Near the end of the data: a bit at a time.
        let mut code = 0i32;
        for len in 1..=16 {
            code = (code << 1) | self.bit()? as i32;
            if code <= table.max_code[len] {
                return Ok(table.value(len, code));
            }
        }
        Err(bad_code())
    }

    /// Drops the bits left of the current restart interval and reads the
    /// restart marker that must follow (after any extraneous bytes).
    fn restart(&mut self) -> Result<(), Fault> {
        self.acc = 0;
        self.left = 0;
        self.ended = false;
        let (marker, after) = next_marker_or_restart(self.data, self.pos).ok_or(Fault::Short)?;
        if !(0xD0..=0xD7).contains(&marker) {
            return Err(Fault::Short);
        }
        self.pos = after;
        Ok(())
    }
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

fn bad_code() -> Fault {
    Fault::Corrupt("the scan data holds a code its Huffman table lacks (corrupt file)".into())
}

/// An AC symbol's zero run and magnitude size.
fn split(symbol: u8) -> (u32, u32) {
    ((symbol >> 4) as u32, (symbol & 15) as u32)
}

/// A canonical Huffman table in the form of the JPEG standard's F.2.2.3
/// decoding procedure.
#[derive(Clone)]
struct Huffman {
    /// The largest code of each length (-1: none).
    max_code: [i32; 17],
    min_code: [i32; 17],
    /// Index into `values` of each length's first code.
    first_value: [usize; 17],
    values: Vec<u8>,
    /// For the next [`LOOKUP_BITS`] bits, the length of the code they start
    /// with in the high byte and its symbol in the low one (0: a longer
    /// code).
    lookup: Vec<u16>,
}

/// How many bits a table lookup decodes at once.
const LOOKUP_BITS: u32 = 9;

impl Huffman {
    /// The symbol of the `len`-bit `code`, which must be one of the table's.
    fn value(&self, len: usize, code: i32) -> u8 {
        self.values[self.first_value[len] + (code - self.min_code[len]) as usize]
    }

    /// `counts[l]`: how many codes are `l + 1` bits long.
    fn new(counts: &[u8], values: &[u8]) -> Check<Huffman> {
        let mut table = Huffman {
            max_code: [-1; 17],
            min_code: [0; 17],
            first_value: [0; 17],
            values: values.to_vec(),
            lookup: vec![0; 1 << LOOKUP_BITS],
        };
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16 {
            let n = counts[len - 1] as i32;
            if n > 0 {
                table.first_value[len] = k;
                table.min_code[len] = code;
                code += n;
                k += n as usize;
                table.max_code[len] = code - 1;
            }
            if code > 1 << len {
                return Err("a Huffman table with more codes than its lengths allow".into());
            }
            code <<= 1;
        }
        for len in 1..=LOOKUP_BITS as usize {
            for code in table.min_code[len]..=table.max_code[len] {
                let symbol = table.value(len, code);
                let shift = LOOKUP_BITS as usize - len;
                let first = (code as usize) << shift;
                table.lookup[first..first + (1 << shift)].fill(((len as u16) << 8) | symbol as u16);
            }
        }
        Ok(table)
    }
}

/// The Huffman tables defined so far; a table no DHT segment defines is
/// the standard's (Annex K.3), as motion-JPEG frames expect and as
/// zune-jpeg and libjpeg-turbo assume.
#[derive(Default)]
struct Tables {
    defined: [[Option<Huffman>; 4]; 2],
}

impl Tables {
    fn define(&mut self, s: &[u8]) -> Check<()> {
        let mut at = 0;
        while at < s.len() {
            let class_id = s[at];
            let counts = s.get(at + 1..at + 17).ok_or("DHT segment is too short")?;
            let n: usize = counts.iter().map(|&c| c as usize).sum();
            let values = s.get(at + 17..at + 17 + n).ok_or("DHT segment is too short")?;
            let (class, id) = ((class_id >> 4) as usize, (class_id & 15) as usize);
            if class > 1 || id > 3 || n > 256 {
                return Err(format!("a Huffman table of class {class}, id {id} and {n} codes"));
            }
            self.defined[class][id] = Some(Huffman::new(counts, values)?);
            at += 17 + n;
        }
        Ok(())
    }

    /// Makes sure the table of `class` (0 DC, 1 AC) and `id` exists,
    /// taking the standard's where no DHT segment defined it.
    fn ensure(&mut self, class: usize, id: u8) -> Check<()> {
        let id = id as usize;
        if id > 3 {
            return Err(format!("a scan uses Huffman table {id} (0 to 3 expected)"));
        }
        if self.defined[class][id].is_none() {
            let (counts, values): (&[u8], &[u8]) = match (class, id) {
                (0, 0) => (&STD_DC_LUMA_COUNTS, &STD_DC_VALUES),
                (0, 1) => (&STD_DC_CHROMA_COUNTS, &STD_DC_VALUES),
                (1, 0) => (&STD_AC_LUMA_COUNTS, &STD_AC_LUMA_VALUES),
                (1, 1) => (&STD_AC_CHROMA_COUNTS, &STD_AC_CHROMA_VALUES),
                _ => return Err(format!("a scan uses Huffman table {id}, which no DHT segment defines")),
            };
            self.defined[class][id] = Some(Huffman::new(counts, values)?);
        }
        Ok(())
    }

    /// The table of `class` and `id`, once [`Tables::ensure`] made it.
    fn get(&self, class: usize, id: u8) -> Option<&Huffman> {
        self.defined[class].get(id as usize)?.as_ref()
    }
}

const STD_DC_LUMA_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
const STD_DC_CHROMA_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
const STD_DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const STD_AC_LUMA_COUNTS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
const STD_AC_LUMA_VALUES: [u8; 162] = [
    0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91,
    0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52, 0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A,
    0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53,
    0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79,
    0x7A, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5,
    0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9,
    0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF1, 0xF2,
    0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
];
const STD_AC_CHROMA_COUNTS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
const STD_AC_CHROMA_VALUES: [u8; 162] = [
    0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14,
    0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33, 0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17,
    0x18, 0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4A,
    0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78,
    0x79, 0x7A, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0xA2, 0xA3,
    0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7,
    0xC8, 0xC9, 0xCA, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8, 0xE9, 0xEA, 0xF2,
    0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
];
