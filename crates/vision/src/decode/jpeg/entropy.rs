//! The entropy-coded side of a JPEG: a bit reader over a scan's data and
//! Huffman tables, with the standard's tables for files that define none.

use super::{next_marker_or_restart, Check};

/// Why walking a scan stopped.
pub(super) enum Fault {
    /// The entropy-coded data ended (a marker or the end of the file).
    Short,
    /// The data is not what the tables allow.
    Corrupt(String),
}

impl Fault {
    pub(super) fn message(self, short: impl FnOnce() -> String) -> String {
        match self {
            Fault::Short => short(),
            Fault::Corrupt(m) => m,
        }
    }
}

/// Reads entropy-coded bits, removing stuffed zero bytes and stopping at a
/// marker.
pub(super) struct Bits<'a> {
    data: &'a [u8],
    /// The next byte to read into `acc`.
    pub(super) pos: usize,
    /// The unread bits: the low `left` bits of `acc`.
    acc: u64,
    left: u32,
    /// A marker or the end of the file was reached at `pos`.
    ended: bool,
}

impl<'a> Bits<'a> {
    pub(super) fn new(data: &'a [u8], pos: usize) -> Self {
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
    pub(super) fn bits(&mut self, n: u32) -> Result<u32, Fault> {
        if self.left < n {
            self.refill();
            if self.left < n {
                return Err(Fault::Short);
            }
        }
        self.left -= n;
        Ok(((self.acc >> self.left) & ((1 << n) - 1)) as u32)
    }

    pub(super) fn bit(&mut self) -> Result<u32, Fault> {
        self.bits(1)
    }

    pub(super) fn decode(&mut self, table: &Huffman) -> Result<u8, Fault> {
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
    pub(super) fn restart(&mut self) -> Result<(), Fault> {
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

fn bad_code() -> Fault {
    Fault::Corrupt("the scan data holds a code its Huffman table lacks (corrupt file)".into())
}

/// A canonical Huffman table in the form of the JPEG standard's F.2.2.3
/// decoding procedure.
#[derive(Clone)]
pub(super) struct Huffman {
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
pub(super) struct Tables {
    defined: [[Option<Huffman>; 4]; 2],
}

impl Tables {
    pub(super) fn define(&mut self, s: &[u8]) -> Check<()> {
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
    pub(super) fn ensure(&mut self, class: usize, id: u8) -> Check<()> {
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
    pub(super) fn get(&self, class: usize, id: u8) -> Option<&Huffman> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code of `table` (value, length, code), in canonical order.
    fn codes(counts: &[u8], values: &[u8]) -> Vec<(u8, usize, u32)> {
        let (mut out, mut code, mut k) = (Vec::new(), 0u32, 0);
        for len in 1..=16 {
            for _ in 0..counts[len - 1] {
                out.push((values[k], len, code));
                code += 1;
                k += 1;
            }
            code <<= 1;
        }
        out
    }

    #[test]
    fn every_code_of_the_standard_tables_decodes_to_its_symbol() {
        for (counts, values) in [(&STD_AC_LUMA_COUNTS, &STD_AC_LUMA_VALUES[..]), (&STD_DC_CHROMA_COUNTS, &STD_DC_VALUES[..])] {
            let table = Huffman::new(counts, values).unwrap();
            for (symbol, len, code) in codes(counts, values) {
                // The code, then 1-bits (as at the end of a scan) to more than
                // the 16 bits a table lookup reads, with 0xFF bytes stuffed.
                let bits = ((code as u64) << (40 - len)) | ((1u64 << (40 - len)) - 1);
                let raw: Vec<u8> = (0..5).map(|i| (bits >> (32 - 8 * i)) as u8).collect();
                let stuff = |bytes: &[u8]| bytes.iter().flat_map(|&b| if b == 0xFF { vec![b, 0] } else { vec![b] }).collect::<Vec<_>>();
                let (long, short) = (stuff(&raw), stuff(&raw[..len.div_ceil(8)]));
                for data in [&long, &short] {
                    let mut reader = Bits::new(data, 0);
                    assert_eq!(reader.decode(&table).ok(), Some(symbol), "code {code:b} of {len} bits");
                }
            }
        }
    }

    #[test]
    fn an_overfull_table_and_data_ending_mid_code_are_faults() {
        assert!(Huffman::new(&[3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], &[1, 2, 3]).is_err());
        let table = Huffman::new(&STD_AC_LUMA_COUNTS, &STD_AC_LUMA_VALUES).unwrap();
        // 0xFF 0xD9: the end-of-image marker where the data should go on.
        let mut reader = Bits::new(&[0xFF, 0xD9], 0);
        assert!(matches!(reader.decode(&table), Err(Fault::Short)));
    }
}
