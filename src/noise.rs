//! A/A noise cancellation (Diffy's idea), pure.
//!
//! Some fields differ between any two answers, even two answers of the *same*
//! version: timestamps, request ids, random tokens, float jitter. To tell them
//! from real differences, a slice of shadowed requests also goes to a second
//! instance of the primary version (the "A/A" copy), and one [`NoiseModel`]
//! per launch learns, for each folded JSON pointer (`/items/*/etag`):
//!
//! - its **noise rate**: the fraction of A/A pairs (primary vs primary copy)
//!   in which it differed;
//! - its **raw rate**: the fraction of raw pairs (primary vs dark) in which it
//!   differed.
//!
//! # Rates
//!
//! Both are exponentially decaying by time: an observation made `t` ms ago
//! weighs `2^(-t / half_life_ms)` (default half-life 5 minutes). A rate is
//! the decayed count of pairs in which the pointer differed over the decayed
//! count of all pairs of that stream (A/A or raw) observed. A pointer that
//! stops differing in A/A therefore sees its noise rate fall, and is reported
//! again once the dark answer differs there more often than that.
//!
//! Only pairs whose statuses agree and whose bodies were compared as JSON
//! teach the model ([`NoiseModel::learn_aa`], [`NoiseModel::learn_raw`]): a
//! failed copy or a non-JSON body says nothing about which fields are
//! nondeterministic. [`NoiseModel::observe_aa`] and
//! [`NoiseModel::observe_raw`] take the differences of a pair the caller has
//! already chosen to learn from.
//!
//! # The rule
//!
//! A pointer `p` is **noise** when all of these hold, at the time of the
//! latest observation of either stream:
//!
//! 1. the decayed number of A/A pairs observed is at least
//!    `min_aa_observations` (default 5): with too little (or too old) A/A
//!    evidence nothing is noise. Pairs spread over time weigh less than 1
//!    each, so more than 5 are needed in practice (five pairs one minute
//!    apart are worth about 3.9), and once A/A pairs stop arriving the
//!    count falls under the minimum within a few half-lives;
//! 2. `p` differed in at least one A/A pair still remembered (a pointer never
//!    seen differing in A/A is never noise);
//! 3. `raw_rate(p) <= noise_rate(p) × (1 + slack)` (default `slack` 0.25,
//!    which absorbs sampling jitter between two estimates of the same rate;
//!    0 is the literal "real only when the raw rate exceeds the noise rate").
//!
//! A compared pair is classified by [`NoiseModel::classify`]:
//! [`Class::Match`] when nothing differs; [`Class::Noise`] when only the body
//! differs, it was compared as JSON, its differences were not cut at
//! [`MAX_DIFFS`] (an unlisted difference could be real), and every
//! difference's pointer is noise (whatever the difference's kind); otherwise
//! [`Class::Mismatch`]. Status and header differences are never noise.
//!
//! # Bounds
//!
//! At most `max_paths` (default 256) pointers are tracked; a new one evicts
//! the one least recently seen differing (in either stream). An evicted
//! pointer starts again from zero, which underestimates both of its rates
//! for a while.

use std::collections::HashMap;

use crate::compare::{Difference, Verdict, MAX_DIFFS};
use crate::vocab::MismatchKind;

#[derive(Debug, Clone, PartialEq)]
pub struct NoiseConfig {
    /// Half-life of an observation's weight, in ms (at least 1).
    pub half_life_ms: u64,
    /// Decayed A/A pairs needed before anything is noise.
    pub min_aa_observations: f64,
    /// Relative slack of rule 3 (see the module doc).
    pub slack: f64,
    /// Pointers tracked at most.
    pub max_paths: usize,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        NoiseConfig {
            half_life_ms: 5 * 60 * 1000,
            min_aa_observations: 5.0,
            slack: 0.25,
            max_paths: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Match,
    Noise,
    Mismatch,
}

/// What a raw pair amounts to once learned noise is taken out. When the
/// statuses differ, the pair is a status mismatch and nothing else: an
/// error page differs from a real answer everywhere, and counting its body
/// fields or headers would bury the differences that point at the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub class: Class,
    /// For a mismatch: the differing folded pointers that are not learned
    /// noise, each once, in the comparator's order.
    pub real: Vec<String>,
    /// For a mismatch: the compared headers that differ.
    pub headers: Vec<String>,
    /// For a mismatch: what differs. A body whose every listed difference
    /// is learned noise is not a body difference.
    pub kinds: Kinds,
}

/// What differs in a mismatching pair (`mismatch_kind.K`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kinds {
    pub status: bool,
    pub headers: bool,
    pub body: bool,
    pub grpc_status: bool,
}

impl Kinds {
    /// The kinds that are set, in the stats' order.
    pub fn iter(self) -> impl Iterator<Item = MismatchKind> {
        [
            (self.status, MismatchKind::Status),
            (self.headers, MismatchKind::Headers),
            (self.body, MismatchKind::Body),
            (self.grpc_status, MismatchKind::GrpcStatus),
        ]
        .into_iter()
        .filter_map(|(on, k)| on.then_some(k))
    }
}

/// A count that halves every half-life.
#[derive(Debug, Clone, Copy, Default)]
struct Decayed {
    value: f64,
    at_ms: u64,
}

impl Decayed {
    fn at(&self, now_ms: u64, half_life_ms: u64) -> f64 {
        let dt = now_ms.saturating_sub(self.at_ms);
        if dt == 0 {
            return self.value;
        }
        self.value * (-(dt as f64) / half_life_ms.max(1) as f64).exp2()
    }

    fn add(&mut self, now_ms: u64, half_life_ms: u64, x: f64) {
        self.value = self.at(now_ms, half_life_ms) + x;
        self.at_ms = self.at_ms.max(now_ms);
    }
}

#[derive(Debug, Clone, Default)]
struct PathStats {
    aa: Decayed,
    raw: Decayed,
    /// Sequence number of the last time it differed, for eviction.
    last_seen: u64,
}

#[derive(Debug, Clone)]
pub struct NoiseModel {
    cfg: NoiseConfig,
    aa_total: Decayed,
    raw_total: Decayed,
    /// The latest time any observation was made at.
    now_ms: u64,
    seq: u64,
    paths: HashMap<String, PathStats>,
}

#[derive(Clone, Copy)]
enum Stream {
    Aa,
    Raw,
}

impl Default for NoiseModel {
    fn default() -> Self {
        Self::new(NoiseConfig::default())
    }
}

impl NoiseModel {
    pub fn new(cfg: NoiseConfig) -> Self {
        NoiseModel {
            cfg,
            aa_total: Decayed::default(),
            raw_total: Decayed::default(),
            now_ms: 0,
            seq: 0,
            paths: HashMap::new(),
        }
    }

    /// An A/A pair (primary vs primary copy) was compared with these
    /// differences; every tracked pointer not among them did not differ.
    pub fn observe_aa(&mut self, now_ms: u64, diffs: &[Difference]) {
        self.observe(Stream::Aa, now_ms, diffs);
    }

    /// A raw pair (primary vs dark) was compared with these differences.
    pub fn observe_raw(&mut self, now_ms: u64, diffs: &[Difference]) {
        self.observe(Stream::Raw, now_ms, diffs);
    }

    /// [`Self::observe_aa`] with a verdict, when it can teach anything (see
    /// [`learnable`]); returns whether it did.
    pub fn learn_aa(&mut self, now_ms: u64, verdict: &Verdict) -> bool {
        let ok = learnable(verdict);
        if ok {
            self.observe_aa(now_ms, &verdict.diffs);
        }
        ok
    }

    /// [`Self::observe_raw`] with a verdict, when it can teach anything (see
    /// [`learnable`]); returns whether it did. Call it before
    /// [`Self::classify`] on the same verdict.
    pub fn learn_raw(&mut self, now_ms: u64, verdict: &Verdict) -> bool {
        let ok = learnable(verdict);
        if ok {
            self.observe_raw(now_ms, &verdict.diffs);
        }
        ok
    }

    fn observe(&mut self, stream: Stream, now_ms: u64, diffs: &[Difference]) {
        let hl = self.cfg.half_life_ms;
        self.now_ms = self.now_ms.max(now_ms);
        match stream {
            Stream::Aa => self.aa_total.add(now_ms, hl, 1.0),
            Stream::Raw => self.raw_total.add(now_ms, hl, 1.0),
        }
        // One count per pointer per pair, whatever the number of kinds.
        let mut seen: Vec<&str> = Vec::with_capacity(diffs.len());
        for d in diffs {
            if seen.contains(&d.pointer.as_str()) {
                continue;
            }
            seen.push(&d.pointer);
            self.seq += 1;
            let seq = self.seq;
            let Some(stats) = self.entry(&d.pointer) else {
                continue;
            };
            stats.last_seen = seq;
            match stream {
                Stream::Aa => stats.aa.add(now_ms, hl, 1.0),
                Stream::Raw => stats.raw.add(now_ms, hl, 1.0),
            }
        }
    }

    /// The stats of `pointer`, created (evicting the least recently seen
    /// pointer when full) if needed; `None` only when `max_paths` is 0.
    fn entry(&mut self, pointer: &str) -> Option<&mut PathStats> {
        if !self.paths.contains_key(pointer) {
            if self.cfg.max_paths == 0 {
                return None;
            }
            while self.paths.len() >= self.cfg.max_paths {
                let oldest = self
                    .paths
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => self.paths.remove(&k),
                    None => break,
                };
            }
            self.paths.insert(pointer.to_string(), PathStats::default());
        }
        self.paths.get_mut(pointer)
    }

    /// Decayed number of A/A pairs observed, as of the latest observation.
    pub fn aa_observations(&self) -> f64 {
        self.aa_total.at(self.now_ms, self.cfg.half_life_ms)
    }

    /// Fraction of A/A pairs in which `pointer` differed; `None` when it is
    /// not tracked or no A/A pair was observed.
    pub fn noise_rate(&self, pointer: &str) -> Option<f64> {
        let stats = self.paths.get(pointer)?;
        rate(stats.aa, self.aa_total, self.now_ms, self.cfg.half_life_ms)
    }

    /// Fraction of raw pairs in which `pointer` differed; `None` when it is
    /// not tracked or no raw pair was observed.
    pub fn raw_rate(&self, pointer: &str) -> Option<f64> {
        let stats = self.paths.get(pointer)?;
        rate(
            stats.raw,
            self.raw_total,
            self.now_ms,
            self.cfg.half_life_ms,
        )
    }

    /// Pointers currently tracked.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn tracked(&self) -> usize {
        self.paths.len()
    }

    /// The rule of the module doc for one folded pointer.
    pub fn is_noise(&self, pointer: &str) -> bool {
        // Written so that a NaN anywhere means "not noise".
        let enough = self.aa_observations() >= self.cfg.min_aa_observations;
        let Some(noise) = self.noise_rate(pointer) else {
            return false;
        };
        let seen = noise > 0.0;
        if !enough || !seen {
            return false;
        }
        let raw = self.raw_rate(pointer).unwrap_or(0.0);
        raw <= noise * (1.0 + self.cfg.slack.max(0.0))
    }

    /// Match, noise or mismatch, per the module doc.
    pub fn classify(&self, verdict: &Verdict) -> Class {
        if verdict.is_match() {
            return Class::Match;
        }
        let body_only = !verdict.status && !verdict.grpc_status && verdict.headers.is_empty();
        if body_only && lists_every_difference(verdict) && self.all_noise(verdict) {
            Class::Noise
        } else {
            Class::Mismatch
        }
    }

    fn all_noise(&self, verdict: &Verdict) -> bool {
        verdict.diffs.iter().all(|d| self.is_noise(&d.pointer))
    }

    /// Learn from a raw pair (primary vs dark) and judge it: its class, and
    /// for a mismatch the fields and kinds that are not learned noise.
    pub fn judge(&mut self, now_ms: u64, verdict: &Verdict) -> Judgement {
        self.learn_raw(now_ms, verdict);
        let class = self.classify(verdict);
        // Different HTTP statuses or gRPC codes: that and nothing else.
        if class != Class::Mismatch || verdict.status || verdict.grpc_status {
            return Judgement {
                class,
                real: Vec::new(),
                headers: Vec::new(),
                kinds: Kinds {
                    status: verdict.status,
                    grpc_status: verdict.grpc_status,
                    ..Kinds::default()
                },
            };
        }
        let mut real: Vec<String> = Vec::new();
        for d in &verdict.diffs {
            if !real.contains(&d.pointer) && !self.is_noise(&d.pointer) {
                real.push(d.pointer.clone());
            }
        }
        // Every listed difference is learned noise (`real` is empty).
        let body_is_noise = real.is_empty() && lists_every_difference(verdict);
        Judgement {
            class,
            real,
            headers: verdict.headers.clone(),
            kinds: Kinds {
                status: false,
                headers: !verdict.headers.is_empty(),
                body: verdict.body && !body_is_noise,
                grpc_status: false,
            },
        }
    }
}

/// The body was compared as JSON and every difference is listed (none cut
/// at [`MAX_DIFFS`]): only then can its differences all be noise.
fn lists_every_difference(verdict: &Verdict) -> bool {
    !verdict.diffs.is_empty() && verdict.diffs.len() < MAX_DIFFS
}

/// True when a compared pair can teach the model: statuses agree (a failed
/// or redirected copy is not a nondeterministic field), and the body either
/// matched or was compared as JSON (body differences come with pointers).
pub fn learnable(verdict: &Verdict) -> bool {
    let bytes_only = verdict.body && verdict.diffs.is_empty();
    !verdict.status && !verdict.grpc_status && !bytes_only
}

fn rate(hits: Decayed, total: Decayed, now_ms: u64, hl: u64) -> Option<f64> {
    let total = total.at(now_ms, hl);
    let positive = total > 0.0;
    if !positive {
        return None;
    }
    Some((hits.at(now_ms, hl) / total).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::DiffKind;

    const MIN: u64 = 60_000;

    fn diffs(pointers: &[&str]) -> Vec<Difference> {
        pointers
            .iter()
            .map(|p| Difference {
                pointer: p.to_string(),
                kind: DiffKind::Value,
            })
            .collect()
    }

    fn body_verdict(pointers: &[&str]) -> Verdict {
        let diffs = diffs(pointers);
        Verdict {
            status: false,
            grpc_status: false,
            headers: Vec::new(),
            body: !diffs.is_empty(),
            paths: diffs.iter().map(|d| d.pointer.clone()).collect(),
            diffs,
        }
    }

    /// A model that saw `n` A/A and `n` raw pairs, one every 10 s from t=0,
    /// all differing at `/ts`.
    fn learned(n: u64) -> (NoiseModel, u64) {
        let mut m = NoiseModel::default();
        let mut t = 0;
        for _ in 0..n {
            m.observe_aa(t, &diffs(&["/ts"]));
            m.observe_raw(t, &diffs(&["/ts"]));
            t += 10_000;
        }
        (m, t)
    }

    #[test]
    fn learns_a_nondeterministic_field_and_cancels_it() {
        let (m, _) = learned(10);
        assert!(m.is_noise("/ts"));
        assert!((m.noise_rate("/ts").unwrap() - 1.0).abs() < 1e-9);
        assert!(!m.is_noise("/price"));
        assert_eq!(m.classify(&body_verdict(&["/ts"])), Class::Noise);
        // One real difference beside it: mismatch.
        assert_eq!(
            m.classify(&body_verdict(&["/ts", "/price"])),
            Class::Mismatch
        );
        assert_eq!(m.classify(&body_verdict(&[])), Class::Match);
        // Status or header differences are never noise.
        let mut v = body_verdict(&["/ts"]);
        v.status = true;
        assert_eq!(m.classify(&v), Class::Mismatch);
        let mut v = body_verdict(&["/ts"]);
        v.headers = vec!["x-v".into()];
        assert_eq!(m.classify(&v), Class::Mismatch);
        // A byte difference (no pointers) is never noise.
        let mut v = body_verdict(&[]);
        v.body = true;
        assert_eq!(m.classify(&v), Class::Mismatch);
        // Any kind at a noise pointer counts as noise.
        let v = Verdict {
            body: true,
            diffs: vec![Difference {
                pointer: "/ts".into(),
                kind: DiffKind::Type,
            }],
            ..Verdict::default()
        };
        assert_eq!(m.classify(&v), Class::Noise);
    }

    #[test]
    fn needs_minimum_aa_observations() {
        let mut m = NoiseModel::default();
        // All at the same instant: no decay between them.
        for _ in 0..4 {
            m.observe_aa(1000, &diffs(&["/ts"]));
            m.observe_raw(1000, &diffs(&["/ts"]));
        }
        assert!(!m.is_noise("/ts"), "4 A/A pairs are not enough");
        m.observe_aa(1000, &diffs(&["/ts"]));
        assert!(m.is_noise("/ts"));
        // Spread over time, older pairs weigh less: five pairs one minute
        // apart are worth about 3.9, not yet enough.
        let mut m = NoiseModel::default();
        for i in 0..5 {
            m.observe_aa(i * MIN, &diffs(&["/ts"]));
            m.observe_raw(i * MIN, &diffs(&["/ts"]));
        }
        assert!(!m.is_noise("/ts"));
        m.observe_aa(5 * MIN, &diffs(&["/ts"]));
        m.observe_aa(5 * MIN, &diffs(&["/ts"]));
        assert!(m.is_noise("/ts"));
        assert_eq!(m.classify(&body_verdict(&["/ts"])), Class::Noise);
    }

    #[test]
    fn never_seen_in_aa_is_never_noise() {
        let mut m = NoiseModel::default();
        for i in 0..50 {
            m.observe_aa(i, &[]);
            m.observe_raw(i, &diffs(&["/x"]));
        }
        assert!(!m.is_noise("/x"));
        assert_eq!(m.noise_rate("/x"), Some(0.0));
        assert_eq!(m.raw_rate("/x"), Some(1.0));
        assert!(!m.is_noise("/never"));
        assert_eq!(m.noise_rate("/never"), None);
    }

    #[test]
    fn decay_brings_a_field_back() {
        let (mut m, mut t) = learned(30);
        assert!(m.is_noise("/ts"));
        // The field stops being noisy in A/A (the primary was fixed), but the
        // dark version still differs there: within a few half-lives it is
        // reported again.
        let mut flipped = None;
        for step in 0..(60 * 6) {
            m.observe_aa(t, &[]);
            m.observe_raw(t, &diffs(&["/ts"]));
            if flipped.is_none() && !m.is_noise("/ts") {
                flipped = Some(step);
            }
            t += 10_000;
        }
        let flipped = flipped.expect("reported again");
        // Raw stays at 100%, so it flips as soon as the noise rate is below
        // 1/1.25 = 0.8: with one pair per 10 s, after 6 clean A/A pairs
        // (a fifth of a half-life).
        assert_eq!(flipped, 5);
        assert!(m.noise_rate("/ts").unwrap() < 0.01);
        assert_eq!(m.classify(&body_verdict(&["/ts"])), Class::Mismatch);
    }

    #[test]
    fn stale_aa_evidence_expires() {
        let (mut m, t) = learned(10);
        assert!(m.is_noise("/ts"));
        // No A/A pair for an hour (the copy cluster went away), raw pairs go
        // on: the decayed A/A count falls under the minimum.
        m.observe_raw(t + 60 * MIN, &diffs(&["/ts"]));
        assert!(m.aa_observations() < 1.0);
        assert!(!m.is_noise("/ts"));
    }

    #[test]
    fn differing_more_in_raw_than_in_aa_stays_real() {
        let mut m = NoiseModel::default();
        let mut t = 0;
        for i in 0..200u64 {
            // A/A: /count differs one pair in five, /ts always.
            let aa = if i % 5 == 0 {
                diffs(&["/ts", "/count"])
            } else {
                diffs(&["/ts"])
            };
            m.observe_aa(t, &aa);
            // Raw: /count always differs (the dark version has a bug).
            m.observe_raw(t, &diffs(&["/ts", "/count"]));
            t += 5_000;
        }
        let noise = m.noise_rate("/count").unwrap();
        assert!((0.15..0.25).contains(&noise), "{noise}");
        assert!(!m.is_noise("/count"));
        assert!(m.is_noise("/ts"));
        assert_eq!(
            m.classify(&body_verdict(&["/ts", "/count"])),
            Class::Mismatch
        );
        assert_eq!(m.classify(&body_verdict(&["/ts"])), Class::Noise);

        // The same field differing in raw as often as in A/A is noise.
        let mut m = NoiseModel::default();
        for i in 0..200u64 {
            let d = if i % 5 == 0 {
                diffs(&["/count"])
            } else {
                vec![]
            };
            m.observe_aa(i * 5_000, &d);
            m.observe_raw(i * 5_000, &d);
        }
        assert!(m.is_noise("/count"));
    }

    #[test]
    fn slack_zero_is_the_literal_rule() {
        let mut m = NoiseModel::new(NoiseConfig {
            slack: 0.0,
            ..NoiseConfig::default()
        });
        for i in 0..10u64 {
            m.observe_aa(i, &diffs(&["/a"]));
            m.observe_raw(i, &diffs(&["/a"]));
        }
        assert!(m.is_noise("/a"), "equal rates: noise");
        for i in 10..20u64 {
            let d = if i % 2 == 0 { diffs(&["/a"]) } else { vec![] };
            m.observe_aa(i, &d);
            m.observe_raw(i, &diffs(&["/a"]));
        }
        assert!(!m.is_noise("/a"), "raw above noise: real");
    }

    #[test]
    fn eviction_of_least_recently_seen() {
        let mut m = NoiseModel::new(NoiseConfig {
            max_paths: 3,
            ..NoiseConfig::default()
        });
        for i in 0..10 {
            m.observe_aa(i, &diffs(&["/a", "/b", "/c"]));
            m.observe_raw(i, &diffs(&["/a", "/b", "/c"]));
        }
        assert!(m.is_noise("/a") && m.is_noise("/b") && m.is_noise("/c"));
        // /a seen again, then a new pointer: /b (least recently seen) goes.
        m.observe_raw(10, &diffs(&["/a"]));
        m.observe_raw(11, &diffs(&["/d"]));
        assert_eq!(m.tracked(), 3);
        assert!(m.noise_rate("/b").is_none());
        assert!(!m.is_noise("/b"));
        assert!(m.noise_rate("/a").is_some() && m.noise_rate("/c").is_some());
        assert!(m.raw_rate("/d").is_some());
        // More new pointers in one pair than room: the table stays bounded
        // and keeps the latest.
        m.observe_raw(12, &diffs(&["/e", "/f", "/g", "/h"]));
        assert_eq!(m.tracked(), 3);
        assert!(m.raw_rate("/h").is_some() && m.raw_rate("/e").is_none());
    }

    #[test]
    fn default_bound_is_256() {
        let mut m = NoiseModel::default();
        for i in 0..1000u64 {
            m.observe_aa(i, &diffs(&[&format!("/k{i}")]));
        }
        assert_eq!(m.tracked(), 256);
        assert!(m.noise_rate("/k999").is_some());
        assert!(m.noise_rate("/k743").is_none());
        assert!(m.noise_rate("/k744").is_some());
    }

    #[test]
    fn one_count_per_pointer_per_pair() {
        let mut m = NoiseModel::default();
        let two_kinds = vec![
            Difference {
                pointer: "/a".into(),
                kind: DiffKind::Value,
            },
            Difference {
                pointer: "/a".into(),
                kind: DiffKind::Type,
            },
        ];
        for i in 0..5 {
            m.observe_aa(i, &two_kinds);
        }
        assert!((m.noise_rate("/a").unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn truncated_diffs_are_never_noise() {
        let mut m = NoiseModel::default();
        let many: Vec<String> = (0..MAX_DIFFS).map(|i| format!("/k{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        for i in 0..10 {
            m.observe_aa(i, &diffs(&many));
            m.observe_raw(i, &diffs(&many));
        }
        assert!(many.iter().all(|p| m.is_noise(p)));
        assert_eq!(m.classify(&body_verdict(&many)), Class::Mismatch);
        assert_eq!(
            m.classify(&body_verdict(&many[..MAX_DIFFS - 1])),
            Class::Noise
        );
    }

    #[test]
    fn learn_skips_pairs_without_pointers_or_with_status() {
        let mut m = NoiseModel::default();
        let mut failed = body_verdict(&["/a"]);
        failed.status = true;
        let mut bytes = body_verdict(&[]);
        bytes.body = true;
        for i in 0..10 {
            assert!(!m.learn_aa(i, &failed));
            assert!(!m.learn_aa(i, &bytes));
        }
        assert_eq!(m.aa_observations(), 0.0);
        for i in 0..10 {
            assert!(m.learn_aa(i, &body_verdict(&["/a"])));
            assert!(m.learn_aa(i, &body_verdict(&[])));
            assert!(m.learn_raw(i, &body_verdict(&["/a"])));
        }
        assert!((m.noise_rate("/a").unwrap() - 0.5).abs() < 1e-9);
        assert!(!m.is_noise("/a"), "raw 100% > A/A 50%");
    }

    #[test]
    fn time_oddities_do_not_break_it() {
        let mut m = NoiseModel::new(NoiseConfig {
            half_life_ms: 0,
            ..NoiseConfig::default()
        });
        m.observe_aa(u64::MAX, &diffs(&["/a"]));
        m.observe_aa(0, &diffs(&["/a"]));
        m.observe_raw(5, &diffs(&["/a"]));
        for p in ["/a", "/b"] {
            for r in [m.noise_rate(p), m.raw_rate(p)].into_iter().flatten() {
                assert!(r.is_finite() && (0.0..=1.0).contains(&r), "{r}");
            }
        }
        assert!(m.aa_observations().is_finite());
        let _ = m.is_noise("/a");
        let mut m = NoiseModel::new(NoiseConfig {
            max_paths: 0,
            ..NoiseConfig::default()
        });
        m.observe_aa(1, &diffs(&["/a"]));
        assert_eq!(m.tracked(), 0);
        assert!(!m.is_noise("/a"));
    }

    #[test]
    fn with_real_comparisons() {
        use crate::compare::{try_compare, BodyMode, CompareRules, Side};
        let compare = |r, a: &Side, b: &Side| try_compare(r, a, b).unwrap();
        let rules = CompareRules {
            body: BodyMode::Json,
            ..CompareRules::default()
        };
        let side = |body: &'static str| Side {
            status: 200,
            headers: &[],
            body: body.as_bytes(),
        };
        let mut m = NoiseModel::default();
        for i in 0..10u64 {
            let (a, b) = if i % 2 == 0 {
                (
                    r#"{"items":[{"id":1,"at":1}],"n":1}"#,
                    r#"{"items":[{"id":1,"at":2}],"n":1}"#,
                )
            } else {
                (
                    r#"{"items":[{"id":1,"at":5}],"n":1}"#,
                    r#"{"items":[{"id":1,"at":7}],"n":1}"#,
                )
            };
            assert!(m.learn_aa(i * 1000, &compare(&rules, &side(a), &side(b))));
            assert!(m.learn_raw(i * 1000, &compare(&rules, &side(a), &side(b))));
        }
        let v = compare(
            &rules,
            &side(r#"{"items":[{"id":1,"at":1},{"id":2,"at":3}],"n":1}"#),
            &side(r#"{"items":[{"id":1,"at":9},{"id":2,"at":4}],"n":1}"#),
        );
        m.learn_raw(10_000, &v);
        assert_eq!(m.classify(&v), Class::Noise);
        let v = compare(
            &rules,
            &side(r#"{"items":[{"id":1,"at":1}],"n":1}"#),
            &side(r#"{"items":[{"id":1,"at":9}],"n":2}"#),
        );
        m.learn_raw(11_000, &v);
        assert_eq!(m.classify(&v), Class::Mismatch);
    }

    #[test]
    fn judge_leaves_noise_out_of_fields_and_kinds() {
        let (mut m, t) = learned(10);
        let j = m.judge(t, &body_verdict(&["/ts"]));
        assert_eq!(j.class, Class::Noise);
        assert!(j.real.is_empty());
        let j = m.judge(t, &body_verdict(&["/ts", "/price", "/price"]));
        assert_eq!(j.class, Class::Mismatch);
        assert_eq!(j.real, vec!["/price".to_string()]);
        assert_eq!(j.kinds.iter().collect::<Vec<_>>(), vec![MismatchKind::Body]);
        // Statuses differ: a status mismatch only, whatever else differs.
        let mut v = body_verdict(&["/ts", "/error"]);
        v.status = true;
        v.headers = vec!["content-type".into()];
        let j = m.judge(t, &v);
        assert_eq!(j.class, Class::Mismatch);
        assert_eq!(
            j.kinds.iter().collect::<Vec<_>>(),
            vec![MismatchKind::Status]
        );
        assert!(j.real.is_empty() && j.headers.is_empty());
        // Headers differ: named.
        let mut v = body_verdict(&["/price"]);
        v.headers = vec!["x-version".into()];
        let j = m.judge(t, &v);
        assert_eq!(j.headers, ["x-version"]);
        assert_eq!(
            j.kinds.iter().collect::<Vec<_>>(),
            vec![MismatchKind::Headers, MismatchKind::Body]
        );
        // Bytes differ (no pointers): a body mismatch.
        let v = Verdict {
            body: true,
            ..Verdict::default()
        };
        let j = m.judge(t, &v);
        assert!(j.kinds.body && j.real.is_empty());
        assert_eq!(m.judge(t, &Verdict::default()).class, Class::Match);
    }
}
