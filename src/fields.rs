//! Per-field mismatch counters: which JSON fields diverge and how often.
//!
//! Each launch gets a counter `darklaunch.<launch>.field_mismatch.<pointer>`
//! for at most [`MAX_FIELDS`] distinct folded pointers (`/items/*/price`),
//! plus `field_mismatch.other` for the rest, so a response with ever-changing
//! keys cannot blow up Envoy's stats. The admitted pointers are a list in
//! the host's shared data, so the bound holds for the whole process, not per
//! worker: [`admit`] is the list's encoding and admission rule (pure),
//! [`FieldCounters`] one worker's cache in front of it.

use std::collections::HashMap;

use crate::host::Host;
use crate::limits::cas_update;
use crate::vocab::{stat_name, Family, MetricKind};

/// Distinct pointers with a counter of their own, per launch.
pub const MAX_FIELDS: usize = 32;
/// Longest pointer given a counter of its own.
pub const MAX_POINTER_LEN: usize = 128;

/// One worker's per-field counters of one launch.
#[derive(Debug)]
pub struct FieldCounters {
    launch: String,
    /// Shared-data key of the admitted list.
    key: String,
    /// The id of `field_mismatch.other`.
    other: u32,
    /// Counter ids by folded pointer (`other`'s for those past the bound).
    ids: HashMap<String, u32>,
}

impl FieldCounters {
    pub fn new(launch: &str, other: u32) -> Self {
        FieldCounters {
            launch: launch.to_string(),
            key: format!("darklaunch.fields.{launch}"),
            other,
            ids: HashMap::new(),
        }
    }

    /// The counter of one differing field: its own while fewer than
    /// [`MAX_FIELDS`] pointers have one (process-wide), else `other`.
    pub fn counter<H: Host>(&mut self, host: &H, pointer: &str) -> u32 {
        if let Some(id) = self.ids.get(pointer) {
            return *id;
        }
        let Some(suffix) = stat_suffix(pointer) else {
            return self.other;
        };
        let admitted = cas_update(host, &self.key, &mut |cur| {
            let (ok, write) = admit(cur, suffix);
            (write, ok)
        })
        .unwrap_or(false);
        let id = if admitted {
            let name = stat_name(&self.launch, &Family::FieldMismatch.stat(suffix));
            host.define_metric(MetricKind::Counter, &name)
                .unwrap_or(self.other)
        } else {
            self.other
        };
        // Pointers under `other` are cached too, up to a bound: past it they
        // are looked up in shared data again, which stays correct.
        if id != self.other || self.ids.len() < 4 * MAX_FIELDS {
            self.ids.insert(pointer.to_string(), id);
        }
        id
    }
}

/// The stat suffix for a folded pointer, or None when it must count under
/// `other` (too long, or bytes that do not belong in a stat name).
pub fn stat_suffix(pointer: &str) -> Option<&str> {
    if pointer.is_empty() {
        return Some("(root)");
    }
    let ok = pointer.len() <= MAX_POINTER_LEN
        && pointer.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    ok.then_some(pointer)
}

/// Is `suffix` admitted, given the shared list (one suffix per line)?
/// Returns whether it is, and the list to write back when it was just added.
pub fn admit(list: Option<&[u8]>, suffix: &str) -> (bool, Option<Vec<u8>>) {
    let list = list.unwrap_or_default();
    let mut count = 0;
    for line in list.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if line == suffix.as_bytes() {
            return (true, None);
        }
        count += 1;
    }
    if count >= MAX_FIELDS {
        return (false, None);
    }
    let mut out = list.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(suffix.as_bytes());
    out.push(b'\n');
    (true, Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(stat_suffix("/items/*/price"), Some("/items/*/price"));
        assert_eq!(stat_suffix(""), Some("(root)"));
        assert_eq!(stat_suffix("/a\nb"), None);
        assert_eq!(stat_suffix("/é"), None);
        assert_eq!(stat_suffix(&format!("/{}", "a".repeat(200))), None);
    }

    #[test]
    fn admits_up_to_the_bound() {
        let mut list: Option<Vec<u8>> = None;
        for i in 0..MAX_FIELDS {
            let (ok, new) = admit(list.as_deref(), &format!("/f{i}"));
            assert!(ok);
            list = Some(new.unwrap());
        }
        assert_eq!(admit(list.as_deref(), "/f3"), (true, None), "already there");
        assert_eq!(admit(list.as_deref(), "/new"), (false, None), "full");
        assert_eq!(admit(Some(b"/a"), "/b"), (true, Some(b"/a\n/b\n".to_vec())));
    }
}
