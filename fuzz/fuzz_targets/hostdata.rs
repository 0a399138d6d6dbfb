//! Bytes the host hands over, decoded without trusting them: the proxy-wasm
//! header map encoding (`headermap::decode`, with `encode` round trips) and
//! the per-field counter list kept in Envoy shared data (`fields::admit`,
//! `fields::stat_suffix`). The input is decoded with `arbitrary`.

#![no_main]

use arbitrary::Arbitrary;
use darklaunch::fields::{admit, stat_suffix, MAX_FIELDS, MAX_POINTER_LEN};
use darklaunch::headermap;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// A header map as the host might send it (mostly malformed).
    map: Vec<u8>,
    /// Pairs to encode and decode again.
    pairs: Vec<(String, Vec<u8>)>,
    /// The shared field list, if present.
    list: Option<Vec<u8>>,
    pointers: Vec<String>,
}

fuzz_target!(|input: Input| {
    // Whatever decodes, re-encodes to something that decodes the same.
    let decoded = headermap::decode(&input.map);
    let refs: Vec<(&str, &[u8])> = decoded
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert_eq!(headermap::decode(&headermap::encode(&refs)), decoded);
    // A well-formed map decodes to exactly its pairs.
    let refs: Vec<(&str, &[u8])> = input
        .pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    assert_eq!(headermap::decode(&headermap::encode(&refs)), input.pairs);

    let mut list = input.list;
    for p in input.pointers.iter().take(64) {
        let Some(suffix) = stat_suffix(p) else {
            continue;
        };
        assert!(!suffix.is_empty() && suffix.len() <= MAX_POINTER_LEN.max("(root)".len()));
        assert!(suffix.bytes().all(|b| b.is_ascii_graphic() || b == b' '));
        let lines_before = list
            .as_deref()
            .unwrap_or_default()
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        match admit(list.as_deref(), suffix) {
            (true, Some(new)) => {
                assert!(lines_before < MAX_FIELDS);
                // Now it is there.
                assert_eq!(admit(Some(&new), suffix), (true, None));
                list = Some(new);
            }
            (true, None) => {}
            (false, new) => {
                assert!(new.is_none() && lines_before >= MAX_FIELDS);
            }
        }
    }
});
