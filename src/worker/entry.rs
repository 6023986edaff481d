//! The compact form in which the logging path queues an event: 64-bit words written on
//! the caller's thread without allocating, decoded into a [`Record`] on the sink's worker.
//!
//! Why not queue `Record`s: filling a record on the caller's thread meant writing 64-byte
//! `(Key, Value)` pairs into memory the worker had touched last (cache lines crossing
//! cores on every event) and sharing a pool of records between threads. An entry is a few
//! words in the calling thread's own queue (`lane`); names stay `&'static str`
//! pointers into the callsite, numbers stay bits, short texts are copied inline.
//!
//! ```text
//! header  len (16 bits) | kind (8) | flags (8) | rank (32)
//! ticks   clock::now() on the caller
//! kind FIELDS:  step, then per field: name pointer (48 bits) | name length << 48 | tag << 60,
//!               then one value word (number bits, a boxed Value, or a text's length
//!               followed by its bytes)
//! kind RECORD:  a boxed Record (events that do not fit: `dict`, owned names, huge texts)
//! kind PAD:     filler up to the end of the ring
//! ```
//!
//! Boxed values are owned by the entry: exactly one decode (or [`free_boxes`]) takes them.

#![allow(unsafe_code)]

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tracing::field::Field;

use crate::record::capture::{Fields, Number};
use crate::{Key, Record, Value};

/// Longest entry the fast path writes (2 KiB); bigger events are boxed records.
pub(crate) const MAX_WORDS: usize = 256;
/// Words an entry starts with: header, ticks, step.
const HEAD: usize = 3;
/// Longest field name held inline (the length has 12 bits).
const MAX_NAME: usize = 0xfff;

pub(crate) const KIND_PAD: u8 = 1;
pub(crate) const KIND_FIELDS: u8 = 2;
pub(crate) const KIND_RECORD: u8 = 3;

const FLAG_STEP: u8 = 1;
const FLAG_HPARAMS: u8 = 2;

const TAG_I64: u8 = 1;
const TAG_U64: u8 = 2;
const TAG_F64: u8 = 3;
const TAG_BOOL: u8 = 4;
const TAG_STR: u8 = 5;
const TAG_MESSAGE: u8 = 6;
const TAG_VALUE: u8 = 7;

/// An entry's first word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) len: usize,
    pub(crate) kind: u8,
    pub(crate) flags: u8,
    pub(crate) rank: u32,
}

impl Header {
    pub(crate) fn encode(self) -> u64 {
        self.len as u64
            | (self.kind as u64) << 16
            | (self.flags as u64) << 24
            | (self.rank as u64) << 32
    }

    pub(crate) fn decode(word: u64) -> Self {
        Header {
            len: (word & 0xffff) as usize,
            kind: (word >> 16) as u8,
            flags: (word >> 24) as u8,
            rank: (word >> 32) as u32,
        }
    }
}

/// An event being encoded, on the caller's stack.
pub(crate) struct Encoder {
    words: [MaybeUninit<u64>; MAX_WORDS],
    len: usize,
    flags: u8,
    step: u64,
    /// The event does not fit this form (too big, a `dict`, a run-time name): capture a
    /// `Record` instead.
    bailed: bool,
    /// Boxed values written so far that nothing else owns yet.
    owns_boxes: bool,
}

impl Encoder {
    #[inline]
    pub(crate) fn new() -> Self {
        Encoder {
            words: [MaybeUninit::uninit(); MAX_WORDS],
            len: HEAD,
            flags: 0,
            step: 0,
            bailed: false,
            owns_boxes: false,
        }
    }

    pub(crate) fn bailed(&self) -> bool {
        self.bailed
    }

    #[inline]
    fn room(&mut self, words: usize) -> bool {
        if self.bailed || self.len + words > MAX_WORDS {
            self.bailed = true;
            return false;
        }
        true
    }

    #[inline]
    fn put(&mut self, word: u64) {
        self.words[self.len].write(word);
        self.len += 1;
    }

    /// The word that names a field: false (and bailed) for a name it cannot hold.
    #[inline]
    fn field(&mut self, name: &'static str, tag: u8) -> bool {
        let ptr = name.as_ptr() as u64;
        if ptr >> 48 != 0 || name.len() > MAX_NAME {
            self.bailed = true;
            return false;
        }
        self.put(ptr | (name.len() as u64) << 48 | (tag as u64) << 60);
        true
    }

    fn boxed(&mut self, name: &'static str, value: Value) {
        if self.room(2) && self.field(name, TAG_VALUE) {
            self.put(Box::into_raw(Box::new(value)) as u64);
            self.owns_boxes = true;
        }
    }

    /// The finished entry. The caller owns its boxed values from here on: it hands them
    /// to a queue ([`write_entry`]) or frees them ([`free_boxes`]).
    #[inline]
    pub(crate) fn finish(&mut self, rank: u32, ticks: u64) -> &[u64] {
        let header = Header {
            len: self.len,
            kind: KIND_FIELDS,
            flags: self.flags,
            rank,
        };
        self.words[0].write(header.encode());
        self.words[1].write(ticks);
        self.words[2].write(self.step);
        self.owns_boxes = false;
        // SAFETY: words 0..HEAD were just written and every later word below `len` was
        // written by `put`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u64>(), self.len) }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        if self.owns_boxes {
            // Abandoned half way (bailed): free what was boxed.
            free_boxes(self.finish(0, 0));
        }
    }
}

thread_local! {
    /// Where `?x` values are formatted before being copied into an entry, kept between
    /// events so formatting allocates nothing once warm.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Fields for Encoder {
    #[inline]
    fn step(&mut self, step: u64) {
        self.step = step;
        self.flags |= FLAG_STEP;
    }

    fn hparams(&mut self, on: bool) {
        if on {
            self.flags |= FLAG_HPARAMS;
        } else {
            self.flags &= !FLAG_HPARAMS;
        }
    }

    #[inline]
    fn number(&mut self, name: &'static str, value: Number) {
        let (tag, bits) = match value {
            Number::I64(v) => (TAG_I64, v as u64),
            Number::U64(v) => (TAG_U64, v),
            Number::F64(v) => (TAG_F64, v.to_bits()),
            Number::Bool(v) => (TAG_BOOL, v as u64),
        };
        if self.room(2) && self.field(name, tag) {
            self.put(bits);
        }
    }

    fn text(&mut self, name: Option<&'static str>, text: &str) {
        let bytes = text.as_bytes();
        if !self.room(2 + bytes.len().div_ceil(8)) {
            return;
        }
        let named = match name {
            Some(name) => self.field(name, TAG_STR),
            None => self.field("", TAG_MESSAGE),
        };
        if !named {
            return;
        }
        self.put(bytes.len() as u64);
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.put(u64::from_le_bytes(word));
        }
    }

    fn debug(&mut self, name: Option<&'static str>, value: &dyn fmt::Debug) {
        let formatted = SCRATCH.try_with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else {
                return false;
            };
            s.clear();
            let _ = write!(s, "{value:?}");
            self.text(name, &s);
            if s.capacity() > 4 * MAX_WORDS * 8 {
                *s = String::new();
            }
            true
        });
        if formatted != Ok(true) {
            self.text(name, &format!("{value:?}"));
        }
    }

    fn captured(&mut self, name: &Key, value: &Value) {
        let Cow::Borrowed(name) = *name else {
            self.bailed = true;
            return;
        };
        match value {
            Value::Str(text) => self.text(Some(name), text),
            Value::I64(v) => self.number(name, Number::I64(*v)),
            Value::U64(v) => self.number(name, Number::U64(*v)),
            Value::F64(v) => self.number(name, Number::F64(*v)),
            Value::Bool(v) => self.number(name, Number::Bool(*v)),
            other => self.boxed(name, other.clone()),
        }
    }

    fn dict(&mut self, _field: &Field, _text: &str) {
        // Run-time names and exact values from `log_dict`: only a `Record` holds them.
        self.bailed = true;
    }
}

/// The entry for a record captured whole (the events [`Encoder`] cannot hold, and
/// records made by trainlog itself). Its box is owned by the returned words.
pub(crate) fn record_entry(record: Record, ticks: u64) -> [u64; 3] {
    let header = Header {
        len: 3,
        kind: KIND_RECORD,
        flags: 0,
        rank: record.rank,
    };
    [
        header.encode(),
        ticks,
        Box::into_raw(Box::new(record)) as u64,
    ]
}

/// Where an entry holds a box, and of what.
#[derive(Clone, Copy)]
enum Boxed {
    Value,
    Record,
}

/// Calls `f` with the index and kind of each box `words` (one whole entry) holds.
fn each_box(words: &[u64], mut f: impl FnMut(usize, Boxed)) {
    let header = Header::decode(words[0]);
    match header.kind {
        KIND_RECORD => f(2, Boxed::Record),
        KIND_FIELDS => {
            let mut i = HEAD;
            while i + 1 < header.len {
                match (words[i] >> 60) as u8 {
                    TAG_STR | TAG_MESSAGE => i += 2 + (words[i + 1] as usize).div_ceil(8),
                    TAG_VALUE => {
                        f(i + 1, Boxed::Value);
                        i += 2;
                    }
                    _ => i += 2,
                }
            }
        }
        _ => {}
    }
}

/// Copies `words` (one entry) into `dst` (exactly as long); with `clone`, each box is
/// replaced by a copy the written entry owns, so `words` keeps its own.
///
/// One block copy rather than a store per word: only the producer writes these words,
/// and the worker reads none of them before the release store that publishes them.
#[inline]
pub(crate) fn write_entry(words: &[u64], clone: bool, dst: &[AtomicU64]) {
    assert_eq!(words.len(), dst.len(), "an entry is copied whole");
    // SAFETY: `dst` has room for `words.len()` u64s (checked above; AtomicU64 has u64's
    // layout), the two do not overlap (`words` is not atomic memory), and no other thread
    // accesses `dst` until the entry is published (see `Lane::try_push`), so plain writes
    // through the `UnsafeCell` inside AtomicU64 race with nothing.
    unsafe {
        std::ptr::copy_nonoverlapping(words.as_ptr(), AtomicU64::as_ptr(&dst[0]), words.len());
    }
    if clone {
        each_box(words, |i, kind| {
            // SAFETY: the entry owns a live box of this kind at `i` (see `Encoder` and
            // `record_entry`); it is only read here.
            let copy = unsafe {
                match kind {
                    Boxed::Value => {
                        Box::into_raw(Box::new((*(words[i] as *const Value)).clone())) as u64
                    }
                    Boxed::Record => {
                        Box::into_raw(Box::new((*(words[i] as *const Record)).clone())) as u64
                    }
                }
            };
            dst[i].store(copy, Relaxed);
        });
    }
}

/// Frees the boxes an entry owns (one that was dropped instead of queued).
pub(crate) fn free_boxes(words: &[u64]) {
    each_box(words, |i, kind| {
        // SAFETY: the entry owns a live box of this kind at `i`; after this call nothing
        // reads it again.
        unsafe {
            match kind {
                Boxed::Value => drop(Box::from_raw(words[i] as *mut Value)),
                Boxed::Record => drop(Box::from_raw(words[i] as *mut Record)),
            }
        }
    });
}

/// What an entry decodes into.
pub(crate) enum Decoded {
    /// The fields went into the record passed in; its time is these ticks.
    Fields { ticks: u64 },
    /// A record captured whole, queued at these ticks.
    Record(Box<Record>, u64),
}

/// Decodes one entry, taking ownership of its boxes. `record` must be empty.
///
/// # Safety
/// `words` must be an entry written by [`write_entry`] whose boxes nothing else took.
pub(crate) unsafe fn decode(words: &[u64], record: &mut Record) -> Decoded {
    let header = Header::decode(words[0]);
    if header.kind == KIND_RECORD {
        // SAFETY: (caller) the entry owns this box and hands it over now.
        return Decoded::Record(unsafe { Box::from_raw(words[2] as *mut Record) }, words[1]);
    }
    record.rank = header.rank;
    record.hparams = header.flags & FLAG_HPARAMS != 0;
    record.step = (header.flags & FLAG_STEP != 0).then_some(words[2]);
    let mut i = HEAD;
    while i + 1 < header.len {
        let (name_word, value_word) = (words[i], words[i + 1]);
        let tag = (name_word >> 60) as u8;
        let name_len = (name_word >> 48) as usize & MAX_NAME;
        // SAFETY: pointer and length came from a `&'static str` (`Encoder::field`).
        let name: &'static str = unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                (name_word & ((1 << 48) - 1)) as *const u8,
                name_len,
            ))
        };
        let value = match tag {
            TAG_STR | TAG_MESSAGE => {
                let text_len = value_word as usize;
                let n = text_len.div_ceil(8);
                let mut bytes = Vec::with_capacity(n * 8);
                for w in &words[i + 2..i + 2 + n] {
                    bytes.extend_from_slice(&w.to_le_bytes());
                }
                bytes.truncate(text_len);
                i += 2 + n;
                // The bytes came from a `&str`.
                let text = String::from_utf8(bytes)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                if tag == TAG_MESSAGE {
                    record.message = Some(text);
                    continue;
                }
                Value::Str(text)
            }
            _ => {
                let bits = value_word;
                i += 2;
                match tag {
                    TAG_I64 => Value::I64(bits as i64),
                    TAG_U64 => Value::U64(bits),
                    TAG_F64 => Value::F64(f64::from_bits(bits)),
                    TAG_BOOL => Value::Bool(bits != 0),
                    // SAFETY: (caller) the entry owns this box and hands it over now.
                    _ => *unsafe { Box::from_raw(bits as *mut Value) },
                }
            }
        };
        record.fields.push((Cow::Borrowed(name), value));
    }
    Decoded::Fields { ticks: words[1] }
}

#[cfg(test)]
mod tests;
