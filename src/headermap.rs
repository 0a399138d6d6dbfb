//! The proxy-wasm header map encoding, decoded without trusting it. Pure.

/// Decode the proxy-wasm header map encoding: a u32 count, then a (u32 name
/// length, u32 value length) pair per entry, then each name and value
/// followed by a NUL. Anything malformed ends the list; names that are not
/// UTF-8 are dropped (Envoy never sends them).
pub fn decode(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    pairs(bytes)
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
}

/// The entries of an encoded map, borrowed, in order: what [`decode`]
/// returns without copying anything.
pub fn pairs(bytes: &[u8]) -> impl Iterator<Item = (&str, &[u8])> {
    let u32_at = move |i: usize| -> Option<usize> {
        let b = bytes.get(i..i.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?) as usize)
    };
    let count = u32_at(0).unwrap_or(0);
    // Where the names and values start; an impossible count yields nothing.
    let mut p = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .unwrap_or(usize::MAX);
    let mut n = 0;
    std::iter::from_fn(move || loop {
        if n >= count {
            return None;
        }
        let s = 4 + n * 8;
        n += 1;
        let (Some(klen), Some(vlen)) = (u32_at(s), u32_at(s + 4)) else {
            n = count;
            return None;
        };
        let Some(key) = bytes.get(p..p.saturating_add(klen)) else {
            n = count;
            return None;
        };
        p = p.saturating_add(klen).saturating_add(1);
        let Some(value) = bytes.get(p..p.saturating_add(vlen)) else {
            n = count;
            return None;
        };
        p = p.saturating_add(vlen).saturating_add(1);
        if let Ok(k) = std::str::from_utf8(key) {
            return Some((k, value));
        }
    })
}

/// The same encoding, for tests and fuzzing.
#[cfg(any(test, feature = "fuzzing"))]
pub fn encode(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs: [(&str, &[u8]); 3] = [(":path", b"/a?b"), ("x", b"\xff\x00"), ("empty", b"")];
        let got = decode(&encode(&pairs));
        let want: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn malformed_input_ends_the_list() {
        assert!(decode(&[]).is_empty());
        assert!(decode(&[1, 0]).is_empty());
        assert!(decode(&u32::MAX.to_le_bytes()).is_empty());
        let mut b = encode(&[("a", b"1"), ("b", b"2")]);
        b.truncate(b.len() - 3);
        assert_eq!(decode(&b), vec![("a".to_string(), b"1".to_vec())]);
        let bad = encode(&[("\u{e9}", b"1")])
            .into_iter()
            .map(|x| if x == 0xc3 { 0xff } else { x })
            .collect::<Vec<_>>();
        assert!(
            decode(&bad).is_empty(),
            "a name that is not UTF-8 is dropped"
        );
    }
}
