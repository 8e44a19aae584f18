//! A restricted unpickler: the pickle virtual machine of protocols 0 to 5
//! for plain data, which builds values and never runs code.
//!
//! Every object the pickle creates lives in one flat arena ([`Objects`])
//! and is referred to by its index, so that the memo, the stack and the
//! containers share objects as Python does (an `APPEND` to a list is seen
//! through every reference to it) without reference counting: a
//! self-containing list is just an index inside its own vector, and
//! dropping the arena never recurses, however deeply the pickle nests its
//! containers. The arena grows by at most one object per opcode (and is
//! capped at [`MAX_OBJECTS`]), so memory stays proportional to the pickle.
//!
//! The only names a pickle can reach are the globals of
//! [`torch::resolve_global`](super::torch::resolve_global): `GLOBAL`,
//! `STACK_GLOBAL`, `INST` and `OBJ` resolve a name there or fail with
//! "refused global 'module.name'", and `REDUCE`, `NEWOBJ` and `BUILD`
//! apply only those (see [`super::torch::call`]). Extension codes
//! (`EXT1/2/4`, names looked up in a registry the file cannot be checked
//! against), text persistent ids and out-of-band buffers are refused.

use super::torch::{self, Global, StorageRef, TensorView};
use std::collections::HashMap;

/// An object's index in the arena.
pub(crate) type Id = usize;

/// Bounds against hostile pickles. Real checkpoints stay far below them:
/// a state dict of 10 000 tensors makes about 200 000 objects and never
/// nests marks more than a few deep.
pub(crate) const MAX_OBJECTS: usize = 1 << 24;
const MAX_STACK: usize = 1 << 22;
const MAX_MARKS: usize = 1 << 12;
const MAX_MEMO: usize = 1 << 22;
/// The longest text line (a GLOBAL's module or name, an INT's digits).
const MAX_LINE: usize = 1 << 16;

/// A value the pickle built.
#[derive(Debug)]
pub(crate) enum Object {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond `i64` (its value is never needed).
    BigInt,
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// A dict or OrderedDict: its items in insertion order (a repeated key
    /// is resolved where the dict is read, the later value winning).
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    /// An allowed global (a class, function or dtype of the allow-list).
    Global(Global),
    /// A storage of the archive, from a persistent id.
    Storage(StorageRef),
    /// A tensor: a view of a storage.
    Tensor(TensorView),
}

impl Object {
    /// What the object is, in Python's words, for messages and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::None => "None",
            Object::Bool(_) => "bool",
            Object::Int(_) | Object::BigInt => "int",
            Object::Float(_) => "float",
            Object::Str(_) => "str",
            Object::Bytes(_) => "bytes",
            Object::Tuple(_) => "tuple",
            Object::List(_) => "list",
            Object::Dict(_) => "dict",
            Object::Set(_) => "set",
            Object::Global(g) => g.kind(),
            Object::Storage(_) => "storage",
            Object::Tensor(_) => "tensor",
        }
    }

    /// The value of a scalar, as Python would show it (strings quoted and
    /// cut, bytes counted); `None` for containers and tensors.
    pub fn scalar_value(&self) -> Option<String> {
        Some(match self {
            Object::None => "None".to_string(),
            Object::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            Object::Int(i) => i.to_string(),
            Object::BigInt => "an integer beyond 64 bits".to_string(),
            // Debug prints the shortest round-trip form, as Python's repr.
            Object::Float(f) => format!("{f:?}"),
            Object::Str(s) => format!("'{}'", super::shown(s)),
            Object::Bytes(b) => format!("{} bytes", b.len()),
            _ => return None,
        })
    }
}

/// The arena of objects a pickle built.
#[derive(Debug, Default)]
pub(crate) struct Objects(Vec<Object>);

impl Objects {
    /// The object `id`.
    pub fn get(&self, id: Id) -> &Object {
        &self.0[id]
    }

    /// Adds `object`, refusing past [`MAX_OBJECTS`].
    pub fn add(&mut self, object: Object) -> Result<Id, String> {
        if self.0.len() >= MAX_OBJECTS {
            return Err(format!("more than {MAX_OBJECTS} objects"));
        }
        self.0.push(object);
        Ok(self.0.len() - 1)
    }

    fn get_mut(&mut self, id: Id) -> &mut Object {
        &mut self.0[id]
    }
}

/// What the machine needs from the archive: the byte size of the storage
/// entry `<archive>/data/<key>`, if there is one.
pub(crate) type StorageSizes<'a> = dyn Fn(&str) -> Option<usize> + 'a;

/// Runs the pickle `input` to its STOP: the objects it built and the one
/// it returned. Errors name the opcode and its byte offset.
pub(crate) fn unpickle(input: &[u8], storage_size: &StorageSizes) -> Result<(Objects, Id), String> {
    let mut machine = Machine {
        input,
        pos: 0,
        objects: Objects::default(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        storages: torch::Storages::new(storage_size),
    };
    loop {
        let at = machine.pos;
        let Some(&op) = input.get(at) else {
            return Err(format!("data.pkl ends at byte {at} without a STOP opcode"));
        };
        machine.pos += 1;
        match machine.step(op) {
            Ok(Some(result)) => return Ok((machine.objects, result)),
            Ok(None) => {}
            Err(msg) => return Err(format!("data.pkl byte {at} ({}): {msg}", opcode_name(op))),
        }
    }
}

struct Machine<'a, 'b> {
    input: &'a [u8],
    pos: usize,
    objects: Objects,
    stack: Vec<Id>,
    /// The stack lengths at each open MARK.
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    storages: torch::Storages<'b>,
}

impl Machine<'_, '_> {
    /// Runs opcode `op`: `Some(result)` at STOP.
    fn step(&mut self, op: u8) -> Result<Option<Id>, String> {
        match op {
            b'.' => return self.pop().map(Some),
            0x80 => self.protocol()?,
            0x95 => self.frame()?,
            b'(' => self.mark()?,
            b'0' => self.pop_or_mark()?,
            b'1' => drop(self.pop_mark()?),
            b'2' => self.push_id(self.top()?)?,
            b'N' => self.push(Object::None)?,
            0x88 => self.push(Object::Bool(true))?,
            0x89 => self.push(Object::Bool(false))?,
            b'J' => self.binint()?,
            b'K' => self.binint1()?,
            b'M' => self.binint2()?,
            0x8a => self.long1()?,
            0x8b => self.long4()?,
            b'I' => self.text_int()?,
            b'L' => self.text_long()?,
            b'G' => self.binfloat()?,
            b'F' => self.text_float()?,
            b'X' | 0x8c | 0x8d => self.unicode(op)?,
            b'T' | b'U' => self.binstring(op)?,
            b'B' | b'C' | 0x8e | 0x96 => self.binbytes(op)?,
            b')' => self.push(Object::Tuple(Vec::new()))?,
            b't' => self.tuple_from_mark()?,
            0x85..=0x87 => self.tuple_n(usize::from(op - 0x84))?,
            b']' => self.push(Object::List(Vec::new()))?,
            b'l' => self.list_from_mark()?,
            b'a' => self.append()?,
            b'e' => self.appends()?,
            b'}' => self.push(Object::Dict(Vec::new()))?,
            b'd' => self.dict_from_mark()?,
            b's' => self.setitem()?,
            b'u' => self.setitems()?,
            0x8f => self.push(Object::Set(Vec::new()))?,
            0x90 => self.additems()?,
            0x91 => self.frozenset()?,
            b'p' | b'q' | b'r' => self.put(op)?,
            0x94 => self.memoize()?,
            b'g' | b'h' | b'j' => self.get(op)?,
            b'c' => self.global()?,
            0x93 => self.stack_global()?,
            b'i' => self.inst()?,
            b'o' => self.obj()?,
            b'R' => self.reduce()?,
            0x81 => self.newobj()?,
            0x92 => self.newobj_ex()?,
            b'b' => self.build()?,
            b'Q' => self.binpersid()?,
            b'P' => return Err("text persistent ids are not storages of a torch.save archive".to_string()),
            0x82..=0x84 => return Err(self.extension(op)),
            0x97 => return Err("out-of-band buffers are not supported".to_string()),
            0x98 => {
                self.top()?;
            }
            b'S' | b'V' => return Err("protocol 0 quoted strings are not supported (torch.save writes protocol 2)".to_string()),
            other => return Err(format!("unknown opcode {other:#04x}")),
        }
        Ok(None)
    }

    // --------------------------------------------------------- input

    /// The next `n` bytes; `n` is checked against what is left.
    fn take(&mut self, n: u64) -> Result<&[u8], String> {
        let left = self.input.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= left => {
                let bytes = &self.input[self.pos..self.pos + n];
                self.pos += n;
                Ok(bytes)
            }
            _ => Err(format!("needs {n} bytes but only {left} are left")),
        }
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        Ok(self.take(N as u64)?.try_into().expect("N bytes"))
    }

    fn take_u8(&mut self) -> Result<u8, String> {
        Ok(self.take_array::<1>()?[0])
    }

    /// A text line (without its `\n`), as UTF-8.
    fn line(&mut self) -> Result<&str, String> {
        let rest = &self.input[self.pos..];
        let Some(len) = rest.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
            return Err(format!("no line break within {} bytes", rest.len().min(MAX_LINE)));
        };
        self.pos += len + 1;
        std::str::from_utf8(&rest[..len]).map_err(|_| "the line is not UTF-8".to_string())
    }

    // --------------------------------------------------------- stack

    fn push(&mut self, object: Object) -> Result<(), String> {
        let id = self.objects.add(object)?;
        self.push_id(id)
    }

    fn push_id(&mut self, id: Id) -> Result<(), String> {
        if self.stack.len() >= MAX_STACK {
            return Err(format!("the stack holds more than {MAX_STACK} items"));
        }
        self.stack.push(id);
        Ok(())
    }

    /// The bottom of the stack's current part (above the last MARK).
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<Id, String> {
        if self.stack.len() <= self.floor() {
            return Err("stack underflow".to_string());
        }
        Ok(self.stack.pop().expect("checked non-empty"))
    }

    fn top(&self) -> Result<Id, String> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.floor() => Ok(id),
            _ => Err("stack underflow".to_string()),
        }
    }

    fn mark(&mut self) -> Result<(), String> {
        if self.marks.len() >= MAX_MARKS {
            return Err(format!("more than {MAX_MARKS} nested MARKs"));
        }
        self.marks.push(self.stack.len());
        Ok(())
    }

    /// The items above the last MARK, which is closed.
    fn pop_mark(&mut self) -> Result<Vec<Id>, String> {
        let Some(floor) = self.marks.pop() else {
            return Err("no MARK to pop to".to_string());
        };
        Ok(self.stack.split_off(floor))
    }

    /// POP: the top item, or the last MARK when nothing lies above it (as
    /// Python's unpickler does).
    fn pop_or_mark(&mut self) -> Result<(), String> {
        if self.stack.len() > self.floor() {
            self.stack.pop();
            Ok(())
        } else {
            self.pop_mark().map(drop)
        }
    }

    // ------------------------------------------------------- framing

    fn protocol(&mut self) -> Result<(), String> {
        let version = self.take_u8()?;
        if version > 5 {
            return Err(format!("pickle protocol {version} is newer than 5"));
        }
        Ok(())
    }

    /// FRAME only announces the length of what follows: checked, skipped.
    fn frame(&mut self) -> Result<(), String> {
        let len = u64::from_le_bytes(self.take_array()?);
        let left = (self.input.len() - self.pos) as u64;
        if len > left {
            return Err(format!("a frame of {len} bytes, but only {left} are left"));
        }
        Ok(())
    }

    // ------------------------------------------------------- numbers

    fn binint(&mut self) -> Result<(), String> {
        let v = i32::from_le_bytes(self.take_array()?);
        self.push(Object::Int(v.into()))
    }

    fn binint1(&mut self) -> Result<(), String> {
        let v = self.take_u8()?;
        self.push(Object::Int(v.into()))
    }

    fn binint2(&mut self) -> Result<(), String> {
        let v = u16::from_le_bytes(self.take_array()?);
        self.push(Object::Int(v.into()))
    }

    fn long1(&mut self) -> Result<(), String> {
        let n = self.take_u8()?;
        let bytes = self.take(n.into())?;
        let object = long_value(bytes);
        self.push(object)
    }

    fn long4(&mut self) -> Result<(), String> {
        let n = i32::from_le_bytes(self.take_array()?);
        let n = u64::try_from(n).map_err(|_| format!("negative LONG4 length {n}"))?;
        let bytes = self.take(n)?;
        let object = long_value(bytes);
        self.push(object)
    }

    /// INT: decimal digits, or `00`/`01` for False/True (protocol 0).
    fn text_int(&mut self) -> Result<(), String> {
        let object = match self.line()? {
            "00" => Object::Bool(false),
            "01" => Object::Bool(true),
            text => decimal(text)?,
        };
        self.push(object)
    }

    /// LONG: decimal digits with an optional `L` suffix (protocol 0).
    fn text_long(&mut self) -> Result<(), String> {
        let text = self.line()?;
        let object = decimal(text.strip_suffix('L').unwrap_or(text))?;
        self.push(object)
    }

    fn binfloat(&mut self) -> Result<(), String> {
        let v = f64::from_be_bytes(self.take_array()?);
        self.push(Object::Float(v))
    }

    fn text_float(&mut self) -> Result<(), String> {
        let text = self.line()?;
        let v: f64 = text.trim().parse().map_err(|_| format!("'{}' is not a float", super::shown(text)))?;
        self.push(Object::Float(v))
    }

    // ------------------------------------------------- text and bytes

    /// BINUNICODE (4-byte length), SHORT_BINUNICODE (1), BINUNICODE8 (8).
    fn unicode(&mut self, op: u8) -> Result<(), String> {
        let len = self.length(op)?;
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|e| format!("a string that is not UTF-8 ({e})"))?.to_string();
        self.push(Object::Str(text))
    }

    /// BINSTRING and SHORT_BINSTRING, Python 2's `str`: text when it is
    /// UTF-8 (what torch.load decodes it as), bytes otherwise.
    fn binstring(&mut self, op: u8) -> Result<(), String> {
        let len = self.length(op)?;
        let bytes = self.take(len)?.to_vec();
        let object = match String::from_utf8(bytes) {
            Ok(text) => Object::Str(text),
            Err(e) => Object::Bytes(e.into_bytes()),
        };
        self.push(object)
    }

    /// BINBYTES (4), SHORT_BINBYTES (1), BINBYTES8 and BYTEARRAY8 (8).
    fn binbytes(&mut self, op: u8) -> Result<(), String> {
        let len = self.length(op)?;
        let bytes = self.take(len)?.to_vec();
        self.push(Object::Bytes(bytes))
    }

    /// The length prefix of a string or bytes opcode.
    fn length(&mut self, op: u8) -> Result<u64, String> {
        match op {
            b'U' | b'C' | 0x8c => Ok(self.take_u8()?.into()),
            b'X' | b'B' => Ok(u32::from_le_bytes(self.take_array()?).into()),
            b'T' => {
                let n = i32::from_le_bytes(self.take_array()?);
                u64::try_from(n).map_err(|_| format!("negative length {n}"))
            }
            _ => Ok(u64::from_le_bytes(self.take_array()?)),
        }
    }

    // ---------------------------------------------------- containers

    fn tuple_from_mark(&mut self) -> Result<(), String> {
        let items = self.pop_mark()?;
        self.push(Object::Tuple(items))
    }

    fn tuple_n(&mut self, n: usize) -> Result<(), String> {
        if self.stack.len() < self.floor() + n {
            return Err("stack underflow".to_string());
        }
        let items = self.stack.split_off(self.stack.len() - n);
        self.push(Object::Tuple(items))
    }

    fn list_from_mark(&mut self) -> Result<(), String> {
        let items = self.pop_mark()?;
        self.push(Object::List(items))
    }

    fn dict_from_mark(&mut self) -> Result<(), String> {
        let items = self.pop_mark()?;
        let pairs = pairs(&items)?;
        self.push(Object::Dict(pairs))
    }

    fn frozenset(&mut self) -> Result<(), String> {
        let items = self.pop_mark()?;
        self.push(Object::Set(items))
    }

    fn append(&mut self) -> Result<(), String> {
        let value = self.pop()?;
        self.extend_list(vec![value])
    }

    fn appends(&mut self) -> Result<(), String> {
        let values = self.pop_mark()?;
        self.extend_list(values)
    }

    fn extend_list(&mut self, values: Vec<Id>) -> Result<(), String> {
        let list = self.top()?;
        match self.objects.get_mut(list) {
            Object::List(items) => items.extend(values),
            other => return Err(format!("cannot append to a {}", other.kind())),
        }
        Ok(())
    }

    fn setitem(&mut self) -> Result<(), String> {
        let value = self.pop()?;
        let key = self.pop()?;
        self.extend_dict(vec![(key, value)])
    }

    fn setitems(&mut self) -> Result<(), String> {
        let items = self.pop_mark()?;
        let pairs = pairs(&items)?;
        self.extend_dict(pairs)
    }

    fn extend_dict(&mut self, new: Vec<(Id, Id)>) -> Result<(), String> {
        let dict = self.top()?;
        match self.objects.get_mut(dict) {
            Object::Dict(items) => items.extend(new),
            other => return Err(format!("cannot set items of a {}", other.kind())),
        }
        Ok(())
    }

    fn additems(&mut self) -> Result<(), String> {
        let values = self.pop_mark()?;
        let set = self.top()?;
        match self.objects.get_mut(set) {
            Object::Set(items) => items.extend(values),
            other => return Err(format!("cannot add items to a {}", other.kind())),
        }
        Ok(())
    }

    // ---------------------------------------------------------- memo

    /// PUT (decimal line), BINPUT (1 byte), LONG_BINPUT (4 bytes).
    fn put(&mut self, op: u8) -> Result<(), String> {
        let index = self.memo_index(op)?;
        self.store(index)
    }

    fn memoize(&mut self) -> Result<(), String> {
        self.store(self.memo.len() as u64)
    }

    fn store(&mut self, index: u64) -> Result<(), String> {
        let id = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&index) {
            return Err(format!("the memo holds more than {MAX_MEMO} entries"));
        }
        self.memo.insert(index, id);
        Ok(())
    }

    /// GET (decimal line), BINGET (1 byte), LONG_BINGET (4 bytes).
    fn get(&mut self, op: u8) -> Result<(), String> {
        let index = self.memo_index(op)?;
        let Some(&id) = self.memo.get(&index) else {
            return Err(format!("memo entry {index} was never stored"));
        };
        self.push_id(id)
    }

    fn memo_index(&mut self, op: u8) -> Result<u64, String> {
        match op {
            b'q' | b'h' => Ok(self.take_u8()?.into()),
            b'r' | b'j' => Ok(u32::from_le_bytes(self.take_array()?).into()),
            _ => {
                let text = self.line()?;
                text.parse().map_err(|_| format!("'{}' is not a memo index", super::shown(text)))
            }
        }
    }

    // ------------------------------------------------------- globals

    fn global(&mut self) -> Result<(), String> {
        let module = self.line()?.to_string();
        let name = self.line()?.to_string();
        let global = torch::resolve_global(&module, &name)?;
        self.push(Object::Global(global))
    }

    fn stack_global(&mut self) -> Result<(), String> {
        let name = self.pop()?;
        let module = self.pop()?;
        let (Object::Str(module), Object::Str(name)) = (self.objects.get(module), self.objects.get(name)) else {
            return Err("STACK_GLOBAL needs two strings".to_string());
        };
        let global = torch::resolve_global(module, name)?;
        self.push(Object::Global(global))
    }

    /// INST: a class named inline, called with the items above the MARK.
    fn inst(&mut self) -> Result<(), String> {
        let module = self.line()?.to_string();
        let name = self.line()?.to_string();
        let global = torch::resolve_global(&module, &name)?;
        let args = self.pop_mark()?;
        self.call(global, args)
    }

    /// OBJ: MARK, a class and its arguments.
    fn obj(&mut self) -> Result<(), String> {
        let mut items = self.pop_mark()?;
        if items.is_empty() {
            return Err("OBJ without a class".to_string());
        }
        let class = items.remove(0);
        let global = self.callable(class)?;
        self.call(global, items)
    }

    fn reduce(&mut self) -> Result<(), String> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let global = self.callable(callable)?;
        let args = self.tuple_items(args, "REDUCE's arguments")?;
        self.call(global, args)
    }

    fn newobj(&mut self) -> Result<(), String> {
        let args = self.pop()?;
        let class = self.pop()?;
        let global = self.callable(class)?;
        let args = self.tuple_items(args, "NEWOBJ's arguments")?;
        self.instantiate(global, args)
    }

    fn newobj_ex(&mut self) -> Result<(), String> {
        let kwargs = self.pop()?;
        let args = self.pop()?;
        let class = self.pop()?;
        let global = self.callable(class)?;
        if !matches!(self.objects.get(kwargs), Object::Dict(items) if items.is_empty()) {
            return Err("NEWOBJ_EX with keyword arguments".to_string());
        }
        let args = self.tuple_items(args, "NEWOBJ_EX's arguments")?;
        self.instantiate(global, args)
    }

    /// BUILD sets an object's state: the attributes of an OrderedDict (a
    /// state dict's `_metadata`) or of a tensor, which carry no weights and
    /// are dropped. Any other object is refused.
    fn build(&mut self) -> Result<(), String> {
        let _state = self.pop()?;
        let target = self.top()?;
        match self.objects.get(target) {
            Object::Dict(_) | Object::Tensor(_) => Ok(()),
            other => Err(format!("cannot set the state of a {}", other.kind())),
        }
    }

    fn binpersid(&mut self) -> Result<(), String> {
        let pid = self.pop()?;
        let storage = self.storages.load(&self.objects, pid)?;
        self.push(Object::Storage(storage))
    }

    fn extension(&self, op: u8) -> String {
        let width = [1usize, 2, 4][usize::from(op - 0x82)];
        let code = self.input.get(self.pos..self.pos + width).map(|b| b.iter().rev().fold(0u64, |v, &x| (v << 8) | u64::from(x)));
        let code = code.map_or_else(|| "?".to_string(), |c| c.to_string());
        format!("refused extension code {code} (a global registered with copyreg, which cannot be checked)")
    }

    // ----------------------------------------------------- callables

    /// The allowed global `id` refers to, for a call.
    fn callable(&self, id: Id) -> Result<Global, String> {
        match self.objects.get(id) {
            Object::Global(g) => Ok(*g),
            other => Err(format!("cannot call a {}", other.kind())),
        }
    }

    fn tuple_items(&self, id: Id, what: &str) -> Result<Vec<Id>, String> {
        match self.objects.get(id) {
            Object::Tuple(items) => Ok(items.clone()),
            other => Err(format!("{what} are a {}, not a tuple", other.kind())),
        }
    }

    fn call(&mut self, global: Global, args: Vec<Id>) -> Result<(), String> {
        let id = torch::call(&mut self.objects, global, &args)?;
        self.push_id(id)
    }

    fn instantiate(&mut self, global: Global, args: Vec<Id>) -> Result<(), String> {
        let id = torch::instantiate(&mut self.objects, global, &args)?;
        self.push_id(id)
    }
}

/// The (key, value) pairs of a SETITEMS or DICT's items.
fn pairs(items: &[Id]) -> Result<Vec<(Id, Id)>, String> {
    if !items.len().is_multiple_of(2) {
        return Err(format!("{} items do not make key-value pairs", items.len()));
    }
    Ok(items.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

/// A little-endian two's complement integer of LONG1/LONG4.
fn long_value(bytes: &[u8]) -> Object {
    let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
    let fill = if negative { 0xff } else { 0 };
    // Bytes past the eighth must only repeat the sign for the value to fit.
    let (low, high) = bytes.split_at(bytes.len().min(8));
    let mut le = [fill; 8];
    le[..low.len()].copy_from_slice(low);
    let value = i64::from_le_bytes(le);
    if high.iter().any(|&b| b != fill) || (value < 0) != negative {
        return Object::BigInt;
    }
    Object::Int(value)
}

/// A decimal integer of protocol 0 (an `i64`, or a big one).
fn decimal(text: &str) -> Result<Object, String> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{}' is not an integer", super::shown(text)));
    }
    Ok(text.parse().map(Object::Int).unwrap_or(Object::BigInt))
}

/// An opcode's name, for messages.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'(' => "MARK",
        b'.' => "STOP",
        b'0' => "POP",
        b'1' => "POP_MARK",
        b'2' => "DUP",
        b'F' => "FLOAT",
        b'I' => "INT",
        b'J' => "BININT",
        b'K' => "BININT1",
        b'L' => "LONG",
        b'M' => "BININT2",
        b'N' => "NONE",
        b'P' => "PERSID",
        b'Q' => "BINPERSID",
        b'R' => "REDUCE",
        b'S' => "STRING",
        b'T' => "BINSTRING",
        b'U' => "SHORT_BINSTRING",
        b'V' => "UNICODE",
        b'X' => "BINUNICODE",
        b'a' => "APPEND",
        b'b' => "BUILD",
        b'c' => "GLOBAL",
        b'd' => "DICT",
        b'}' => "EMPTY_DICT",
        b'e' => "APPENDS",
        b'g' => "GET",
        b'h' => "BINGET",
        b'i' => "INST",
        b'j' => "LONG_BINGET",
        b'l' => "LIST",
        b']' => "EMPTY_LIST",
        b'o' => "OBJ",
        b'p' => "PUT",
        b'q' => "BINPUT",
        b'r' => "LONG_BINPUT",
        b's' => "SETITEM",
        b't' => "TUPLE",
        b')' => "EMPTY_TUPLE",
        b'u' => "SETITEMS",
        b'G' => "BINFLOAT",
        b'B' => "BINBYTES",
        b'C' => "SHORT_BINBYTES",
        0x80 => "PROTO",
        0x81 => "NEWOBJ",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x85 => "TUPLE1",
        0x86 => "TUPLE2",
        0x87 => "TUPLE3",
        0x88 => "NEWTRUE",
        0x89 => "NEWFALSE",
        0x8a => "LONG1",
        0x8b => "LONG4",
        0x8c => "SHORT_BINUNICODE",
        0x8d => "BINUNICODE8",
        0x8e => "BINBYTES8",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x92 => "NEWOBJ_EX",
        0x93 => "STACK_GLOBAL",
        0x94 => "MEMOIZE",
        0x95 => "FRAME",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        _ => "unknown opcode",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pickle: &[u8]) -> Result<(Objects, Id), String> {
        unpickle(pickle, &|_| None)
    }

    #[test]
    fn plain_data() {
        // {'a': [1, -2, 3.5, 'x', b'y', None, True], 'b': (2**40, 2**70)}
        let pickle = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00\x8c\x01xC\x01yN\x88eX\x01\x00\x00\x00b\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00@\x86u.";
        let (objects, root) = run(pickle).unwrap();
        let Object::Dict(items) = objects.get(root) else { panic!("not a dict") };
        assert_eq!(items.len(), 2);
        let Object::List(list) = objects.get(items[0].1) else { panic!("not a list") };
        let kinds: Vec<&str> = list.iter().map(|&i| objects.get(i).kind()).collect();
        assert_eq!(kinds, ["int", "int", "float", "str", "bytes", "None", "bool"]);
        assert!(matches!(objects.get(list[1]), Object::Int(-2)));
        let Object::Tuple(t) = objects.get(items[1].1) else { panic!("not a tuple") };
        assert!(matches!(objects.get(t[0]), Object::Int(v) if *v == 1 << 40));
        assert!(matches!(objects.get(t[1]), Object::BigInt));
    }

    #[test]
    fn memo_shares_mutable_containers() {
        // l = []; memo[0] = l; l.append(l) (a cycle); return [memo[0]]
        let (objects, root) = run(b"]q\x00h\x00a]h\x00a.").unwrap();
        let Object::List(outer) = objects.get(root) else { panic!() };
        let Object::List(inner) = objects.get(outer[0]) else { panic!() };
        assert_eq!(inner, &vec![outer[0]]);
    }

    #[test]
    fn refuses_code() {
        let err = run(b"cos\nsystem\n(X\x02\x00\x00\x00lstR.").unwrap_err();
        assert!(err.contains("refused global 'os.system'"), "{err}");
        let err = run(b"\x8c\x08builtins\x8c\x04eval\x93.").unwrap_err();
        assert!(err.contains("refused global 'builtins.eval'"), "{err}");
        assert!(run(b"\x82\x05.").unwrap_err().contains("extension code 5"));
        assert!(run(b"K\x01)R.").unwrap_err().contains("cannot call a int"));
        // _rebuild_from_type_v2 only applies the tensor-rebuilding functions.
        let err = run(b"ctorch._tensor\n_rebuild_from_type_v2\n(ccollections\nOrderedDict\nctorch\nTensor\n)}tR.").unwrap_err();
        assert!(err.contains("not a tensor-rebuilding function"), "{err}");
        assert!(run(b"ctorch\nTensor\n)R.").unwrap_err().contains("not supported"));
    }

    #[test]
    fn bad_input_is_an_error() {
        for bad in [&b""[..], b"K", b"X\xff\xff\xff\xff", b"\x80\x06.", b"a.", b"(K\x01K\x02u.", b"h\x07.", b"0.", b"\xff"] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
        // Deeply nested lists are fine: the arena drops them flat.
        let mut deep = b"]".repeat(100_000);
        deep.extend(b"a".repeat(99_999));
        deep.push(b'.');
        assert!(run(&deep).is_ok());
    }
}
