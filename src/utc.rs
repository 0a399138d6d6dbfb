//! RFC 3339 times in UTC, to and from ms since the Unix epoch: the forms
//! `expires` takes and the log prints. Written here rather than with a
//! calendar crate because this is all the filter needs of one, and a crate
//! cost the module ~19 KB.

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`, year 1970 to 9999, a real
/// day of its month; second 60 (a leap second) reads as the next minute's
/// first. Fractions beyond milliseconds are cut.
pub fn parse(t: &str) -> Option<u64> {
    let b = t.as_bytes();
    let num = |from: usize, len: usize| -> Option<u64> {
        let digits = b.get(from..from + len)?;
        digits.iter().try_fold(0u64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u64::from(d - b'0'))
        })
    };
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(at(4, b'-') && at(7, b'-') && at(10, b'T') && at(13, b':') && at(16, b':')) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let valid = (1970..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60;
    if !valid {
        return None;
    }
    let mut rest = t.get(19..)?;
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        for (i, d) in frac.bytes().take(digits).enumerate() {
            if i < 3 {
                ms += u64::from(d - b'0') * [100, 10, 1].get(i).copied().unwrap_or(0);
            }
        }
        rest = frac.get(digits..)?;
    }
    if rest != "Z" && rest != "+00:00" {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = ((days * 24 + hour) * 60 + minute) * 60 + second;
    Some(seconds * 1000 + ms)
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_seconds(ms: u64) -> String {
    let (date, s) = split(ms);
    format!("{date}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_millis(ms: u64) -> String {
    let (date, s) = split(ms);
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms % 1000
    )
}

/// The date and the second of the day.
fn split(ms: u64) -> (String, u64) {
    let seconds = ms / 1000;
    let (y, m, d) = civil_from_days(seconds / 86_400);
    (format!("{y:04}-{m:02}-{d:02}"), seconds % 86_400)
}

fn is_leap(y: u64) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a date from 1970 on (Howard Hinnant's
/// `days_from_civil`, for years ≥ 0).
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// The date of a day since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_what_the_schema_allows() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse("2026-12-31T23:59:59.5Z"), Some(1_798_761_599_500));
        assert_eq!(parse("2026-12-31T23:59:59.Z"), Some(1_798_761_599_000));
        assert_eq!(
            parse("2026-12-31T23:59:59.123456789Z"),
            Some(1_798_761_599_123)
        );
        assert_eq!(parse("2026-12-31T23:59:59+00:00"), Some(1_798_761_599_000));
        assert_eq!(parse("2026-12-31T23:59:60Z"), Some(1_798_761_600_000));
        assert_eq!(parse("2024-02-29T00:00:00Z"), Some(1_709_164_800_000));
        for bad in [
            "1969-12-31T23:59:59Z",
            "2026-12-31T23:59:59+01:00",
            "2026-12-31 23:59:59Z",
            "2026-12-31t23:59:59z",
            "2026-13-01T00:00:00Z",
            "2026-12-31T24:00:00Z",
            "2026-12-31",
            "2026-02-30T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-12-31T23:59:59",
            "2026-12-31T23:59:59ZZ",
            "+026-12-31T23:59:59Z",
            "2026-12-31T23:59:5Z",
            "",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_seconds(1_798_761_599_500), "2026-12-31T23:59:59Z");
        assert_eq!(format_millis(1_798_761_599_500), "2026-12-31T23:59:59.500Z");
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
    }

    proptest! {
        #[test]
        fn round_trips(ms in 0u64..253_402_300_800_000) {
            prop_assert_eq!(parse(&format_millis(ms)), Some(ms));
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
