//! gRPC over HTTP/2 as the filter sees it: which requests are gRPC calls,
//! the status of an answer (`grpc-status`/`grpc-message`, from the
//! trailers or, for a trailers-only answer, the headers), and Envoy's own
//! replies to a call that never reached the dark server. Pure.

use crate::vocab::GrpcCode;

/// The status of a gRPC answer: its code and raw (percent-encoded)
/// message; an absent message is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status<'a> {
    pub code: u32,
    pub message: &'a [u8],
}

impl Status<'_> {
    pub fn name(&self) -> GrpcCode {
        GrpcCode::of(self.code)
    }
}

/// `application/grpc`, `application/grpc+proto` and the like: the
/// content types of calls a gRPC launch shadows (gRPC-Web, whose trailers
/// travel in the body, is not one).
pub fn is_grpc(content_type: &[u8]) -> bool {
    let ct = content_type.trim_ascii();
    let Some(rest) = strip_prefix_ignore_case(ct, b"application/grpc") else {
        return false;
    };
    rest.is_empty() || rest.starts_with(b"+") || rest.starts_with(b";")
}

/// Any `application/grpc*` content type, gRPC-Web included: the calls an
/// HTTP launch never shadows, whatever its `unsafe_methods`.
pub fn is_grpc_family(content_type: &[u8]) -> bool {
    strip_prefix_ignore_case(content_type.trim_ascii(), b"application/grpc").is_some()
}

fn strip_prefix_ignore_case<'a>(s: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..).unwrap_or_default())
}

/// The last value of header `name` (lower-case names).
fn last<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// The status of an answer whose `headers` hold its headers and trailers
/// (the trailers last) and whose HTTP status is `http`. An answer without
/// `grpc-status` gets the code a gRPC client gives it: from the HTTP
/// status (gRPC's HTTP-to-status mapping), `unknown` for a 200.
pub fn status(headers: &[(String, Vec<u8>)], http: u16) -> Status<'_> {
    let message = last(headers, "grpc-message").unwrap_or_default();
    let code = last(headers, "grpc-status")
        .and_then(|v| std::str::from_utf8(v.trim_ascii()).ok())
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or_else(|| from_http(http) as u32);
    Status { code, message }
}

/// gRPC's mapping of an HTTP status without `grpc-status` to a code.
fn from_http(http: u16) -> GrpcCode {
    match http {
        400 => GrpcCode::Internal,
        401 => GrpcCode::Unauthenticated,
        403 => GrpcCode::PermissionDenied,
        404 => GrpcCode::Unimplemented,
        429 | 502 | 503 | 504 => GrpcCode::Unavailable,
        _ => GrpcCode::Unknown,
    }
}

/// What an answer without a server behind it is: Envoy's own reply to a
/// gRPC call it could not deliver (HTTP 200, `grpc-status: 14`, a
/// `grpc-message` naming the failure, and no
/// `x-envoy-upstream-service-time`, which every upstream answer carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalReply {
    Timeout,
    Reset,
}

const TIMEOUT_MESSAGE: &[u8] = b"upstream request timeout";
const RESET_MESSAGES: [&[u8]; 2] = [
    b"upstream connect error or disconnect/reset before headers",
    b"no healthy upstream",
];

pub fn local_reply(headers: &[(String, Vec<u8>)]) -> Option<LocalReply> {
    if last(headers, "x-envoy-upstream-service-time").is_some() {
        return None;
    }
    let code = last(headers, "grpc-status")?;
    if code.trim_ascii() != b"14" && code.trim_ascii() != b"4" {
        return None;
    }
    let message = last(headers, "grpc-message").unwrap_or_default();
    // Envoy percent-encodes the message as gRPC asks; spaces stay as they are.
    if message.starts_with(TIMEOUT_MESSAGE) {
        Some(LocalReply::Timeout)
    } else if RESET_MESSAGES.iter().any(|m| message.starts_with(m)) {
        Some(LocalReply::Reset)
    } else {
        None
    }
}

/// Response headers a gRPC launch reads besides the compared ones.
pub const RESPONSE_HEADERS: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-encoding",
    "x-envoy-upstream-service-time",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn h(list: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn content_types() {
        assert!(is_grpc(b"application/grpc"));
        assert!(is_grpc(b"application/grpc+proto"));
        assert!(is_grpc(b"Application/GRPC; charset=x"));
        assert!(!is_grpc(b"application/grpc-web"));
        assert!(!is_grpc(b"application/json"));
        assert!(is_grpc_family(b"application/grpc-web+proto"));
        assert!(!is_grpc_family(b"application/gr"));
    }

    #[test]
    fn statuses() {
        let s = h(&[
            ("grpc-status", "0"),
            ("grpc-status", "15"),
            ("grpc-message", "x"),
        ]);
        assert_eq!(
            status(&s, 200),
            Status {
                code: 15,
                message: b"x"
            }
        );
        assert_eq!(status(&s, 200).name(), GrpcCode::DataLoss);
        assert_eq!(status(&[], 200).name(), GrpcCode::Unknown);
        assert_eq!(status(&[], 404).name(), GrpcCode::Unimplemented);
        assert_eq!(status(&[], 503).name(), GrpcCode::Unavailable);
        assert_eq!(
            status(&h(&[("grpc-status", "x")]), 200).name(),
            GrpcCode::Unknown
        );
        assert_eq!(
            status(&h(&[("grpc-status", "99")]), 200).name(),
            GrpcCode::Unknown
        );
    }

    #[test]
    fn local_replies() {
        let reply = |code: &str, msg: &str| h(&[("grpc-status", code), ("grpc-message", msg)]);
        assert_eq!(
            local_reply(&reply("14", "upstream request timeout")),
            Some(LocalReply::Timeout)
        );
        assert_eq!(
            local_reply(&reply(
                "14",
                "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
            )),
            Some(LocalReply::Reset)
        );
        assert_eq!(
            local_reply(&reply("14", "no healthy upstream")),
            Some(LocalReply::Reset)
        );
        assert_eq!(local_reply(&reply("14", "busy")), None);
        assert_eq!(local_reply(&reply("13", "no healthy upstream")), None);
        let mut real = reply("14", "upstream request timeout");
        real.push(("x-envoy-upstream-service-time".into(), b"3".to_vec()));
        assert_eq!(local_reply(&real), None);
        assert_eq!(local_reply(&[]), None);
    }
}
