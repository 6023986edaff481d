//! The compact form in which the logging path queues an event: a few typed 16-byte
//! slots filled on the caller's thread without allocating, decoded into a [`Record`] on
//! the sink's worker.
//!
//! Why not queue `Record`s: filling a record on the caller's thread meant writing 64-byte
//! `(Key, Value)` pairs into memory the worker had touched last (cache lines crossing
//! cores on every event) and sharing a pool of records between threads. An entry is a few
//! slots in the calling thread's own ring (`lane`, over `ring`); a field is named by its
//! index in its callsite's `FieldSet` (the worker looks the name up), numbers stay
//! numbers, short texts are copied inline.
//!
//! ```text
//! Site (&'static FieldSet) ...       the callsites whose fields the entry's slots name
//!                                    (the event's, and its spans' for `span_fields`),
//!                                    the first last, just before the head; left out
//!                                    when they are the ones the lane's previous entry
//!                                    listed (its reader keeps them)
//! Head { len, flags, step, ticks }   how many slots the entry spans from here, its
//!                                    step (below 2^40), and when it was logged
//! Step (step)                        a step of 2^40 or more, among the fields
//! I64 / U64 / F64 / Bool (at, v)     a number field: `at` is which site (its place in
//!                                    that list) and which of its fields
//! Text (at or MESSAGE, len)          a text, its bytes in the Bytes slots after it
//! Boxed (at, Box<Value>)             any other value (a histogram, a captured JSON)
//! Record (Box<Record>)               an event this form does not hold, whole
//! ```
//!
//! Every slot owns what it holds: a copy of an entry (for a second sink) clones its boxes,
//! and an entry dropped anywhere (a full queue, a closed sink, a ring dropped unread) frees
//! them. No code here is `unsafe`. Slots are 16 bytes because the queue's cost on the
//! calling thread follows the bytes it writes into memory the worker read last: with
//! 32-byte slots (a name as `&'static str` in each) `caller/trainlog_jsonl` took about
//! 1.5 times as long as with the 8-byte words this replaced.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::mem::ManuallyDrop;

use arrayvec::ArrayVec;
use tracing::field::{Field, FieldSet};

use crate::record::capture::{unraw, Fields, Name, Number};
use crate::{Key, Record, Value};

/// Most slots an entry has (2 KiB, as the words it replaced); bigger events are boxed
/// records.
pub(crate) const MAX_SLOTS: usize = 128;
/// Most callsites one entry's fields come from (the event's, and with `span_fields` those
/// of the spans it is in); an event in more spans with fields is a boxed record.
pub(crate) const MAX_SITES: usize = 4;
/// Bytes of text one `Bytes` slot holds.
const TEXT_CHUNK: usize = 15;
/// Longest text a `Short` slot holds.
const SHORT_TEXT: usize = 10;

/// The event has a step.
const FLAG_STEP: u8 = 1;
const FLAG_HPARAMS: u8 = 2;
/// The step is too big for the head: it is in a `Step` slot among the fields.
const FLAG_BIG_STEP: u8 = 4;
/// Steps below this go in the head (40 bits: a trillion steps).
const HEAD_STEP_LIMIT: u64 = 1 << 40;

/// The callsites an entry's fields come from, in the order the fields name them.
pub(crate) type Sites = ArrayVec<&'static FieldSet, MAX_SITES>;

/// Which field a slot holds: the site (its place in the entry's [`Sites`]) and the
/// field's index among that site's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    site: u8,
    index: u16,
}

/// Where a `Text` slot holding the event's message points.
const MESSAGE: At = At {
    site: u8::MAX,
    index: u16::MAX,
};

/// One slot of an entry (16 bytes: see the test that says so).
#[derive(Debug, Clone)]
pub(crate) enum Slot {
    /// The entry's head: it spans `len` slots from here (this one included), was logged
    /// at `ticks`, and has the step `step_high << 32 | step_low` when its flags say so.
    ///
    /// The rank is not here: the worker writes for one rank (see `WorkerConfig`), and an
    /// entry's head and step in one slot keep an event of three numbers at 64 bytes (the
    /// bytes written into the ring are what the logging thread pays for most).
    Head {
        len: u8,
        flags: u8,
        step_high: u8,
        step_low: u32,
        ticks: u64,
    },
    /// One of the sites the entry's fields name (see [`Sites`]), before its head: the
    /// `Site` slots before a head, the entry's first site last, replace the lane's list.
    Site(&'static FieldSet),
    /// A step of [`HEAD_STEP_LIMIT`] or more (one below is in the head).
    Step(u64),
    I64(At, i64),
    U64(At, u64),
    F64(At, f64),
    Bool(At, bool),
    /// A text field (the message at [`MESSAGE`]) of `len` bytes, in the `Bytes` slots
    /// that follow.
    Text(At, u32),
    /// A text of at most [`SHORT_TEXT`] bytes (a phase, a model name), its length and
    /// bytes in the slot itself.
    Short(At, u8, [u8; SHORT_TEXT]),
    Bytes([u8; TEXT_CHUNK]),
    Boxed(At, Box<Value>),
    Record(Box<Record>),
}

impl Slot {
    /// What a reserved slot holds until [`Entry::seal`] or a site writes it (or the entry
    /// leaves it behind): an empty head, all zero bytes, so reserving costs a store of
    /// zeros per slot. Never queued.
    const RESERVED: Slot = Slot::Head {
        len: 0,
        flags: 0,
        step_high: 0,
        step_low: 0,
        ticks: 0,
    };

    /// The number of slots of the entry this head starts, and when it was logged;
    /// `None` for any other slot.
    pub(crate) fn head(&self) -> Option<(usize, u64)> {
        match self {
            Slot::Head { len, ticks, .. } => Some((usize::from(*len), *ticks)),
            _ => None,
        }
    }
}

/// Slots an entry reserves in front of its fields for its head (and before it, one per
/// site it may list), written by [`Entry::seal`].
const PREFIX: usize = 1;

/// Whether two lists of sites are the same callsites in the same order.
#[inline]
fn same_sites(a: &Sites, b: &Sites) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| std::ptr::eq(*x, *y))
}

/// The slots of an entry being built on the caller's stack: the reserved ones (for its
/// head, step and sites), then its fields.
///
/// Kept apart from [`Entry`] (which borrows them) so that the compiler builds the small
/// part of an entry in registers and the slots where they lie: built as one value, the
/// entry was made in a temporary and copied into place on every event, the copy reading
/// across the stores that made it (a store-forwarding stall `perf` showed per event).
#[derive(Debug)]
pub(crate) struct Slots {
    /// Dropped by hand (see `Drop`): the reserved slots own nothing.
    vec: ManuallyDrop<ArrayVec<Slot, MAX_SLOTS>>,
    reserved: usize,
}

impl Drop for Slots {
    #[inline]
    fn drop(&mut self) {
        // The reserved slots only ever hold a placeholder or a head, step or site, none
        // of which owns anything, so only fields need dropping: an entry that went into
        // a ring has none left (dropping the slots one by one was a cost `perf` showed on
        // every event).
        if self.vec.len() > self.reserved {
            drop(std::mem::take(&mut *self.vec));
        }
    }
}

impl Slots {
    #[inline]
    pub(crate) fn new() -> Self {
        Slots {
            vec: ManuallyDrop::new(ArrayVec::new()),
            reserved: 0,
        }
    }

    /// Reserves the slots for the head, the step and `sites` sites (at most
    /// [`MAX_SITES`]); `self` must be new.
    #[inline]
    fn reserve(&mut self, sites: usize) {
        let reserved = PREFIX + sites.min(MAX_SITES);
        for _ in self.vec.len()..reserved {
            self.vec.push(Slot::RESERVED);
        }
        self.reserved = reserved;
    }

    /// Reserves the slot for the head after one for `site`, written now (see
    /// [`Entry::set_site`]); `self` must be new.
    #[inline]
    fn reserve_with(&mut self, site: &'static FieldSet) {
        self.vec.clear();
        self.vec.push(Slot::Site(site));
        self.vec.push(Slot::RESERVED);
        self.reserved = PREFIX + 1;
    }
}

/// An event in this form: its slots (borrowed, see [`Slots`]) and what its head is made
/// from.
///
/// The slots reserved in front of the fields hold, from the fields back, the head and
/// the sites the fields name (written as they are announced, the first last). The head
/// is written once the fields are in ([`seal`](Self::seal)). Where the entry starts
/// depends on the lane it goes to ([`start_for`](Self::start_for)): a lane's reader keeps
/// the sites of the last entry that listed them, so an entry from the same callsites as
/// the one before (nearly every entry: a training loop logs from one or two callsites)
/// starts at its head, leaving its sites behind. The sites lie before the head, not after,
/// so that leaving them out is a matter of where the copy starts, with nothing rewritten
/// per lane. An event has one site, and with `span_fields` up to [`MAX_SITES`].
#[derive(Debug)]
pub(crate) struct Entry<'s> {
    sites: Sites,
    step: u64,
    flags: u8,
    slots: &'s mut Slots,
}

impl<'s> Entry<'s> {
    /// An entry in `slots` (new ones) whose fields may come from up to `sites` sites.
    #[inline]
    fn new(slots: &'s mut Slots, sites: usize) -> Self {
        slots.reserve(sites);
        Entry {
            sites: Sites::new(),
            step: 0,
            flags: 0,
            slots,
        }
    }

    /// An entry in `slots` (new ones) whose fields all come from `site` (an event's,
    /// without span fields): the site's slot is written now, and the head's reserved.
    #[inline]
    fn with_site(slots: &'s mut Slots, site: &'static FieldSet) -> Self {
        slots.reserve_with(site);
        let mut sites = Sites::new();
        sites.push(site);
        Entry {
            sites,
            step: 0,
            flags: 0,
            slots,
        }
    }

    /// How many sites the entry has room to list.
    fn max_sites(&self) -> usize {
        self.slots.reserved - PREFIX
    }

    /// Where the head is in the slots.
    #[inline]
    fn head_at(&self) -> usize {
        self.slots.reserved - PREFIX
    }

    /// Writes the entry's head (logged at `ticks`), once its fields are in.
    #[inline]
    fn seal(&mut self, ticks: u64) {
        let at = self.head_at();
        // At most `MAX_SLOTS`, which a `u8` holds.
        let len = self.slots.vec.len().saturating_sub(at) as u8;
        let step = if self.flags & (FLAG_STEP | FLAG_BIG_STEP) == FLAG_STEP {
            self.step
        } else {
            0
        };
        self.set_reserved(
            at,
            Slot::Head {
                len,
                flags: self.flags,
                step_high: (step >> 32) as u8,
                step_low: step as u32,
                ticks,
            },
        );
    }

    /// Writes the `Site` slot of the site at `place` in the entry's list: before the
    /// head, the first site last.
    #[inline]
    fn set_site(&mut self, place: usize, site: &'static FieldSet) {
        let at = self.head_at().wrapping_sub(place + 1);
        self.set_reserved(at, Slot::Site(site));
    }

    /// Writes a reserved slot. What it held (a placeholder) owns nothing, so it is
    /// forgotten rather than dropped: the drop's call was a cost `perf` showed on every
    /// event.
    #[inline]
    fn set_reserved(&mut self, at: usize, slot: Slot) {
        // Always there: only the slots `reserve` made are written.
        if let Some(reserved) = self.slots.vec.get_mut(at) {
            std::mem::forget(std::mem::replace(reserved, slot));
        }
    }

    /// Where the sealed entry starts in [`slots_mut`](Self::slots_mut) for a lane whose
    /// reader has the sites `known` (what lies before is left behind), and whether it
    /// lists its sites (then the lane's become [`sites`](Self::sites) once it is in).
    #[inline]
    pub(crate) fn start_for(&self, known: &Sites) -> (usize, bool) {
        let list = match (self.sites.as_slice(), known.as_slice()) {
            ([], _) => false,
            // The common case, one site: no loop.
            ([one], [known]) => !std::ptr::eq(*one, *known),
            _ => !same_sites(&self.sites, known),
        };
        let head = self.head_at();
        if list {
            // Never below 0: `site` lists at most the sites reserved for.
            (head.saturating_sub(self.sites.len()), true)
        } else {
            (head, false)
        }
    }

    /// The sites the entry's fields name.
    #[inline]
    pub(crate) fn sites(&self) -> &Sites {
        &self.sites
    }

    /// The slots, the reserved ones first.
    #[inline]
    pub(crate) fn slots_mut(&mut self) -> &mut ArrayVec<Slot, MAX_SLOTS> {
        &mut self.slots.vec
    }

    /// The sealed entry's slots for a lane whose reader has the sites `known`, as copies
    /// (tests).
    #[cfg(test)]
    pub(crate) fn written(&self, known: &Sites) -> Vec<Slot> {
        let (start, _) = self.start_for(known);
        self.slots.vec[start..].to_vec()
    }
}

/// An event being encoded, on the caller's stack.
pub(crate) struct Encoder<'s> {
    entry: Entry<'s>,
    /// The place in `entry.sites` of the site announced last ([`NO_SITE`] before the
    /// first).
    site: u8,
    /// The event does not fit this form (too big, a `dict`, a run-time name, too many
    /// sites): capture a `Record` instead. Once set it stays set; the slots written after
    /// it are dropped with the encoder, so the per-field path need not look at it.
    bailed: bool,
}

/// The site place of a field written before any site was announced: one no entry lists,
/// so such a field would decode to nothing. Capture announces the event's site before
/// its fields, so none is written; an encoder that never had a site counts as bailed.
const NO_SITE: u8 = u8::MAX;

impl<'s> Encoder<'s> {
    /// An encoder writing into `slots` (new ones), for an event whose fields come from up
    /// to `sites` callsites (the event's, and with `span_fields` its spans').
    #[inline]
    pub(crate) fn new(slots: &'s mut Slots, sites: usize) -> Self {
        Encoder {
            entry: Entry::new(slots, sites),
            site: NO_SITE,
            bailed: false,
        }
    }

    /// An encoder writing into `slots` (new ones), for an event whose fields all come
    /// from `site` (the event's own: no span fields); a field of another site bails.
    #[inline]
    pub(crate) fn for_site(slots: &'s mut Slots, site: &'static FieldSet) -> Self {
        Encoder {
            entry: Entry::with_site(slots, site),
            site: 0,
            bailed: false,
        }
    }

    /// Whether the event must be captured as a `Record` instead (see `bailed`, and
    /// [`NO_SITE`]).
    pub(crate) fn bailed(&self) -> bool {
        self.bailed || self.site == NO_SITE
    }

    /// Whether `slots` more fit (bailing if not).
    #[inline]
    fn room(&mut self, slots: usize) -> bool {
        if self.entry.slots.vec.len() + slots > MAX_SLOTS {
            self.bailed = true;
            return false;
        }
        true
    }

    /// Where a field of the site announced last is: `None` (and bailed) for an index past
    /// what a slot holds (never, with `tracing`'s callsites).
    #[inline]
    fn at(&mut self, index: usize) -> Option<At> {
        if index < usize::from(MESSAGE.index) {
            Some(At {
                site: self.site,
                index: index as u16,
            })
        } else {
            self.bailed = true;
            None
        }
    }

    /// The finished entry, to be queued ([`crate::worker::publish`]).
    #[inline]
    pub(crate) fn finish(&mut self, ticks: u64) -> &mut Entry<'s> {
        self.entry.seal(ticks);
        &mut self.entry
    }

    /// Writes `value` as the field at `index` of the site announced last.
    #[inline]
    pub(crate) fn value(&mut self, index: usize, value: &Value) {
        let Some(at) = self.at(index) else {
            return;
        };
        match value {
            Value::Str(text) => self.text_at(at, text),
            Value::I64(v) => self.number_at(at, Number::I64(*v)),
            Value::U64(v) => self.number_at(at, Number::U64(*v)),
            Value::F64(v) => self.number_at(at, Number::F64(*v)),
            Value::Bool(v) => self.number_at(at, Number::Bool(*v)),
            other => {
                if self.room(1) {
                    self.push(Slot::Boxed(at, Box::new(other.clone())));
                }
            }
        }
    }

    #[inline]
    fn push(&mut self, slot: Slot) {
        // `room` made sure of it.
        let _ = self.entry.slots.vec.try_push(slot);
    }

    fn text_at(&mut self, at: At, text: &str) {
        let bytes = text.as_bytes();
        if bytes.len() <= SHORT_TEXT {
            if self.room(1) {
                let mut short = [0u8; SHORT_TEXT];
                short[..bytes.len()].copy_from_slice(bytes);
                self.push(Slot::Short(at, bytes.len() as u8, short));
            }
            return;
        }
        if !self.room(1 + bytes.len().div_ceil(TEXT_CHUNK)) {
            return;
        }
        self.push(Slot::Text(at, bytes.len() as u32));
        for chunk in bytes.chunks(TEXT_CHUNK) {
            let mut part = [0u8; TEXT_CHUNK];
            part[..chunk.len()].copy_from_slice(chunk);
            self.push(Slot::Bytes(part));
        }
    }

    #[inline]
    fn number_at(&mut self, at: At, value: Number) {
        if self.room(1) {
            self.push(match value {
                Number::I64(v) => Slot::I64(at, v),
                Number::U64(v) => Slot::U64(at, v),
                Number::F64(v) => Slot::F64(at, v),
                Number::Bool(v) => Slot::Bool(at, v),
            });
        }
    }
}

thread_local! {
    /// Where `?x` values are formatted before being copied into an entry, kept between
    /// events so formatting allocates nothing once warm.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Fields for Encoder<'_> {
    #[inline]
    fn site(&mut self, fields: &'static FieldSet) {
        let max = self.entry.max_sites();
        let sites = &mut self.entry.sites;
        if sites.is_empty() && max > 0 {
            // The first (for most events, the only one).
            sites.push(fields);
            self.site = 0;
            self.entry.set_site(0, fields);
            return;
        }
        if sites
            .get(usize::from(self.site))
            .is_some_and(|site| std::ptr::eq(*site, fields))
        {
            return;
        }
        let place = match sites.iter().position(|site| std::ptr::eq(*site, fields)) {
            Some(place) => place,
            None if sites.len() < max => {
                sites.push(fields);
                let place = sites.len() - 1;
                self.entry.set_site(place, fields);
                place
            }
            None => {
                self.bailed = true;
                return;
            }
        };
        self.site = place as u8;
    }

    #[inline]
    fn step(&mut self, step: u64) {
        // A later step (the event's, after its spans') replaces an earlier one.
        if step < HEAD_STEP_LIMIT {
            self.entry.step = step;
            self.entry.flags = (self.entry.flags | FLAG_STEP) & !FLAG_BIG_STEP;
        } else if self.room(1) {
            self.push(Slot::Step(step));
            self.entry.flags |= FLAG_STEP | FLAG_BIG_STEP;
        }
    }

    fn hparams(&mut self, on: bool) {
        if on {
            self.entry.flags |= FLAG_HPARAMS;
        } else {
            self.entry.flags &= !FLAG_HPARAMS;
        }
    }

    #[inline]
    fn number(&mut self, name: Name, value: Number) {
        if let Some(at) = self.at(name.index) {
            self.number_at(at, value);
        }
    }

    fn text(&mut self, name: Option<Name>, text: &str) {
        let at = match name {
            Some(name) => self.at(name.index),
            None => Some(MESSAGE),
        };
        if let Some(at) = at {
            self.text_at(at, text);
        }
    }

    fn debug(&mut self, name: Option<Name>, value: &dyn fmt::Debug) {
        let formatted = SCRATCH.try_with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else {
                return false;
            };
            s.clear();
            let _ = write!(s, "{value:?}");
            self.text(name, &s);
            if s.capacity() > 4 * MAX_SLOTS * TEXT_CHUNK {
                *s = String::new();
            }
            true
        });
        if formatted != Ok(true) {
            self.text(name, &format!("{value:?}"));
        }
    }

    fn captured(&mut self, name: &Key, index: Option<usize>, value: &Value) {
        // A run-time name, or one the span's callsite does not list: only a record
        // holds it.
        let (Cow::Borrowed(_), Some(index)) = (name, index) else {
            self.bailed = true;
            return;
        };
        self.value(index, value);
    }

    fn dict(&mut self, _field: &Field, _text: &str) {
        // Run-time names and exact values from `log_dict`: only a `Record` holds them.
        self.bailed = true;
    }

    fn dict_debug(&mut self, _field: &Field, value: &dyn std::fmt::Debug) {
        // The fields of a `log_dict` event whose names have a run-time callsite
        // (`log_dict::sites`): written as an event's, named by that site. Any other
        // `dict` has run-time names, which only a `Record` holds.
        let written = crate::log_dict::with_pending(value, |fields, site| {
            let Some(site) = site else {
                return false;
            };
            self.site(site);
            for (index, (_, value)) in fields.iter().enumerate() {
                self.value(index, value);
            }
            true
        });
        if written != Some(true) {
            self.bailed = true;
        }
    }
}

/// The entry for a record captured whole (the events [`Encoder`] cannot hold, and
/// records made by trainlog itself), in `slots` (new ones).
pub(crate) fn record_entry(record: Record, ticks: u64, slots: &mut Slots) -> Entry<'_> {
    let mut entry = Entry::new(slots, 0);
    entry.slots.vec.push(Slot::Record(Box::new(record)));
    entry.seal(ticks);
    entry
}

/// What an entry decodes into.
pub(crate) enum Decoded {
    /// The fields went into the record passed in; its time is these ticks.
    Fields { ticks: u64 },
    /// A record captured whole, queued at these ticks.
    Record(Box<Record>, u64),
}

/// The names of the fields of the callsites the worker has seen, so that a field's
/// index becomes its name once per callsite, not per event.
#[derive(Debug, Default)]
pub(crate) struct Names {
    sites: Vec<(&'static FieldSet, Vec<&'static str>)>,
    /// Bumped each time the cache starts over: places found before are stale then.
    generation: u64,
}

impl Names {
    /// Most callsites kept (a training loop has a handful; past this the cache starts over).
    const MAX: usize = 256;

    /// Where the names of each of `sites` are in the cache, in order.
    fn places(&mut self, sites: &Sites) -> ArrayVec<usize, MAX_SITES> {
        if self.sites.len() + sites.len() > Self::MAX {
            // Started over before, not while, looking them up: the places stay valid.
            self.sites.clear();
            self.generation += 1;
        }
        sites
            .iter()
            .map(
                |site| match self.sites.iter().position(|(s, _)| std::ptr::eq(*s, *site)) {
                    Some(place) => place,
                    None => {
                        let names = site.iter().map(|f| unraw(f.name())).collect();
                        self.sites.push((site, names));
                        self.sites.len() - 1
                    }
                },
            )
            .collect()
    }

    /// The name of field `at`, its site found at `places`.
    fn name(&self, places: &[usize], at: At) -> Option<&'static str> {
        let place = *places.get(usize::from(at.site))?;
        self.sites[place].1.get(usize::from(at.index)).copied()
    }
}

/// A lane's sites as its reader keeps them (see [`Entry::start_for`]), and where their
/// names are in the worker's [`Names`]: looked up when the sites change, not per entry.
#[derive(Debug, Default)]
pub(crate) struct Known {
    sites: Sites,
    /// The places, and the generation of the names cache they were found in.
    places: Option<(u64, ArrayVec<usize, MAX_SITES>)>,
}

impl Known {
    /// The sites an entry listed replace these.
    pub(crate) fn set(&mut self, sites: Sites) {
        self.sites = sites;
        self.places = None;
    }

    /// The sites (tests).
    #[cfg(test)]
    pub(crate) fn sites(&self) -> &Sites {
        &self.sites
    }

    /// Where the names of the sites are in `names`.
    fn places<'a>(&'a mut self, names: &mut Names) -> &'a [usize] {
        let fresh =
            matches!(&self.places, Some((generation, _)) if *generation == names.generation);
        if !fresh {
            let places = names.places(&self.sites);
            // Read after the lookup: starting over happens before it (see `places`).
            self.places = Some((names.generation, places));
        }
        self.places
            .as_ref()
            .map_or(&[], |(_, places)| places.as_slice())
    }
}

/// Decodes one entry, its slots taken from `slots` (its head first: the reader has taken
/// the sites before it); `record` must be empty. `known` are the lane's sites, as its
/// reader keeps them; `rank` the worker's. `None` when `slots` do not start with a head (never,
/// for entries made here).
pub(crate) fn decode(
    slots: &mut impl Iterator<Item = Slot>,
    record: &mut Record,
    names: &mut Names,
    known: &mut Known,
    rank: u32,
) -> Option<Decoded> {
    let Some(Slot::Head {
        len,
        flags,
        step_high,
        step_low,
        ticks,
    }) = slots.next()
    else {
        return None;
    };
    let mut rest = slots.take(usize::from(len).saturating_sub(1));
    record.rank = rank;
    record.hparams = flags & FLAG_HPARAMS != 0;
    if flags & (FLAG_STEP | FLAG_BIG_STEP) == FLAG_STEP {
        record.step = Some(u64::from(step_high) << 32 | u64::from(step_low));
    }
    // Looked up again only when the lane's sites changed.
    let places = known.places(names);
    while let Some(slot) = rest.next() {
        let (at, value) = match slot {
            Slot::Record(whole) => {
                rest.for_each(drop);
                return Some(Decoded::Record(whole, ticks));
            }
            Slot::Step(step) => {
                // The last one, when the head says the step is not in it.
                if flags & FLAG_BIG_STEP != 0 {
                    record.step = Some(step);
                }
                continue;
            }
            Slot::I64(at, v) => (at, Value::I64(v)),
            Slot::U64(at, v) => (at, Value::U64(v)),
            Slot::F64(at, v) => (at, Value::F64(v)),
            Slot::Bool(at, v) => (at, Value::Bool(v)),
            Slot::Boxed(at, v) => (at, *v),
            Slot::Text(at, text_len) => {
                let text_len = text_len as usize;
                let mut bytes = Vec::with_capacity(text_len.next_multiple_of(TEXT_CHUNK));
                for _ in 0..text_len.div_ceil(TEXT_CHUNK) {
                    if let Some(Slot::Bytes(part)) = rest.next() {
                        bytes.extend_from_slice(&part);
                    }
                }
                bytes.truncate(text_len);
                let text = text_of(bytes);
                if at == MESSAGE {
                    record.message = Some(text);
                    continue;
                }
                (at, Value::Str(text))
            }
            Slot::Short(at, len, bytes) => {
                let text = text_of(bytes[..usize::from(len).min(SHORT_TEXT)].to_vec());
                if at == MESSAGE {
                    record.message = Some(text);
                    continue;
                }
                (at, Value::Str(text))
            }
            // Not written outside a text, nor a head or site inside an entry.
            Slot::Bytes(_) | Slot::Head { .. } | Slot::Site(_) => continue,
        };
        // A field always names one of its entry's sites (the encoder took it from there).
        if let Some(name) = names.name(places, at) {
            record.fields.push((Cow::Borrowed(name), value));
        }
    }
    Some(Decoded::Fields { ticks })
}

/// The text of bytes that came from a `&str` (replacement characters should they not be
/// UTF-8, which they always are).
fn text_of(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests;
