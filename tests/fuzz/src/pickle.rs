//! PyTorch `torch.save` checkpoints: `TorchCheckpoint::from_bytes`, then
//! every tensor's `bytes` and `load` on the CPU (its values read back), and
//! the whole checkpoint written to safetensors.
//!
//! Seeds are tessera-hf's fixtures, written by real `torch.save`
//! (crates/hf/tests/fixtures/pickle): a state dict of eleven dtypes with
//! scalar and empty tensors, float8 and unsigned tensors of
//! `_rebuild_tensor_v3`, tied weights, strided, sliced and expanded views,
//! a module's OrderedDict with `_metadata`, a tensor with attributes, a
//! training checkpoint, a big-endian archive, a pickle of protocol 4
//! (frames, memoize, STACK_GLOBAL), and two refused files (a pickle
//! calling `os.system`, a view outside its storage).
//!
//! Mutations of the archive: truncation at every record boundary, entries
//! removed, doubled, one byte short or long, havoc anywhere. Most
//! mutations change `data.pkl` and re-zip it with a correct CRC, so that
//! they reach the unpickler: truncation at every byte, every byte set to
//! 0xff or 0x00, each GLOBAL replaced by refused, misplaced and
//! mistyped globals, each small integer (sizes, strides, offsets, storage
//! sizes) replaced by huge, negative and boundary integers, opcodes
//! inserted (deep MARK nesting, memo references, extension codes), and
//! havoc; and the byte order record set to `big` or garbage.

use crate::mutate;
use crate::{fill, Case, Outcome, Rng, TempDir};
use tessera_hf::TorchCheckpoint;
use tessera_tensor::Device;

/// The target's name.
pub const TARGET: &str = "pickle";
/// Cases in the corpus.
pub const CASES: usize = 8000;

/// The name files are given in error messages.
const FILE_NAME: &str = "fuzz.pt";

macro_rules! fixture {
    ($name:literal) => {
        ($name, include_bytes!(concat!("../../../crates/hf/tests/fixtures/pickle/", $name, ".pt")).as_slice())
    };
}

/// The seed files: tessera-hf's torch.save fixtures.
const SEEDS: [(&str, &[u8]); 12] = [
    fixture!("state_dict"),
    fixture!("new_dtypes"),
    fixture!("tied"),
    fixture!("views"),
    fixture!("ordered"),
    fixture!("attributes"),
    fixture!("training"),
    fixture!("model_key"),
    fixture!("big_endian"),
    fixture!("protocol4"),
    fixture!("os_system"),
    fixture!("oob_stride"),
];

/// Globals put in place of a seed's: refused ones, allowed ones in the
/// wrong place, and near misses of allowed names.
const GLOBALS: [&str; 14] = [
    "os\nsystem",
    "posix\nsystem",
    "__builtin__\neval",
    "builtins\ngetattr",
    "subprocess\nPopen",
    "torch\nload",
    "torch._utils\n_rebuild_qtensor",
    "torch._utils\n_rebuild_tensor_v3",
    "torch._tensor\n_rebuild_from_type_v2",
    "collections\nOrderedDict",
    "torch\nFloatStorage",
    "torch\nfloat8_e4m3fn",
    "torch\nTensor",
    "_codecs\nencode",
];

/// Integers put in place of a seed's small ones, as pickle opcodes: zero,
/// boundaries of each width, negative, beyond 64 bits.
const INTEGERS: [&[u8]; 12] = [
    b"K\x00",
    b"K\xff",
    b"M\xff\xff",
    b"J\xff\xff\xff\xff",
    b"J\xff\xff\xff\x7f",
    b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x40",
    b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01",
    b"\x8a\x05\x00\x00\x00\x00\x01",
    b"N",
    b"X\x01\x00\x00\x002",
];

/// Opcode sequences inserted into a pickle: deep nesting, bad memo
/// references, refused extensions and buffers, stray STOPs and POPs.
fn insertions() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("marks", b"(".repeat(5000)),
        ("lists", [b"]".repeat(3000), b"a".repeat(2999)].concat()),
        ("tuples", [b"K\x01".as_slice(), &b"\x85".repeat(3000)].concat()),
        ("memo-get", b"h\xfe".to_vec()),
        ("memo-put-get", b"N\x94h\x00".to_vec()),
        ("ext1", b"\x82\x01".to_vec()),
        ("next-buffer", b"\x97".to_vec()),
        ("stop", b".".to_vec()),
        ("pop", b"0".to_vec()),
        ("pop-mark", b"1".to_vec()),
        ("build", b"}b".to_vec()),
        ("persid", b"N\x85Q".to_vec()),
        ("long4", b"\x8b\xff\xff\xff\x7f".to_vec()),
        ("unicode8", b"\x8d\xff\xff\xff\xff\xff\xff\xff\xff".to_vec()),
    ]
}

// ---------------------------------------------------------------- zips

/// One entry of a seed archive.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    data: Vec<u8>,
}

/// A parsed seed: its bytes, entries, and the record boundaries of its zip.
#[derive(Clone, Debug)]
struct Seed {
    name: &'static str,
    bytes: Vec<u8>,
    entries: Vec<Entry>,
    boundaries: Vec<usize>,
}

fn u16_at(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> usize {
    mutate::read_u32_le(b, at).expect("a seed record field") as usize
}

impl Seed {
    /// Reads a seed archive (valid, without zip64 records: the fixtures).
    fn parse(name: &'static str, bytes: &[u8]) -> Seed {
        let eocd = bytes.len() - 22;
        let (count, mut at) = (u16_at(bytes, eocd + 10), u32_at(bytes, eocd + 16));
        let mut entries = Vec::with_capacity(count);
        let mut boundaries = vec![at, eocd];
        for _ in 0..count {
            let (size, local) = (u32_at(bytes, at + 24), u32_at(bytes, at + 42));
            let variable = u16_at(bytes, at + 28) + u16_at(bytes, at + 30) + u16_at(bytes, at + 32);
            let name = String::from_utf8(bytes[at + 46..at + 46 + u16_at(bytes, at + 28)].to_vec()).expect("a seed entry name");
            let start = local + 30 + u16_at(bytes, local + 26) + u16_at(bytes, local + 28);
            entries.push(Entry { name, data: bytes[start..start + size].to_vec() });
            boundaries.extend([at, local, local + 30, start, start + size]);
            at += 46 + variable;
        }
        Seed { name, bytes: bytes.to_vec(), entries, boundaries }
    }

    /// The index of the entry whose name ends with `suffix`.
    fn find(&self, suffix: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.name.ends_with(suffix))
    }

    /// The pickle's bytes.
    fn pickle(&self) -> &[u8] {
        self.find("/data.pkl").map_or(&[][..], |i| &self.entries[i].data)
    }

    /// The archive with the pickle replaced (and a correct CRC).
    fn with_pickle(&self, pickle: Vec<u8>) -> Vec<u8> {
        let mut entries = self.entries.clone();
        if let Some(i) = self.find("/data.pkl") {
            entries[i].data = pickle;
        }
        zip_of(&entries)
    }
}

/// A stored zip of `entries`, laid out as torch lays it out: sizes and
/// CRCs in the central directory only (the data-descriptor flag set).
fn zip_of(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let offset = out.len() as u32;
        let name = entry.name.as_bytes();
        out.extend_from_slice(b"PK\x03\x04\x00\x00\x08\x08\x00\x00\x00\x00\x00\x00");
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name);
        out.extend_from_slice(&entry.data);
        let len = (entry.data.len() as u32).to_le_bytes();
        central.extend_from_slice(b"PK\x01\x02\x00\x00\x00\x00\x08\x08\x00\x00\x00\x00\x00\x00");
        central.extend_from_slice(&crc32(&entry.data).to_le_bytes());
        central.extend_from_slice(&len);
        central.extend_from_slice(&len);
        central.extend_from_slice(&(name.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

/// The zip CRC-32 (IEEE, reflected), bitwise: the corpus's files are small.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn seeds() -> Vec<Seed> {
    SEEDS.iter().map(|(name, bytes)| Seed::parse(name, bytes)).collect()
}

// ------------------------------------------------------------ mutations

/// The GLOBAL opcodes of a pickle (`c` then two lines of a dotted name):
/// where each begins and where its text ends. The scan resumes after each
/// one's text, so that a `c` inside a module name is not taken for one.
fn globals(pickle: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < pickle.len() {
        let rest = &pickle[at + 1..];
        let mut lines = rest.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i);
        let end = match (pickle[at], lines.next(), lines.next()) {
            (b'c', Some(_), Some(second)) if second < 80 => {
                let text = &rest[..second];
                let named = text.iter().all(|&b| b == b'\n' || b == b'.' || b == b'_' || b.is_ascii_alphanumeric());
                named.then_some(at + 1 + second + 1)
            }
            _ => None,
        };
        match end {
            Some(end) => {
                out.push((at, end));
                at = end;
            }
            None => at += 1,
        }
    }
    out
}

/// The positions of BININT1 opcodes (`K` and its byte) that sit between
/// two opcodes a pickle of a tensor has around its integers.
fn small_ints(pickle: &[u8]) -> Vec<usize> {
    (1..pickle.len().saturating_sub(2))
        .filter(|&i| pickle[i] == b'K' && matches!(pickle[i + 2], b'K' | b't' | 0x85 | 0x86 | 0x87 | b'Q' | 0x89 | 0x88))
        .collect()
}

fn splice(bytes: &[u8], range: std::ops::Range<usize>, with: &[u8]) -> Vec<u8> {
    [&bytes[..range.start], with, &bytes[range.end..]].concat()
}

/// Pickle mutations of one seed, each re-zipped.
fn pickle_mutations(seed: &Seed, everything: bool, out: &mut Vec<Case>) {
    let pickle = seed.pickle();
    let mut push = |label: String, p: Vec<u8>| out.push(Case::bytes(format!("{}/pkl/{label}", seed.name), seed.with_pickle(p)));
    let lengths: Vec<usize> = if everything { (0..pickle.len()).collect() } else { (0..pickle.len()).step_by(7).collect() };
    for len in lengths {
        push(format!("truncate@{len}"), pickle[..len].to_vec());
    }
    if everything {
        for at in 0..pickle.len() {
            // Alternating values: a byte of a length field becomes huge
            // or zero, an opcode becomes an unknown one or NONE-like.
            let v = if at % 2 == 0 { 0xff } else { 0x00 };
            push(format!("set[{at}]={v:#x}"), mutate::overwrite(pickle, at, &[v]));
        }
    }
    for (i, (start, end)) in globals(pickle).into_iter().enumerate() {
        for global in GLOBALS {
            let text = [b"c".as_slice(), global.as_bytes(), b"\n"].concat();
            push(format!("global#{i}={}", global.replace('\n', ".")), splice(pickle, start..end, &text));
        }
    }
    // Four of the integers at each place, a different four at the next:
    // every integer reaches every kind of field across the seeds.
    for (k, at) in small_ints(pickle).into_iter().enumerate() {
        for j in (0..4).map(|j| (4 * k + j) % INTEGERS.len()) {
            push(format!("int@{at}#{j}"), splice(pickle, at..at + 2, INTEGERS[j]));
        }
    }
    for (label, ops) in insertions() {
        for at in [2, pickle.len() / 2, pickle.len().saturating_sub(1)] {
            let at = at.min(pickle.len());
            push(format!("insert-{label}@{at}"), splice(pickle, at..at, &ops));
        }
    }
}

/// Archive mutations of one seed: truncation at every record boundary,
/// storage entries removed or resized, the byte order record changed.
fn archive_mutations(seed: &Seed, truncations: bool, out: &mut Vec<Case>) {
    let mut push = |label: String, bytes: Vec<u8>| out.push(Case::bytes(format!("{}/zip/{label}", seed.name), bytes));
    if truncations {
        for len in mutate::boundary_lengths(seed.bytes.len(), &seed.boundaries) {
            push(format!("truncate@{len}"), mutate::truncate(&seed.bytes, len));
        }
    }
    for (i, entry) in seed.entries.iter().enumerate() {
        let mut without = seed.entries.clone();
        without.remove(i);
        push(format!("without-{}", entry.name), zip_of(&without));
        if entry.name.contains("/data/") {
            for (label, data) in
                [("short", entry.data[..entry.data.len().saturating_sub(1)].to_vec()), ("long", [entry.data.as_slice(), &[0]].concat())]
            {
                let mut entries = seed.entries.clone();
                entries[i].data = data;
                push(format!("{label}-{}", entry.name), zip_of(&entries));
            }
        }
    }
    if let Some(i) = seed.find("/byteorder") {
        for order in [&b"big"[..], b"middle", b"", b"little\n"] {
            let mut entries = seed.entries.clone();
            entries[i].data = order.to_vec();
            push(format!("byteorder={}", String::from_utf8_lossy(order)), zip_of(&entries));
        }
    }
    let mut twice = seed.entries.clone();
    twice.extend(seed.entries.first().cloned());
    push("entry-twice".into(), zip_of(&twice));
    push("same-bytes-rezipped".into(), zip_of(&seed.entries));
}

/// The systematic cases: the seeds, the archive mutations of each (the
/// truncations of the first three: every zip record is in them), the
/// pickle mutations of each (every byte of the first seed's pickle).
fn systematic(seeds: &[Seed]) -> Vec<Case> {
    let mut out = vec![Case::bytes("empty-file", Vec::new()), Case::bytes("legacy-magic", b"\x80\x02\x8a\x0a".to_vec())];
    for seed in seeds {
        out.push(Case::bytes(format!("{}/valid", seed.name), seed.bytes.clone()));
    }
    for (i, seed) in seeds.iter().enumerate() {
        archive_mutations(seed, i < 3, &mut out);
        pickle_mutations(seed, i == 0, &mut out);
    }
    out
}

/// A random case: havoc in a seed's pickle (re-zipped) or anywhere in its
/// archive.
fn random_case(seeds: &[Seed], rng: &mut Rng, i: usize) -> Case {
    let seed = rng.pick(seeds);
    if rng.one_in(6) {
        let (label, bytes) = mutate::havoc(&seed.bytes, rng, 0..seed.bytes.len());
        return Case::bytes(format!("{}/random#{i}/zip/{label}", seed.name), bytes);
    }
    let pickle = seed.pickle();
    let (label, pickle) = mutate::havoc(pickle, rng, 0..pickle.len());
    Case::bytes(format!("{}/random#{i}/pkl/{label}", seed.name), seed.with_pickle(pickle))
}

/// [`CASES`] cases from `seed`.
pub fn corpus(seed: u64) -> Vec<Case> {
    let mut rng = Rng::for_stream(seed, TARGET);
    let seeds = seeds();
    fill(systematic(&seeds), CASES, &mut rng, |rng, i| random_case(&seeds, rng, i))
}

// ------------------------------------------------------------------ run

/// Opens the bytes as a checkpoint, reads and loads every tensor (each even
/// when another fails), then writes the whole checkpoint to safetensors;
/// the first error is returned.
pub fn load_all(bytes: &[u8]) -> tessera_hf::Result<usize> {
    let checkpoint = TorchCheckpoint::from_bytes(FILE_NAME, bytes.to_vec())?;
    let cpu = Device::cpu();
    let mut first_error = None;
    for t in checkpoint.tensors() {
        let result = checkpoint.bytes(&t.name).map(|b| {
            assert_eq!(b.len(), t.size_in_bytes(), "invariant: tensor '{}' reads as many bytes as it holds", t.name);
        });
        let result = result.and_then(|()| checkpoint.load(&t.name, &cpu));
        match result {
            Ok(loaded) => {
                assert_eq!(loaded.dims(), t.shape.as_slice(), "invariant: tensor '{}' loads with its shape", t.name);
                let values = loaded.to_f64_vec()?;
                assert_eq!(values.len(), t.numel(), "invariant: tensor '{}' has as many values as elements", t.name);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let dir = TempDir::new(TARGET);
    let report = checkpoint.write_safetensors(&dir.path().join("out.safetensors"), |n| Some(n.to_string()))?;
    assert_eq!(report.written.len(), checkpoint.len(), "invariant: every tensor is written");
    Ok(checkpoint.len())
}

/// Runs one case.
pub fn run(case: &Case) -> Outcome {
    Outcome::of(load_all(case.main()))
}

/// libFuzzer's input: the bytes are the checkpoint file.
pub fn from_fuzz_input(data: &[u8]) -> Case {
    Case::bytes("libfuzzer", data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_round_trip_through_the_corpus_zip_writer() {
        for seed in seeds() {
            let rezipped = zip_of(&seed.entries);
            let original = load_all(&seed.bytes);
            let again = load_all(&rezipped);
            assert_eq!(original.is_ok(), again.is_ok(), "{}", seed.name);
            assert!(!seed.pickle().is_empty(), "{}", seed.name);
        }
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert!(load_all(SEEDS[0].1).is_ok());
        let refused = load_all(SEEDS[10].1).unwrap_err().to_string();
        assert!(refused.contains("refused global 'os.system'"), "{refused}");
    }

    #[test]
    fn mutations_find_the_pickles_globals_and_integers() {
        let seed = &seeds()[0];
        let found: Vec<&[u8]> = globals(seed.pickle()).into_iter().map(|(a, b)| &seed.pickle()[a..b]).collect();
        assert!(found.contains(&&b"ctorch._utils\n_rebuild_tensor_v2\n"[..]), "{found:?}");
        assert!(
            found.iter().all(|g| g.starts_with(b"ctorch\n") || g.starts_with(b"ctorch.") || g.starts_with(b"ccollections\n")),
            "{found:?}"
        );
        assert!(small_ints(seed.pickle()).len() >= 10);
        let systematic = systematic(&seeds()).len();
        assert!(systematic < CASES, "{systematic} systematic cases leave no room for random ones");
        assert_eq!(corpus(1).len(), CASES);
    }
}
