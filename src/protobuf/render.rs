//! Rendering both sides' messages as JSON, together (the rules are in the
//! module doc of [`super`]).
//!
//! Two passes. [`plan`] looks at every message at one location of the tree,
//! on both sides at once (the pool: the top-level messages, then for a field
//! the occurrences of that field in every message of the pool), and decides
//! per field number how it renders: key, single value or array, omitted
//! zero, packed, floats, and what its LEN values are (text, bytes, or
//! messages, whose pool is planned the same way one level down). [`message`]
//! then writes each side's messages by that plan. Deciding per location
//! rather than per pair of messages gives every message at one location the
//! same shape, as a schema would: elements of a repeated field are
//! comparable whichever elements the comparator pairs.

use super::schema::{FieldDesc, Schema, ENUM, MESSAGE};
use super::wire::{self, Field, Val, I32, I64, LEN, VARINT};
use crate::memeq::same_bytes;

/// Messages nested deeper than this (the top-level ones are at depth 1) are
/// not looked into: their bytes render as a string or bytes. With an array
/// around each level and one around the stream, the JSON is at most
/// 2 × 60 deep, within [`crate::json::MAX_DEPTH`].
pub const MAX_NESTING: usize = 60;

/// How one field number renders wherever the messages of a location hold it.
#[derive(Debug)]
pub(super) struct FieldPlan {
    number: u32,
    /// The member's key and colon, written once here for every message:
    /// the declared name (schema), else the number.
    key: String,
    array: bool,
    /// A single zero value (0, all bits 0, empty) is left out.
    omit_zero: bool,
    /// LEN occurrences are packed values of this wire type.
    packed: Option<u8>,
    /// fixed64 / fixed32 values render as floats.
    f64s: bool,
    f32s: bool,
    /// What LEN occurrences are (when not packed).
    len: Len,
    /// The declared type and its enum or message index (schema).
    typed: Option<(u8, Option<usize>)>,
    /// Schema-less map: the elements are sorted by key.
    by_key: bool,
    /// Schema map: an object keyed by the entries' keys.
    map: bool,
}

#[derive(Debug)]
pub(super) enum Len {
    Text,
    Bytes,
    Message(Plan),
}

/// The fields of one location, sorted by number.
#[derive(Debug, Default)]
pub(super) struct Plan {
    fields: Vec<FieldPlan>,
    /// The location's index among those of the whole plan (see
    /// [`index_locations`]).
    id: usize,
}

/// Number the locations of `plan` (its own, then those below), from
/// `*next` on.
pub(super) fn index_locations(plan: &mut Plan, next: &mut usize) {
    plan.id = *next;
    *next += 1;
    for f in &mut plan.fields {
        if let Len::Message(p) = &mut f.len {
            index_locations(p, next);
        }
    }
}

impl Plan {
    pub fn id(&self) -> usize {
        self.id
    }

    fn find(&self, number: u32) -> Option<&FieldPlan> {
        let mut from = 0;
        self.find_from(&mut from, number)
    }

    /// [`Plan::find`] among the fields from `*from` on, which moves past
    /// the field found: a message's fields, by number, are looked up in one
    /// pass (mostly the next one is the one).
    fn find_from(&self, from: &mut usize, number: u32) -> Option<&FieldPlan> {
        let rest = self.fields.get(*from..)?;
        let i = match rest.first() {
            Some(f) if f.number == number => 0,
            _ => rest.binary_search_by_key(&number, |f| f.number).ok()?,
        };
        *from += i + 1;
        rest.get(i)
    }
}

/// One occurrence in a pool: field number, index of its message, value.
/// (The index as a u32, a pool being smaller than a body: occurrences are
/// moved about, 32 bytes each rather than 40.)
pub(super) type Occ<'a> = (u32, u32, Val<'a>);

/// The plan of a pool of `pool_len` messages at `depth`, of message type
/// `ty` when the schema knows it. `all` holds the occurrences of every field
/// of the pool's messages, by message, each message's in wire order; the
/// messages before `split` are the first side's (see [`children`]).
pub(super) fn plan(
    schema: Option<&Schema>,
    all: Vec<Occ<'_>>,
    pool_len: usize,
    split: u32,
    depth: usize,
    ty: Option<usize>,
) -> Plan {
    let desc = schema.zip(ty).and_then(|(s, t)| s.desc(t));
    // Stable: by message, then wire order, within a number.
    let all = by_number(all);
    let mut fields = Vec::new();
    for group in all.chunk_by(|a, b| a.0 == b.0) {
        let Some(&(number, _, _)) = group.first() else {
            continue;
        };
        let declared = desc.and_then(|d| d.fields.iter().find(|f| f.number == number));
        let typed = schema
            .zip(declared)
            .and_then(|(s, f)| typed(s, f, group, split, depth));
        fields
            .push(typed.unwrap_or_else(|| untyped(schema, number, group, pool_len, split, depth)));
    }
    Plan { fields, id: 0 }
}

/// `all` stably sorted by field number. Field numbers are small in
/// practice: a counting sort, linear; the merge sort when the largest
/// number is far beyond the count (counts would cost more than sorting).
fn by_number(all: Vec<Occ<'_>>) -> Vec<Occ<'_>> {
    if all.windows(2).all(|w| matches!(w, [a, b] if a.0 <= b.0)) {
        return all;
    }
    // starts[n + 1]: how many occurrences number n has; a number far
    // beyond the count sends them to the merge sort.
    let mut starts: Vec<usize> = Vec::new();
    for o in &all {
        let n = o.0 as usize + 1;
        if n >= starts.len() {
            if n > 4 * all.len() + 64 {
                let order = wire::order(all.len(), &|i, j| number(&all, i) <= number(&all, j));
                return wire::gather(&all, &order);
            }
            starts.resize(n + 1, 0);
        }
        if let Some(c) = starts.get_mut(n) {
            *c += 1;
        }
    }
    // Summed, starts[n]: where number n's occurrences go (how many are
    // below n).
    let mut sum = 0;
    for c in starts.iter_mut() {
        sum += *c;
        *c = sum;
    }
    let mut order = vec![0; all.len()];
    for (i, o) in all.iter().enumerate() {
        if let Some(at) = starts.get_mut(o.0 as usize) {
            if let Some(slot) = order.get_mut(*at) {
                *slot = i;
            }
            *at += 1;
        }
    }
    wire::gather(&all, &order)
}

fn number(all: &[Occ], i: usize) -> u32 {
    all.get(i).map_or(0, |o| o.0)
}

/// Exponent bits neither all 0 nor all 1: a normal, finite float.
fn normal64(bits: u64) -> bool {
    let e = (bits >> 52) & 0x7ff;
    e != 0 && e != 0x7ff
}

fn normal32(bits: u32) -> bool {
    let e = (bits >> 23) & 0xff;
    e != 0 && e != 0xff
}

/// The plan of a field without a declaration (or whose data does not fit
/// it), from what its occurrences in the pool are.
fn untyped(
    schema: Option<&Schema>,
    number: u32,
    group: &[Occ],
    pool_len: usize,
    split: u32,
    depth: usize,
) -> FieldPlan {
    let (mut f64s, mut f32s) = (true, true);
    let mut vote = |v: Val| match v {
        Val::I64(b) => f64s &= b == 0 || normal64(b),
        Val::I32(b) => f32s &= b == 0 || normal32(b),
        _ => {}
    };
    // One pass: the wire types there are, the most occurrences in one
    // message, in how many messages (those of one message are together),
    // and the fixed values' votes.
    let (mut mask, mut max, mut present, mut run) = (0u8, 0, 0, 0);
    let mut message = None;
    for o in group {
        mask |= 1 << o.2.wire();
        if message == Some(o.1) {
            run += 1;
        } else {
            (message, run) = (Some(o.1), 1);
            present += 1;
        }
        max = max.max(run);
        vote(o.2);
    }
    let scalars = mask & !(1 << LEN);
    let mut packed = None;
    if mask & 1 << LEN != 0 && scalars.count_ones() == 1 {
        let w = scalars.trailing_zeros() as u8;
        let fits = |o: &Occ| match o.2 {
            Val::Len(b) => wire::packed(b, w, &mut |_| {}),
            _ => true,
        };
        if group.iter().all(fits) {
            packed = Some(w);
            // The packed values vote too.
            for o in group {
                if let Val::Len(b) = o.2 {
                    wire::packed(b, w, &mut vote);
                }
            }
        }
    }
    let array = packed.is_some() || max > 1;
    let mut by_key = false;
    let len = if packed.is_some() || mask & 1 << LEN == 0 {
        Len::Bytes
    } else {
        let (len, map) = len_kind(schema, group, split, depth);
        by_key = array && map;
        len
    };
    FieldPlan {
        number,
        key: member_key(None, number),
        array,
        omit_zero: !array && present < pool_len,
        packed,
        f64s,
        f32s,
        len,
        typed: None,
        by_key,
        map: false,
    }
}

/// What the LEN occurrences of a field are, schema-less; and whether, as
/// messages, they look like map entries.
fn len_kind(schema: Option<&Schema>, group: &[Occ], split: u32, depth: usize) -> (Len, bool) {
    let lens = || {
        group.iter().filter_map(|o| match o.2 {
            Val::Len(b) if !b.is_empty() => Some(b),
            _ => None,
        })
    };
    // Cheapest first: a message's first tag byte is usually a control
    // character, which ends the scan for text at once.
    if lens().all(wire::printable) {
        return (Len::Text, false);
    }
    if depth < MAX_NESTING {
        if let Some(c) = children(group, split) {
            let map = is_map(&c);
            return (
                Len::Message(plan(
                    schema,
                    c.occs,
                    c.len as usize,
                    c.split,
                    depth + 1,
                    None,
                )),
                map,
            );
        }
    }
    let utf8 = lens().all(|b| std::str::from_utf8(b).is_ok());
    (if utf8 { Len::Text } else { Len::Bytes }, false)
}

/// Every LEN occurrence of a group parsed as a message: the pool one level
/// down. A message the same as another in a pool changes no decision of
/// the plan (each is about all the messages or values of a location, or the
/// most in one message), except "no key twice in one message" of maps,
/// which `of` keeps: the second side's messages with the same bytes as the
/// first side's at the same position (the two sides of a dark launch are
/// mostly the same) are left out of the pool, the first side's standing for
/// them.
struct Children<'a> {
    /// The fields of the pool's messages (see [`plan`]).
    occs: Vec<Occ<'a>>,
    /// How many messages the pool has, and how many of them are the first
    /// side's (they come first).
    len: u32,
    split: u32,
    /// For each LEN occurrence of the group, the message holding it and
    /// its message in the pool.
    of: Vec<(u32, u32)>,
}

/// `None` when an occurrence is not a message. The messages before `split`
/// in the group's pool are the first side's.
fn children<'a>(group: &[Occ<'a>], split: u32) -> Option<Children<'a>> {
    let bytes: usize = group
        .iter()
        .map(|o| match o.2 {
            Val::Len(b) => b.len(),
            _ => 0,
        })
        .sum();
    let mut occs = Vec::with_capacity(wire::room(bytes));
    let mut of = Vec::with_capacity(group.len());
    // The first side's values in order, and their messages; how many of
    // the second side's have been seen. (The group is by message: the
    // first side's come first.)
    let mut firsts: Vec<(&[u8], u32)> = Vec::new();
    let mut seconds = 0;
    let mut len = 0;
    for o in group {
        let Val::Len(bytes) = o.2 else {
            continue;
        };
        if o.1 >= split {
            let same = firsts.get(seconds).filter(|f| same_bytes(f.0, bytes));
            seconds += 1;
            if let Some(&(_, child)) = same {
                of.push((o.1, child));
                continue;
            }
        }
        let child = len;
        len += 1;
        let mut b = bytes;
        while !b.is_empty() {
            let (n, v) = wire::field(&mut b)?;
            occs.push((n, child, v));
        }
        if o.1 < split {
            firsts.push((bytes, child));
        }
        of.push((o.1, child));
    }
    Some(Children {
        occs,
        len,
        split: firsts.len() as u32,
        of,
    })
}

/// The key of a map entry (field 1), to sort by: a number's value, a
/// LEN's bytes; absent is (0, empty), as 0 and "" are.
type Key<'a> = (u64, &'a [u8]);

fn entry_key<'a>(entry: &[Field<'a>]) -> Key<'a> {
    entry
        .iter()
        .find(|f| f.0 == 1)
        .map_or((0, &[]), |f| key(f.1))
}

fn key(v: Val<'_>) -> Key<'_> {
    match v {
        Val::Varint(v) | Val::I64(v) => (v, &[]),
        Val::I32(v) => (u64::from(v), &[]),
        Val::Len(b) => (0, b),
    }
}

/// Map entries: only fields 1 (key) and 2 (value), each at most once, and
/// no key twice in one message.
fn is_map(children: &Children) -> bool {
    let mut keys: Vec<Key> = vec![(0, &[]); children.len as usize];
    // Bit 0: has field 1, bit 1: has field 2.
    let mut seen = vec![0u8; keys.len()];
    for &(n, child, v) in &children.occs {
        let (Some(entry), Some(seen)) =
            (keys.get_mut(child as usize), seen.get_mut(child as usize))
        else {
            return false;
        };
        let bit = match n {
            1 => 1,
            2 => 2,
            _ => return false,
        };
        if *seen & bit != 0 {
            return false;
        }
        *seen |= bit;
        if n == 1 {
            *entry = key(v);
        }
    }
    // Each occurrence's (message holding it, key).
    let keys: Vec<(u32, Key)> = children
        .of
        .iter()
        .map(|&(parent, child)| {
            (
                parent,
                keys.get(child as usize).copied().unwrap_or((0, &[])),
            )
        })
        .collect();
    let order = wire::order(keys.len(), &|i, j| keys.get(i) <= keys.get(j));
    order.windows(2).all(|w| match w {
        [i, j] => keys.get(*i) != keys.get(*j),
        _ => true,
    })
}

/// The wire type of a declared field type; `None` for groups and unknown
/// types.
fn wire_of(ty: u8) -> Option<u8> {
    match ty {
        1 | 6 | 16 => Some(I64),
        2 | 7 | 15 => Some(I32),
        3 | 4 | 5 | 8 | 13 | 14 | 17 | 18 => Some(VARINT),
        9 | 11 | 12 => Some(LEN),
        _ => None,
    }
}

/// The plan of a declared field; `None` when an occurrence does not fit
/// the declaration (wire type, not UTF-8, not a message, too deep).
fn typed(
    schema: &Schema,
    f: &FieldDesc,
    group: &[Occ],
    split: u32,
    depth: usize,
) -> Option<FieldPlan> {
    let wire = wire_of(f.ty)?;
    let mut fp = FieldPlan {
        number: f.number,
        key: member_key(Some(&f.name), f.number),
        array: f.repeated,
        omit_zero: !f.repeated && f.ty != MESSAGE,
        packed: None,
        f64s: false,
        f32s: false,
        len: Len::Bytes,
        typed: Some((f.ty, f.target)),
        by_key: false,
        map: false,
    };
    if wire == LEN {
        let lens = group.iter().map(|o| match o.2 {
            Val::Len(b) => Some(b),
            _ => None,
        });
        match f.ty {
            MESSAGE => {
                let target = f.target?;
                if depth >= MAX_NESTING {
                    return None;
                }
                let c = children(group, split)?;
                if c.of.len() != group.len() {
                    return None;
                }
                fp.map = f.repeated && schema.desc(target)?.map_entry;
                fp.len = Len::Message(plan(
                    Some(schema),
                    c.occs,
                    c.len as usize,
                    c.split,
                    depth + 1,
                    Some(target),
                ));
            }
            9 => {
                for b in lens {
                    std::str::from_utf8(b?).ok()?;
                }
                fp.len = Len::Text;
            }
            _ => {
                for b in lens {
                    b?;
                }
            }
        }
    } else {
        for o in group {
            match o.2 {
                Val::Len(b) if f.repeated && wire::packed(b, wire, &mut |_| {}) => {
                    fp.packed = Some(wire)
                }
                v if v.wire() == wire => {}
                _ => return None,
            }
        }
    }
    Some(fp)
}

/// A member's key and colon: `"name":`, else `"7":`.
fn member_key(name: Option<&str>, number: u32) -> String {
    let mut out = String::new();
    match name {
        Some(name) => wire::json_string(&mut out, name),
        None => {
            out.push('"');
            wire::json_u64(&mut out, number.into());
            out.push('"');
        }
    }
    out.push(':');
    out
}

/// The zero value of a field's declared wire type (varint when undeclared).
fn zero(fp: &FieldPlan) -> Val<'static> {
    match fp.typed.and_then(|(ty, _)| wire_of(ty)) {
        Some(I64) => Val::I64(0),
        Some(I32) => Val::I32(0),
        Some(LEN) => Val::Len(&[]),
        _ => Val::Varint(0),
    }
}

/// Where one side's text is written, with what writing needs.
///
/// The two sides of a dark launch are mostly the same, and a message's text
/// depends only on its bytes and its location (the plan is shared): the
/// first side's writer remembers where it wrote each message, per location
/// in order, and the second side's copies that text for a message with the
/// same bytes at the same position among its location's messages instead
/// of writing it again (bytes are compared, so a position out of step
/// only costs the copy).
pub(super) struct Writer<'a, 's> {
    pub out: String,
    schema: Option<&'s Schema>,
    /// The field lists of nested messages, kept for reuse (as many as
    /// levels written at once), rather than one allocation per message.
    spare: Vec<Vec<Field<'a>>>,
    /// Per location, the messages written (bytes, start and end in `out`),
    /// while `record`.
    written: Vec<Vec<Written<'a>>>,
    record: bool,
    /// The second side's: the first side's text and `written`, and how
    /// many of each location's messages have been looked at.
    first: Option<(String, Vec<Vec<Written<'a>>>, Vec<usize>)>,
}

type Written<'a> = (&'a [u8], usize, usize);

impl<'a, 's> Writer<'a, 's> {
    /// The first side's writer, for a plan of `locations` locations.
    pub fn new(capacity: usize, schema: Option<&'s Schema>, locations: usize) -> Self {
        Writer {
            out: String::with_capacity(capacity),
            schema,
            spare: Vec::new(),
            written: vec![Vec::new(); locations],
            record: true,
            first: None,
        }
    }

    /// The second side's writer, which copies from this one's text.
    pub fn second(self, capacity: usize) -> Self {
        let seen = vec![0; self.written.len()];
        Writer {
            out: String::with_capacity(capacity),
            schema: self.schema,
            spare: self.spare,
            written: Vec::new(),
            record: false,
            first: Some((self.out, self.written, seen)),
        }
    }

    /// Both sides' texts (the second side's writer); the first's alone.
    pub fn texts(self) -> (String, String) {
        match self.first {
            Some((first, _, _)) => (first, self.out),
            None => (self.out, String::new()),
        }
    }

    /// Write the message of `bytes` at location `id` by copying the first
    /// side's text when it wrote the same bytes there, at this position;
    /// whether it did.
    pub fn copy(&mut self, id: usize, bytes: &[u8]) -> bool {
        let Some((text, written, seen)) = &mut self.first else {
            return false;
        };
        let Some(at) = seen.get_mut(id) else {
            return false;
        };
        let Some(&(was, start, end)) = written.get(id).and_then(|w| w.get(*at)) else {
            return false;
        };
        *at += 1;
        match text.get(start..end) {
            Some(text) if same_bytes(was, bytes) => {
                self.out.push_str(text);
                true
            }
            _ => false,
        }
    }

    /// The message of `bytes` at location `id` was written from `start`.
    pub fn remember(&mut self, id: usize, bytes: &'a [u8], start: usize) {
        if self.record {
            if let Some(list) = self.written.get_mut(id) {
                list.push((bytes, start, self.out.len()));
            }
        }
    }
}

/// Write one message (its fields sorted by number) by `plan`.
pub(super) fn message<'a>(w: &mut Writer<'a, '_>, fields: &[Field<'a>], plan: &Plan) {
    w.out.push('{');
    let mut first = true;
    let mut next = 0;
    for group in fields.chunk_by(|a, b| a.0 == b.0) {
        let (Some(&(_, last)), Some(fp)) = (
            group.last(),
            group.first().and_then(|f| plan.find_from(&mut next, f.0)),
        ) else {
            continue;
        };
        if !fp.array && fp.omit_zero && last.is_zero() {
            continue;
        }
        if !first {
            w.out.push(',');
        }
        first = false;
        w.out.push_str(&fp.key);
        if fp.map {
            map_object(w, group, fp);
        } else if fp.array {
            array(w, group, fp);
        } else {
            // A singular field given more than once (schema): the last counts.
            value(w, last, fp);
        }
    }
    w.out.push('}');
}

fn array<'a>(w: &mut Writer<'a, '_>, group: &[Field<'a>], fp: &FieldPlan) {
    w.out.push('[');
    let mut first = true;
    let mut item = |w: &mut Writer<'a, '_>, v: Val<'a>| {
        if !first {
            w.out.push(',');
        }
        first = false;
        value(w, v, fp);
    };
    if fp.by_key {
        let mut keys: Vec<Key> = Vec::with_capacity(group.len());
        for f in group {
            keys.push(match f.1 {
                Val::Len(b) => wire::parse(b).map_or((0, &[]), |e| entry_key(&e)),
                _ => (0, &[]),
            });
        }
        for i in wire::order(keys.len(), &|i, j| keys.get(i) <= keys.get(j)) {
            if let Some(&(_, v)) = group.get(i) {
                item(w, v);
            }
        }
    } else {
        for &(_, v) in group {
            match (v, fp.packed) {
                (Val::Len(b), Some(wire)) => {
                    wire::packed(b, wire, &mut |v| item(w, v));
                }
                _ => item(w, v),
            }
        }
    }
    w.out.push(']');
}

/// A schema map: an object keyed by the entries' keys (as strings), in
/// the order of the keys on the wire (numbers by value, strings by bytes);
/// of entries with the same key the last counts.
fn map_object<'a>(w: &mut Writer<'a, '_>, group: &[Field<'a>], fp: &FieldPlan) {
    let Len::Message(plan) = &fp.len else {
        return array(w, group, fp);
    };
    let mut entries = Vec::with_capacity(group.len());
    let mut keys = Vec::with_capacity(group.len());
    for f in group {
        let entry = match f.1 {
            Val::Len(b) => wire::parse(b).unwrap_or_default(),
            _ => Vec::new(),
        };
        keys.push(entry_key(&entry));
        entries.push(entry);
    }
    let order = wire::order(keys.len(), &|i, j| keys.get(i) <= keys.get(j));
    w.out.push('{');
    let mut first = true;
    for (at, &i) in order.iter().enumerate() {
        let Some(entry) = entries.get(i) else {
            continue;
        };
        if order
            .get(at + 1)
            .is_some_and(|&j| keys.get(j) == keys.get(i))
        {
            continue;
        }
        if !first {
            w.out.push(',');
        }
        first = false;
        // The key as it renders, made a JSON string unless it is one (so
        // not remembered: its text is rewritten).
        let start = w.out.len();
        let record = std::mem::replace(&mut w.record, false);
        entry_field(w, entry, 1, plan);
        w.record = record;
        if !w.out.get(start..).unwrap_or_default().starts_with('"') {
            let key = w.out.split_off(start);
            wire::json_string(&mut w.out, &key);
        }
        w.out.push(':');
        entry_field(w, entry, 2, plan);
    }
    w.out.push('}');
}

/// Field `n` of a map entry: its last occurrence, else its zero value (its
/// type's default), or null where no entry at this location has one.
fn entry_field<'a>(w: &mut Writer<'a, '_>, entry: &[Field<'a>], n: u32, plan: &Plan) {
    match plan.find(n) {
        Some(fp) => {
            let last = entry.iter().rev().find(|f| f.0 == n);
            value(w, last.map_or_else(|| zero(fp), |f| f.1), fp);
        }
        None => w.out.push_str("null"),
    }
}

fn value<'a>(w: &mut Writer<'a, '_>, v: Val<'a>, fp: &FieldPlan) {
    let out = &mut w.out;
    if let Some((ty, target)) = fp.typed {
        if typed_value(out, v, ty, target, w.schema) {
            return;
        }
    }
    match v {
        Val::I64(b) if fp.f64s && normal64(b) => wire::json_f64(out, f64::from_bits(b)),
        Val::I32(b) if fp.f32s && normal32(b) => wire::json_f32(out, f32::from_bits(b)),
        Val::Varint(n) | Val::I64(n) => wire::json_u64(out, n),
        Val::I32(b) => wire::json_u64(out, b.into()),
        Val::Len(b) => match &fp.len {
            Len::Text => match std::str::from_utf8(b) {
                Ok(s) => wire::json_string(out, s),
                Err(_) => wire::json_base64(out, b),
            },
            Len::Message(plan) => {
                if w.copy(plan.id, b) {
                    return;
                }
                let start = w.out.len();
                let mut fields = w.spare.pop().unwrap_or_default();
                if wire::parse_into(b, &mut fields) {
                    message(w, &fields, plan);
                } else {
                    wire::json_base64(&mut w.out, b);
                }
                w.spare.push(fields);
                w.remember(plan.id, b, start);
            }
            Len::Bytes => wire::json_base64(out, b),
        },
    }
}

/// A scalar of declared type `ty`; false (nothing written) when the value
/// is not of its wire type or is a LEN (rendered by the plan's [`Len`]).
fn typed_value(
    out: &mut String,
    v: Val,
    ty: u8,
    target: Option<usize>,
    schema: Option<&Schema>,
) -> bool {
    let n = match v {
        _ if wire_of(ty) != Some(v.wire()) => return false,
        Val::Varint(n) | Val::I64(n) => n,
        Val::I32(b) => b.into(),
        Val::Len(_) => return false,
    };
    let signed = match ty {
        1 => return float_text(out, f64::from_bits(n), false),
        2 => return float_text(out, f64::from(f32::from_bits(n as u32)), true),
        4 | 6 | 7 => {
            wire::json_u64(out, n);
            return true;
        }
        13 => i64::from(n as u32),
        8 => {
            out.push_str(if n != 0 { "true" } else { "false" });
            return true;
        }
        ENUM => {
            match target
                .zip(schema)
                .and_then(|(e, s)| s.enum_name(e, n as i32))
            {
                Some(name) => wire::json_string(out, name),
                None => wire::json_i64(out, i64::from(n as i32)),
            }
            return true;
        }
        3 | 16 => n as i64,
        5 | 15 => i64::from(n as i32),
        17 => {
            let n = n as u32;
            i64::from((n >> 1) as i32 ^ -((n & 1) as i32))
        }
        18 => (n >> 1) as i64 ^ -((n & 1) as i64),
        _ => return false,
    };
    wire::json_i64(out, signed);
    true
}

/// A declared double or float (an `f32` widened exactly): a JSON number,
/// or as in the proto3 JSON mapping the strings "NaN", "Infinity",
/// "-Infinity".
fn float_text(out: &mut String, v: f64, is_f32: bool) -> bool {
    if v.is_nan() {
        out.push_str("\"NaN\"");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 {
            "\"Infinity\""
        } else {
            "\"-Infinity\""
        });
    } else if is_f32 {
        wire::json_f32(out, v as f32);
    } else {
        wire::json_f64(out, v);
    }
    true
}
