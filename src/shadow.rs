//! Building the shadow request's headers and the mismatch log line. Pure.
//!
//! The shadow request copies the primary's method, path (with query),
//! headers and body, then applies `request_headers`, the dark authority and
//! the shadow header; `x-request-id` and trace headers are kept so that both
//! sides correlate. The mismatch log line never carries a body or header
//! value.

use crate::compare::MAX_PATHS;
use crate::config::Launch;
use crate::noise::Kinds;

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus
/// `content-length`, which Envoy sets from the body it sends.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// The primary `:authority` with `-shadow` appended to the host part, as
/// Envoy's own mirroring does: `api:8080` → `api-shadow:8080`.
pub fn shadow_authority(authority: &str) -> String {
    let split = if authority.starts_with('[') {
        authority.find(']').map(|i| i + 1)
    } else {
        authority.find(':')
    };
    match split.and_then(|i| authority.split_at_checked(i)) {
        Some((host, port)) => format!("{host}-shadow{port}"),
        None => format!("{authority}-shadow"),
    }
}

/// Headers of the shadow request: the primary's (pseudo-headers other than
/// `:method`, `:path`, `:authority` and hop-by-hop ones dropped; values that
/// are not UTF-8 dropped, since the host call takes strings), then
/// `request_headers.remove` / `.set`, the authority and the shadow header.
///
/// A gRPC launch's copy keeps its framing: `te: trailers` (without it gRPC
/// servers reset the stream) and a `grpc-timeout` in place of the caller's
/// ([`grpc_timeout`]).
pub fn shadow_headers(
    launch: &Launch,
    shadow_header: &str,
    primary: &[(String, Vec<u8>)],
) -> Vec<(String, String)> {
    let grpc = !launch.grpc_methods.is_empty();
    let mut authority = None;
    let mut out: Vec<(String, String)> = Vec::with_capacity(primary.len() + 4);
    for (name, value) in primary {
        let Ok(value) = std::str::from_utf8(value) else {
            continue;
        };
        match name.as_str() {
            ":authority" => authority = Some(value),
            ":method" | ":path" => out.push((name.clone(), value.to_string())),
            n if n.starts_with(':') => {}
            n if HOP_BY_HOP.contains(&n) => {}
            "grpc-timeout" if grpc => {}
            n if n == shadow_header => {}
            n if launch.remove_headers.iter().any(|r| r == n) => {}
            n if launch.set_headers.iter().any(|(s, _)| s == n) => {}
            _ => out.push((name.clone(), value.to_string())),
        }
    }
    if grpc {
        out.push(("te".to_string(), "trailers".to_string()));
        out.push(("grpc-timeout".to_string(), grpc_timeout(launch.timeout_ms)));
    }
    out.extend(launch.set_headers.iter().cloned());
    let authority = match &launch.dark_authority {
        Some(a) => a.clone(),
        None => shadow_authority(authority.unwrap_or("")),
    };
    out.push((":authority".to_string(), authority));
    out.push((shadow_header.to_string(), launch.name.clone()));
    out
}

/// The dark server's deadline: the launch's `timeout_ms` plus a fifth and
/// 50 ms. A little later than Envoy's own timer on the call, so that a slow
/// dark server is cut off by Envoy (counted as `timeout`) rather than
/// racing it with its own `DEADLINE_EXCEEDED` answer; and still bounded, so
/// that it stops working on a copy nobody waits for.
pub fn grpc_timeout(timeout_ms: u32) -> String {
    let ms = u64::from(timeout_ms);
    format!("{}m", ms + ms / 5 + 50)
}

/// Fields of one mismatch log line. Never carries body or header values.
pub struct MismatchLog<'a> {
    pub launch: &'a str,
    pub request_id: &'a str,
    pub method: &'a str,
    /// Path with the query string already removed.
    pub path: &'a str,
    pub kinds: Kinds,
    /// The differing pointers; the line lists the first [`MAX_PATHS`].
    pub paths: &'a [String],
    /// The compared headers that differ (names only, never values).
    pub headers: &'a [String],
    pub primary_status: u16,
    pub dark_status: u16,
}

impl MismatchLog<'_> {
    pub fn line(&self) -> String {
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.as_str()).collect();
        let paths: Vec<&String> = self.paths.iter().take(MAX_PATHS).collect();
        let obj = serde_json::json!({
            "launch": self.launch,
            "request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "kinds": kinds,
            "paths": paths,
            "headers": self.headers,
            "primary_status": self.primary_status,
            "dark_status": self.dark_status,
        });
        format!("darklaunch mismatch {obj}")
    }
}

/// At most `per_minute` lines per minute (fixed one-minute windows).
#[derive(Debug, Default)]
pub struct LogLimiter {
    window_start_ms: u64,
    used: u32,
}

impl LogLimiter {
    pub fn allow(&mut self, now_ms: u64, per_minute: u32) -> bool {
        if per_minute == 0 {
            return false;
        }
        if now_ms.saturating_sub(self.window_start_ms) >= 60_000 {
            self.window_start_ms = now_ms;
            self.used = 0;
        }
        if self.used < per_minute {
            self.used += 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    fn launch(extra: &str) -> Launch {
        let s = format!(
            r#"{{"launches":[{{"name":"l","dark_cluster":"c","sample":{{"percent":1}}{extra}}}]}}"#
        );
        config::parse(s.as_bytes()).unwrap().launches.remove(0)
    }

    fn h(list: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn authority_suffix() {
        assert_eq!(shadow_authority("api:8080"), "api-shadow:8080");
        assert_eq!(shadow_authority("api"), "api-shadow");
        assert_eq!(shadow_authority("[::1]:80"), "[::1]-shadow:80");
        assert_eq!(shadow_authority(""), "-shadow");
    }

    #[test]
    fn copies_filters_and_sets() {
        let l = launch(
            r#","request_headers":{"remove":["authorization"],"set":{"x-env":"dark","x-keep":"new"}}"#,
        );
        let primary = h(&[
            (":method", b"POST"),
            (":path", b"/a?b=1"),
            (":authority", b"api:80"),
            (":scheme", b"http"),
            ("authorization", b"secret"),
            ("connection", b"keep-alive"),
            ("content-length", b"3"),
            ("x-request-id", b"r1"),
            ("x-keep", b"old"),
            ("x-bin", b"\xff"),
            ("cookie", b"a=1"),
            ("cookie", b"b=2"),
        ]);
        let got = shadow_headers(&l, "x-darklaunch-shadow", &primary);
        let want: Vec<(String, String)> = [
            (":method", "POST"),
            (":path", "/a?b=1"),
            ("x-request-id", "r1"),
            ("cookie", "a=1"),
            ("cookie", "b=2"),
            ("x-env", "dark"),
            ("x-keep", "new"),
            (":authority", "api-shadow:80"),
            ("x-darklaunch-shadow", "l"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn grpc_keeps_its_framing() {
        let l = launch(r#","match":{"grpc_methods":["pkg.Svc/Get"]},"timeout_ms":250"#);
        let primary = h(&[
            (":method", b"POST"),
            (":path", b"/pkg.Svc/Get"),
            ("content-type", b"application/grpc"),
            ("te", b"trailers"),
            ("grpc-timeout", b"10S"),
            ("grpc-encoding", b"gzip"),
            ("x-user", b"u1"),
        ]);
        let got = shadow_headers(&l, "x-s", &primary);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                ":method",
                ":path",
                "content-type",
                "grpc-encoding",
                "x-user",
                "te",
                "grpc-timeout",
                ":authority",
                "x-s"
            ]
        );
        assert!(got.contains(&("te".into(), "trailers".into())));
        assert!(got.contains(&("grpc-timeout".into(), "350m".into())));
        assert_eq!(grpc_timeout(60_000), "72050m");
        // An HTTP launch drops `te` as hop-by-hop and keeps the caller's values.
        let got = shadow_headers(&launch(""), "x-s", &primary);
        assert!(!got.iter().any(|(n, _)| n == "te"));
        assert!(got.contains(&("grpc-timeout".into(), "10S".into())));
    }

    #[test]
    fn explicit_authority() {
        let l = launch(r#","dark_authority":"v2.internal""#);
        let got = shadow_headers(&l, "x-s", &h(&[(":authority", b"api")]));
        assert!(got.contains(&(":authority".into(), "v2.internal".into())));
    }

    #[test]
    fn log_line_has_no_values() {
        let paths = vec!["/a".to_string(); 12];
        let line = MismatchLog {
            launch: "l",
            request_id: "r",
            method: "GET",
            path: "/x",
            kinds: Kinds {
                status: true,
                headers: false,
                body: true,
                grpc_status: false,
            },
            paths: &paths,
            headers: &["x-version".to_string()],
            primary_status: 200,
            dark_status: 500,
        }
        .line();
        let json: serde_json::Value =
            serde_json::from_str(line.strip_prefix("darklaunch mismatch ").unwrap()).unwrap();
        assert_eq!(json["kinds"], serde_json::json!(["status", "body"]));
        assert_eq!(json["paths"].as_array().unwrap().len(), 10);
        assert_eq!(json["dark_status"], 500);
        assert_eq!(json["headers"], serde_json::json!(["x-version"]));
    }

    #[test]
    fn limiter() {
        let mut l = LogLimiter::default();
        assert!(!l.allow(0, 0));
        assert!(l.allow(0, 2));
        assert!(l.allow(10, 2));
        assert!(!l.allow(20, 2));
        assert!(l.allow(60_000, 2));
    }
}
