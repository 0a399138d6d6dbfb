//! MurmurHash3 x86_32 and the sticky sampling rule built on it.
//!
//! The hash is Austin Appleby's MurmurHash3_x86_32 (public domain reference
//! `MurmurHash3.cpp`), the same function flagd's `fractional` operator uses
//! (via `github.com/twmb/murmur3`'s `StringSum32`, seed 0).
//!
//! Sampling rule: hash the UTF-8 bytes of `name` followed by `value` with
//! seed 0, treat the result as an unsigned 32-bit number `h`, and shadow the
//! request when `h < percent / 100 × 2^32`. This is flagd's "v2" bucketing
//! (`(uint64(h) * totalWeight) >> 32`, flagd core ≥ v0.15.0, PR #1909) for a
//! two-variant split `[percent, 100 - percent]` where the first variant is
//! "in the sample": the low end of the unsigned hash range is sampled.

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// 2^32 as a float; every `u32` is exactly representable in an `f64`.
const TWO_POW_32: f64 = 4_294_967_296.0;

/// Mixes one 4-byte little-endian block into the running state.
#[inline]
fn mix_block(h: u32, k: u32) -> u32 {
    let h = h ^ scramble(k);
    h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64)
}

/// The per-block (and tail) key scramble.
#[inline]
fn scramble(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

/// Final avalanche (`fmix32`).
#[inline]
fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// MurmurHash3 over a byte stream, so that several slices can be hashed as
/// one message without being copied together first.
pub fn murmur3_stream<I: Iterator<Item = u8>>(bytes: I, seed: u32) -> u32 {
    let mut h = seed;
    let mut block: u32 = 0;
    let mut filled: u32 = 0; // bytes currently held in `block` (0..=3)
    let mut len: u32 = 0; // total length mod 2^32, as in the reference

    for b in bytes {
        block |= u32::from(b) << (8 * filled);
        filled += 1;
        len = len.wrapping_add(1);
        if filled == 4 {
            h = mix_block(h, block);
            block = 0;
            filled = 0;
        }
    }
    if filled > 0 {
        h ^= scramble(block);
    }
    fmix32(h ^ len)
}

/// MurmurHash3 x86_32 (Austin Appleby), as used by flagd's `fractional` operator.
#[cfg(test)]
pub fn murmur3_x86_32(data: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let blocks = data.chunks_exact(4);
    let tail = blocks.remainder();
    for chunk in blocks {
        let k = chunk
            .iter()
            .rev()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        h = mix_block(h, k);
    }
    if !tail.is_empty() {
        let k = tail
            .iter()
            .rev()
            .fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        h ^= scramble(k);
    }
    // The reference mixes in the length as a 32-bit int (truncating).
    fmix32(h ^ (data.len() as u32))
}

/// Hash of the UTF-8 bytes of `name` immediately followed by those of `value`
/// (seed 0) — the bucketing input flagd builds as `flagKey + targetingKey`.
fn sticky_hash(name: &str, value: &str) -> u32 {
    murmur3_stream(name.bytes().chain(value.bytes()), 0)
}

/// True when a request with sticky key value `value` falls inside `percent` (0..=100, fractions allowed) for launch `name`:
/// h = murmur3_x86_32(utf8(name + value), 0); shadow when (h as f64) < percent / 100 × 2^32.  percent 100 → always true; 0 → always false.
///
/// Percent values above 100 count as 100; values at or below 0, and NaN,
/// count as 0. The threshold is computed as `percent × 2^32 / 100` (the
/// scaling by 2^32 is exact), so for whole-number percents the result equals
/// flagd's integer rule `(h × 100) >> 32 < percent` exactly.
pub fn in_sample(name: &str, value: &str, percent: f64) -> bool {
    in_percent(sticky_hash(name, value), percent)
}

/// True when a uniform 32-bit draw (a sticky hash or a random number) falls
/// inside `percent`: `draw < percent / 100 × 2^32`, with percents above 100
/// counting as 100 and those at or below 0 (and NaN) as 0. The one
/// threshold rule of sticky, random and A/A sampling.
pub fn in_percent(draw: u32, percent: f64) -> bool {
    if percent >= 100.0 {
        return true;
    }
    if percent.is_nan() || percent <= 0.0 {
        return false;
    }
    let threshold = percent * TWO_POW_32 / 100.0;
    f64::from(draw) < threshold
}

#[cfg(test)]
mod tests {
    //! Sources of the expected values:
    //!
    //! * Hash vectors: `twmb/murmur3` `murmur_test.go` (the library flagd
    //!   uses; same table as `spaolacci/murmur3`, seeds 0 / 1 / 0x2a), git's
    //!   `t0095-bloom.sh`, the widely reproduced SMHasher-derived set (also
    //!   in the `mmh3` Python package's tests: seeds 0x9747b28c / 0xffffffff,
    //!   tails of 1, 2 and 3 bytes), and SMHasher's own verification value
    //!   for MurmurHash3_x86_32, 0xB0F57EE3.
    //! * flagd vectors: open-feature/flagd `core/pkg/evaluator/fractional_test.go`
    //!   at commit bbb05d4bc3903ea8bf5123a88b1cf558750a22ab (core/v0.16.1+1,
    //!   2026-07-31), and open-feature/flagd-testbed v3.9.0 (commit
    //!   82ba89ec8db498fa51368e558e4d87642d9e93c4) `gherkin/targeting.feature`
    //!   / `evaluator/gherkin/fractional.feature` with `flags/custom-ops.json`.
    //!
    //! flagd's bucketing history (all on MurmurHash3_x86_32, seed 0):
    //! * v1 (flagd core < v0.15.0): `abs(int32(h)) / MaxInt32 * 100`, compared
    //!   against cumulative percentages. Not ours: it folds the signed range,
    //!   so both ends of the unsigned range land in the lowest bucket.
    //! * v2 (flagd core ≥ v0.15.0, PR #1909, still what flagd HEAD runs):
    //!   `bucket = (uint64(h) * totalWeight) >> 32`, variant k chosen iff
    //!   bucket lies in its cumulative weight range. For a split
    //!   `[p, 100 - p]` the first variant is chosen iff `h < p/100 × 2^32`:
    //!   exactly our rule. ALL published v2 vectors hold below.
    //! * v3 (testbed tag `@fractional-v3`, ADR "fractional-non-string-rand-units",
    //!   not yet in flagd's own evaluator): hashes a CBOR encoding of the
    //!   bucketing value (`[flagKey, targetingKey]` as a CBOR array for the
    //!   shorthand) instead of raw UTF-8. It changes the *hash input*, not the
    //!   bucket mapping, so it cannot be expressed as `name + value` and those
    //!   vectors are not tested here.
    //! * flagd's `BenchmarkFractionalEvaluation` still carries v1 expectations
    //!   (test_a→blue, test_b→red, test_c→green, test_d→blue; benchmarks are
    //!   not run by `go test`). Under v2 the same hashes give yellow, yellow,
    //!   blue, yellow; see `flagd_benchmark_vectors_are_stale_v1`.
    //!
    //! Hashes computed here (input = bytes hashed, h = murmur3 seed 0,
    //! bv100 = (h*100)>>32):
    //!   fractional-flagjack                 0x9fe843e0 bv100 62
    //!   fractional-flagqueen                0xff04ff2f bv100 99
    //!   fractional-flagten                  0x2fcb300a bv100 18
    //!   fractional-flagnine                 0x53cfd6c5 bv100 32
    //!   fractional-flag3                    0x2405fbd8 bv100 14
    //!   fractional-flag-shorthandjon@company.com  0x24d687a4 bv100 14
    //!   fractional-flag-shorthandjane@company.com 0x8a0bf0a6 bv100 53
    //!   shared-seedseven / eight / nine / two     0xaa20d279 66 / 0x5d32e029 36 / 0x2fe5318f 18 / 0xdc4b3b3c 86
    //!   shared-seedjack / queen / ten             0xa253ac07 63 / 0x8c810a6b 54 / 0xa437be9d 64
    //!   jon@company.com 0x5cd91845 36;  user1 0xc50b443d 76
    //!   headerColor + rachel/monica/joey/ross@faas.com  0x6b9fc846 42 / 0xc5920f6f 77 / 0x1273db27 7 / 0x5f1c730d 37
    //!   my-seed + rachel/monica/joey/ross@faas.com      0xaeb65dea 68 / 0x126b00d9 7 / 0x4d7ec25f 30 / 0xb4a9388a 70
    //!   ross@faas.com 0x14970538 8;  email 0xdec2af9c 87;  foo@foo.com 0xf7becac1 96
    //!   headerColorfoo@foo.com 0xcdfa6c1d 80
    //!   test_a/b/c/d@faas.com  0xc56c005a 77 / 0xe76ea8bf 90 / 0x4234d321 25 / 0xc433468b 76
    use super::*;

    // ---------------------------------------------------------------- hash

    #[test]
    fn reference_vectors() {
        let cases: &[(&[u8], u32, u32)] = &[
            // twmb/murmur3 (flagd's dependency) / spaolacci/murmur3.
            (b"", 0, 0x0000_0000),
            (b"hello", 0, 0x248b_fa47),
            (b"hello, world", 0, 0x149b_bb7f),
            (b"19 Jan 2038 at 3:14:07 AM", 0, 0xe31e_8a70),
            (
                b"The quick brown fox jumps over the lazy dog.",
                0,
                0xd5c4_8bfc,
            ),
            (b"", 1, 0x514e_28b7),
            (b"hello", 1, 0xbb4a_bcad),
            (b"hello, world", 1, 0x6f5c_b2e9),
            (b"19 Jan 2038 at 3:14:07 AM", 1, 0xf50e_1f30),
            (
                b"The quick brown fox jumps over the lazy dog.",
                1,
                0x846f_6a36,
            ),
            (b"", 0x2a, 0x087f_cd5c),
            (b"hello", 0x2a, 0xe2db_d2e1),
            (b"hello, world", 0x2a, 0x7ec7_c6c2),
            (b"19 Jan 2038 at 3:14:07 AM", 0x2a, 0x58f7_45f6),
            (
                b"The quick brown fox jumps over the lazy dog.",
                0x2a,
                0xc02d_1434,
            ),
            // git t0095-bloom.sh.
            (
                b"The quick brown fox jumps over the lazy dog",
                0,
                0x2e4f_f723,
            ),
            (b"Hello world!", 0, 0x627b_0c2c),
            // SMHasher-derived set (mmh3 test suite and many ports).
            (b"", 0xffff_ffff, 0x81f1_6f39),
            (b"\0\0\0\0", 0, 0x2362_f9de),
            (b"\0\0\0", 0, 0x85f0_b427),
            (b"\0\0", 0, 0x30f4_c306),
            (b"\0", 0, 0x514e_28b7),
            (b"\x21\x43\x65\x87", 0, 0xf55b_516b),
            (b"\x21\x43\x65\x87", 0x5082_edee, 0x2362_f9de),
            (b"\x21\x43\x65", 0, 0x7e4a_8634),
            (b"\x21\x43", 0, 0xa0f7_b07a),
            (b"\x21", 0, 0x7266_1cf4),
            (b"aaaa", 0x9747_b28c, 0x5a97_808a),
            (b"aaa", 0x9747_b28c, 0x283e_0130),
            (b"aa", 0x9747_b28c, 0x5d21_1726),
            (b"a", 0x9747_b28c, 0x7fa0_9ea6),
            (b"abcd", 0x9747_b28c, 0xf047_8627),
            (b"abc", 0x9747_b28c, 0xc84a_62dd),
            (b"ab", 0x9747_b28c, 0x7487_5592),
            (b"Hello, world!", 0x9747_b28c, 0x2488_4cba),
            (b"Hello, world!", 0, 0xc036_3e43),
            (b"test", 0, 0xba6b_d213),
            (b"test", 0x9747_b28c, 0x704b_81dc),
            (b"abc", 0, 0xb3dd_93fa),
            (b"a", 0, 0x3c25_69b2),
            (
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                0,
                0xee92_5b90,
            ),
            (
                b"The quick brown fox jumps over the lazy dog",
                0x9747_b28c,
                0x2fa8_26cd,
            ),
            // 8 × U+03C0 as UTF-8.
            ("ππππππππ".as_bytes(), 0x9747_b28c, 0xd580_63c1),
            (&[b'a'; 256], 0x9747_b28c, 0x3740_5bdc),
        ];
        for &(data, seed, want) in cases {
            let got = murmur3_x86_32(data, seed);
            assert_eq!(got, want, "{data:?} seed {seed:#x}: got {got:#010x}");
        }
    }

    /// SMHasher's VerificationTest: hash key[0..i] (key[i] = i) with seed
    /// 256 - i, concatenate the little-endian results, hash that with seed 0.
    #[test]
    fn smhasher_verification_value() {
        let key: Vec<u8> = (0..=255u8).collect();
        let mut hashes = Vec::with_capacity(1024);
        for i in 0..256usize {
            let h = murmur3_x86_32(&key[..i], 256 - i as u32);
            hashes.extend_from_slice(&h.to_le_bytes());
        }
        assert_eq!(murmur3_x86_32(&hashes, 0), 0xB0F5_7EE3);
    }

    /// The two-slice streaming path equals hashing the concatenation, for
    /// every split point (covers blocks straddling the boundary).
    #[test]
    fn sticky_hash_equals_hash_of_concatenation() {
        let whole = "fractional-flag-shorthandjane@company.com/ü€𝄞";
        for (split, _) in whole.char_indices().chain([(whole.len(), ' ')]) {
            let (a, b) = whole.split_at(split);
            assert_eq!(
                sticky_hash(a, b),
                murmur3_x86_32(whole.as_bytes(), 0),
                "split at {split}"
            );
        }
        assert_eq!(sticky_hash("", ""), 0);
    }

    /// The byte-stream path and the chunked slice path agree for every
    /// length 0..=64 (all tail sizes, several blocks) and several seeds.
    #[test]
    fn stream_path_equals_slice_path() {
        let data: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..=data.len() {
            for seed in [0, 1, 0x9747_b28c, u32::MAX] {
                let bytes = &data[..len];
                assert_eq!(
                    murmur3_stream(bytes.iter().copied(), seed),
                    murmur3_x86_32(bytes, seed),
                    "len {len} seed {seed:#x}"
                );
            }
        }
    }

    // ---------------------------------------------------------- flagd rule

    /// flagd v2 bucketing (core ≥ v0.15.0, `distributeValue`): index of the
    /// variant chosen for `name + value` under integer `weights`.
    fn bucket_of(name: &str, value: &str, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        assert!(total > 0 && total <= i32::MAX as u64);
        let bucket = (u64::from(sticky_hash(name, value)) * total) >> 32;
        let mut end = 0u64;
        for (i, &w) in weights.iter().enumerate() {
            end += u64::from(w);
            if bucket < end {
                return i;
            }
        }
        unreachable!("bucket < total")
    }

    /// flagd v1 bucketing (core < v0.15.0): abs(int32(h)) / MaxInt32 * 100
    /// against cumulative percentages. Only used to show the v1 vectors are
    /// consistent with our hash; it is NOT our rule.
    fn bucket_v1(name: &str, value: &str, weights: &[u32]) -> usize {
        let total: f64 = weights.iter().map(|&w| f64::from(w)).sum();
        let signed = sticky_hash(name, value) as i32;
        let bucket = f64::from(signed).abs() / f64::from(i32::MAX) * 100.0;
        let mut end = 0.0;
        for (i, &w) in weights.iter().enumerate() {
            end += 100.0 * f64::from(w) / total;
            if bucket < end {
                return i;
            }
        }
        weights.len() // flagd v1 returned "" here
    }

    /// Checks a published expectation with `bucket_of`, then checks that
    /// `in_sample` agrees with it at the cumulative boundaries around the
    /// expected variant: the key is inside "first k+1 variants" and outside
    /// "first k variants".
    fn check_v2(name: &str, value: &str, weights: &[u32], expected: usize) {
        assert_eq!(
            bucket_of(name, value, weights),
            expected,
            "{name:?}+{value:?} under {weights:?}"
        );
        let total: u32 = weights.iter().sum();
        let cum = |k: usize| -> f64 {
            f64::from(weights.iter().take(k).sum::<u32>()) * 100.0 / f64::from(total)
        };
        assert!(
            in_sample(name, value, cum(expected + 1)),
            "{name:?}+{value:?}: not inside {}%",
            cum(expected + 1)
        );
        assert!(
            !in_sample(name, value, cum(expected)),
            "{name:?}+{value:?}: inside {}%",
            cum(expected)
        );
    }

    const QUARTERS: [u32; 4] = [25, 25, 25, 25];

    /// flagd-testbed `fractional-flag`: cat($flagd.flagKey, user.name),
    /// [clubs, diamonds, hearts, spades] × 25. `@fractional-v2` examples.
    #[test]
    fn testbed_fractional_flag_v2() {
        let (clubs, diamonds, hearts, spades) = (0, 1, 2, 3);
        for (name, want) in [
            ("jack", hearts),
            ("queen", spades),
            ("ten", clubs),
            ("nine", diamonds),
            ("3", clubs),
        ] {
            check_v2("fractional-flag", name, &QUARTERS, want);
        }
    }

    /// flagd-testbed `fractional-flag-shorthand`: no bucket-by expression, so
    /// flagd hashes flagKey + targetingKey — exactly `in_sample(name, value)`.
    /// [["heads"], ["tails", 1]] = a 50/50 split, heads first.
    /// (`@fractional-v1` and `@fractional-v2` agree here.)
    #[test]
    fn testbed_fractional_shorthand_v2() {
        check_v2("fractional-flag-shorthand", "jon@company.com", &[1, 1], 0);
        check_v2("fractional-flag-shorthand", "jane@company.com", &[1, 1], 1);
        assert!(in_sample(
            "fractional-flag-shorthand",
            "jon@company.com",
            50.0
        ));
        assert!(!in_sample(
            "fractional-flag-shorthand",
            "jane@company.com",
            50.0
        ));
    }

    /// flagd-testbed `fractional-flag-A-shared-seed` / `-B-shared-seed`:
    /// cat("shared-seed", user.name), quarters. `@fractional-v2` examples.
    #[test]
    fn testbed_shared_seed_v2() {
        let (clubs, diamonds, hearts, spades) = (0, 1, 2, 3);
        for (name, want) in [
            ("seven", hearts),
            ("eight", diamonds),
            ("nine", clubs),
            ("two", spades),
        ] {
            check_v2("shared-seed", name, &QUARTERS, want);
        }
    }

    /// flagd-testbed `fractional-hash-edge-flag`: {"var": "targetingKey"},
    /// [lower 50, upper 50]. The keys are brute-forced preimages of the
    /// boundary hash values, so they also pin the hash itself.
    #[test]
    fn testbed_hash_edge_cases_v2() {
        let cases = [
            ("ejOoVL", 0x0000_0000u32, true),
            ("bY9fO-", 0x0000_0001, true),
            ("SI7p-", 0x7fff_ffff, true),
            ("6LvT0", 0x8000_0000, false),
            ("ceQdGm", 0xffff_ffff, false),
        ];
        for (key, hash, lower) in cases {
            assert_eq!(murmur3_x86_32(key.as_bytes(), 0), hash, "{key}");
            check_v2("", key, &[50, 50], usize::from(!lower));
            assert_eq!(in_sample("", key, 50.0), lower, "{key}");
        }
        // The extremes also behave at the percent limits.
        assert!(in_sample("", "ceQdGm", 100.0));
        assert!(!in_sample("", "ceQdGm", 99.999_999));
        assert!(in_sample("", "ejOoVL", 1e-9));
        assert!(!in_sample("", "ejOoVL", 0.0));
    }

    /// flagd-testbed nested-fractional comments: "jon@company.com bv(100)=36,
    /// user1 bv(100)=76" for {"var": "targetingKey"}.
    #[test]
    fn testbed_nested_bucket_values() {
        let bv = |v: &str| (u64::from(sticky_hash("", v)) * 100) >> 32;
        assert_eq!(bv("jon@company.com"), 36);
        assert_eq!(bv("user1"), 76);
        check_v2("", "jon@company.com", &[50, 50], 0);
        check_v2("", "user1", &[50, 50], 1);
    }

    /// flagd `TestFractionalEvaluation` and
    /// `TestFractionalEvaluationWithNestedJSONLogic` (v2 expectations).
    #[test]
    fn flagd_unit_test_vectors_v2() {
        let (red, blue, green, yellow) = (0, 1, 2, 3);
        // headerColor: cat($flagd.flagKey, email), [red, blue, green, yellow] × 25.
        for (email, want) in [
            ("rachel@faas.com", blue),
            ("monica@faas.com", yellow),
            ("joey@faas.com", red),
            ("ross@faas.com", blue),
        ] {
            check_v2("headerColor", email, &QUARTERS, want);
        }
        // customSeededHeaderColor: cat("my-seed", email).
        for (email, want) in [
            ("rachel@faas.com", green),
            ("monica@faas.com", red),
            ("joey@faas.com", blue),
            ("ross@faas.com", green),
        ] {
            check_v2("my-seed", email, &QUARTERS, want);
        }
        // footerColor: {"var": "email"} only.
        check_v2("", "ross@faas.com", &QUARTERS, red);
        // "non even split": the literal string "email" is the bucket key,
        // [red 50, blue 25, green 25].
        check_v2("", "email", &[50, 25, 25], 2);
        // nestedIfVariant: literal "email", [<if> 25, green 75] → green.
        check_v2("", "email", &[25, 75], 1);
        // "get variant for non-percentage weight values" (and the
        // unspecified-weight variant of it): {"var": "email"}, [red 25, blue 25].
        check_v2("", "foo@foo.com", &[25, 25], 1);
        check_v2("", "foo@foo.com", &[1, 1], 1);
        // "default to targetingKey" [blue 50, green 50] → green, and
        // "missing email … continue" [red 50, blue 50] → blue: both hash
        // flagKey + targetingKey and pick the second half.
        check_v2("headerColor", "foo@foo.com", &[50, 50], 1);
        assert!(!in_sample("headerColor", "foo@foo.com", 50.0));
    }

    /// flagd `BenchmarkFractionalEvaluation` ({"var": "email"}, quarters)
    /// still expects test_a→blue, test_b→red, test_c→green, test_d→blue.
    /// Those are v1 answers (not updated by PR #1909); under v2 — and so
    /// under our rule — the same hashes give yellow, yellow, blue, yellow.
    #[test]
    fn flagd_benchmark_vectors_are_stale_v1() {
        let (red, blue, green, yellow) = (0, 1, 2, 3);
        let cases = [
            ("test_a@faas.com", blue, yellow),
            ("test_b@faas.com", red, yellow),
            ("test_c@faas.com", green, blue),
            ("test_d@faas.com", blue, yellow),
        ];
        for (email, v1, v2) in cases {
            assert_eq!(bucket_v1("", email, &QUARTERS), v1, "{email} v1");
            check_v2("", email, &QUARTERS, v2);
        }
    }

    /// The testbed's `@fractional-v1` examples reproduce under the v1 rule,
    /// confirming the hash input; several differ from v2 / our rule
    /// (e.g. fractional-flag "jack": v1 spades, v2 hearts).
    #[test]
    fn testbed_v1_examples_match_v1_rule_only() {
        let (clubs, diamonds, hearts, spades) = (0, 1, 2, 3);
        for (name, want) in [
            ("jack", spades),
            ("queen", clubs),
            ("ten", diamonds),
            ("nine", hearts),
            ("3", diamonds),
        ] {
            assert_eq!(
                bucket_v1("fractional-flag", name, &QUARTERS),
                want,
                "{name}"
            );
        }
        for (name, want) in [
            ("jack", hearts),
            ("queen", spades),
            ("ten", hearts),
            ("nine", diamonds),
        ] {
            assert_eq!(bucket_v1("shared-seed", name, &QUARTERS), want, "{name}");
        }
        assert_ne!(bucket_of("fractional-flag", "jack", &QUARTERS), spades);
    }

    /// For whole-number percents `in_sample` is exactly flagd v2's
    /// `[p, 100 - p]` split, first variant.
    #[test]
    fn in_sample_equals_flagd_two_variant_split() {
        for i in 0..2_000u32 {
            let key = format!("user-{i}");
            for p in 0..=100u32 {
                assert_eq!(
                    in_sample("launch", &key, f64::from(p)),
                    bucket_of("launch", &key, &[p, 100 - p]) == 0,
                    "{key} at {p}%"
                );
            }
        }
        // Fractional percents: 12.5% = [125, 875] out of 1000.
        for i in 0..2_000u32 {
            let key = format!("k{i}");
            assert_eq!(
                in_sample("x", &key, 12.5),
                bucket_of("x", &key, &[125, 875]) == 0
            );
        }
    }

    // ---------------------------------------------------------- properties

    #[test]
    fn percent_limits() {
        for i in 0..1_000 {
            let key = format!("key-{i}");
            assert!(in_sample("launch", &key, 100.0));
            assert!(in_sample("launch", &key, 250.0));
            assert!(in_sample("launch", &key, f64::INFINITY));
            assert!(!in_sample("launch", &key, 0.0));
            assert!(!in_sample("launch", &key, -0.0));
            assert!(!in_sample("launch", &key, -5.0));
            assert!(!in_sample("launch", &key, f64::NAN));
            assert!(!in_sample("launch", &key, f64::NEG_INFINITY));
        }
    }

    #[test]
    fn monotone_in_percent() {
        let percents: Vec<f64> = (0..=400).map(|q| f64::from(q) * 0.25).collect();
        for i in 0..500 {
            let key = format!("session-{i}");
            let mut was_in = false;
            for &p in &percents {
                let now_in = in_sample("checkout-v2", &key, p);
                assert!(!was_in || now_in, "{key} left the sample at {p}%");
                was_in = now_in;
            }
            assert!(was_in);
        }
    }

    /// 10,000 request-id-like keys (16 hex digits from a fixed 64-bit LCG),
    /// 5% → expect 500 ± 22 (1σ). Note: the sequential family "user-0" ..
    /// "user-9999" under "checkout-v2" happens to give 439 (−2.8σ); the next
    /// test shows that family is unbiased over a larger sample.
    #[test]
    fn five_percent_of_ten_thousand() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let hits = (0..10_000)
            .filter(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                in_sample("checkout-v2", &format!("{x:016x}"), 5.0)
            })
            .count();
        assert!((450..=550).contains(&hits), "hits = {hits}");
    }

    /// 200,000 sequential keys at 5%: expect 10,000 ± 97 (1σ); allow ±4σ.
    #[test]
    fn five_percent_of_two_hundred_thousand_sequential() {
        let hits = (0..200_000)
            .filter(|i| in_sample("checkout-v2", &format!("user-{i}"), 5.0))
            .count();
        assert!((9_600..=10_400).contains(&hits), "hits = {hits}");
    }

    #[test]
    fn launch_name_reshuffles_keys() {
        // Different launches sample (mostly) different keys at 50%.
        let same = (0..1_000)
            .filter(|i| {
                let key = format!("user-{i}");
                in_sample("a", &key, 50.0) == in_sample("b", &key, 50.0)
            })
            .count();
        assert!((400..=600).contains(&same), "same = {same}");
    }
}
