//! A primary request from the input, under one of a fixed set of
//! configurations: `read_flag`, `matches`, `decide`, `RequestView::key` for
//! every kind of key source (headers, cookies, query strings with odd bytes
//! and percent escapes), `shadow_headers`, `shadow_authority` and the mismatch
//! log line.
//!
//! Input layout:
//!
//! ```text
//! byte 0      configuration index (modulo the number of configurations)
//! bytes 1..5  the random number `decide` gets (u32 big-endian)
//! then lines separated by '\n':
//!   first     "METHOD PATH" (PATH with its query string)
//!   others    "name:value" headers, value raw bytes (non-UTF-8 allowed);
//!             a pseudo-header is ":name:value"
//! ```

#![no_main]

use std::sync::OnceLock;

use darklaunch::config::{self, Config, KeySource};
use darklaunch::decision::{
    decide, matches, path_only, read_flag, Decision, Flag, RequestView, SkipReason,
};
use darklaunch::noise::Kinds;
use darklaunch::shadow::{shadow_authority, shadow_headers, MismatchLog};
use libfuzzer_sys::fuzz_target;

const CONFIGS: &[&str] = &[
    // The documented example configuration.
    r#"{
      "flag_header": "x-dark-launch", "shadow_header": "x-darklaunch-shadow", "mismatch_log_per_minute": 60,
      "launches": [{
        "name": "orders-v2", "dark_cluster": "orders_v2", "dark_authority": "orders-v2.internal",
        "match": {"path_prefix": "/api/orders", "methods": ["GET", "POST"],
                  "headers": [{"name": "x-tenant", "exact": "acme"}, {"name": "x-beta", "present": true}]},
        "sample": {"percent": 5.0, "sticky_key": ["header:x-user-id", "cookie:session"]},
        "users": {"key": "header:x-user-id", "always": ["qa-1"], "never": ["vip-7"]},
        "unsafe_methods": false, "timeout_ms": 1000, "max_body_bytes": 65536,
        "request_headers": {"remove": ["authorization"], "set": {"x-env": "dark"}},
        "limits": {"max_rps": 200, "max_in_flight": 64},
        "breaker": {"failure_ratio": 0.5, "min_calls": 20, "window_s": 10, "open_s": 30},
        "compare": {"status": true, "headers": ["content-type"], "body": "auto",
                    "ignore": ["/meta/generated_at", "/items/*/etag"], "unordered_arrays": ["/items"],
                    "numeric_tolerance": 0.0},
        "noise": {"cluster": "orders_v1", "percent": 10.0}
      }]
    }"#,
    // Sticky keys of every kind, users keyed by query, a path template.
    r#"{"launches": [{
        "name": "users-v3", "dark_cluster": "u3",
        "match": {"path_template": "/users/{id}/orders/{order}"},
        "sample": {"percent": 30, "sticky_key": ["query:u", "cookie:session", "header:x-user-id", "query:a b", "query:ü"]},
        "users": {"key": "query:user", "always": ["qa", "a b", "ü"], "never": ["vip", "%"]}
    }]}"#,
    // Users keyed by cookie, exact path, header absence, unsafe methods, small body limit.
    r#"{"launches": [{
        "name": "pay", "dark_cluster": "pay_dark",
        "match": {"path_exact": "/pay", "methods": ["POST", "PUT"],
                  "headers": [{"name": "x-no", "present": false}, {"name": "x-tenant", "exact": "acme"}]},
        "sample": {"percent": 100},
        "users": {"key": "cookie:sid", "always": ["qa"], "never": ["vip"]},
        "unsafe_methods": true, "max_body_bytes": 10,
        "request_headers": {"remove": ["cookie", "x-keep"], "set": {"x-keep": "new", "cookie": "dark=1"}}
    }]}"#,
    // Several launches, custom flag/shadow headers, 0% and fractional sampling.
    r#"{"flag_header": "X-Flag", "shadow_header": "x-shadowed", "launches": [
        {"name": "a", "dark_cluster": "ca", "match": {"path_prefix": "/"}, "sample": {"percent": 0}},
        {"name": "b-2", "dark_cluster": "cb", "sample": {"percent": 50.5, "sticky_key": ["header:x-flag", "query:x"]},
         "users": {"key": "header:x-shadowed", "always": ["b-2"]}},
        {"name": "c_3", "dark_cluster": "cc", "match": {"path_template": "/{x}"}, "sample": {"percent": 99.999},
         "request_headers": {"remove": ["x-flag", "te"], "set": {"x-shadowed": "spoof"}}}
    ]}"#,
];

fn configs() -> &'static [Config] {
    static CELL: OnceLock<Vec<Config>> = OnceLock::new();
    CELL.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|s| match config::parse(s.as_bytes()) {
                Ok(c) => c,
                Err(e) => panic!("fixed fuzz configuration rejected: {e}"),
            })
            .collect()
    })
}

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

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<5>() else {
        return;
    };
    let cfgs = configs();
    let cfg = &cfgs[usize::from(head[0]) % cfgs.len()];
    let random = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);

    let mut lines = rest.split(|b| *b == b'\n');
    let first = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let (method, path) = first.split_once(' ').unwrap_or((first.as_str(), "/"));
    let headers: Vec<(String, Vec<u8>)> = lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            // ":authority:host" is a pseudo-header; otherwise split at the first ':'.
            let from = usize::from(line.first() == Some(&b':'));
            let at = line
                .iter()
                .skip(from)
                .position(|b| *b == b':')
                .map(|i| i + from);
            let (n, v) = match at {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (line, &b""[..]),
            };
            (String::from_utf8_lossy(n).into_owned(), v.to_vec())
        })
        .collect();
    let owned = headers;
    let headers: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let req = RequestView {
        method,
        path,
        headers: &headers,
    };

    let flag = read_flag(cfg, &req);
    if let Flag::Launch(name) = &flag {
        assert!(!name.is_empty() && *name == name.to_ascii_lowercase().trim());
    }
    let _ = path_only(req.path);

    // Every kind of key source, named after the request's own headers and
    // query keys as well as fixed names.
    let mut sources = vec![
        KeySource::Cookie("session".into()),
        KeySource::Query("u".into()),
        KeySource::Query("a b".into()),
    ];
    for (n, _) in headers.iter().take(8) {
        sources.push(KeySource::Header(n.to_string()));
        sources.push(KeySource::Cookie(n.to_string()));
        sources.push(KeySource::Query(n.to_string()));
    }
    if let Some((_, q)) = path.split_once('?') {
        for pair in q.split('&').take(8) {
            let k = pair.split_once('=').map_or(pair, |(k, _)| k);
            sources.push(KeySource::Query(k.to_string()));
        }
    }
    for s in &sources {
        if let Some(v) = req.key(s) {
            assert!(!v.is_empty());
        }
    }

    let looped = req.header(&cfg.shadow_header).is_some();
    for launch in &cfg.launches {
        let _ = matches(launch, &req);
        for s in launch
            .sticky_key
            .iter()
            .chain(launch.users.as_ref().map(|u| &u.key))
        {
            let _ = req.key(s);
        }
        let mut calls = 0u32;
        let d = decide(cfg, launch, &req, &flag, &mut || {
            calls += 1;
            random
        });
        assert!(calls <= 1, "random drawn {calls} times");
        // The decision is a function of the request and the random number.
        assert_eq!(d, decide(cfg, launch, &req, &flag, &mut || random));
        let upgrade = method == "CONNECT" || req.header("upgrade").is_some_and(|v| !v.is_empty());
        if looped {
            assert_eq!(d, Decision::Skip(SkipReason::Loop));
        } else if upgrade {
            assert_eq!(d, Decision::Skip(SkipReason::Upgrade));
        } else if flag == Flag::Off {
            assert_eq!(d, Decision::Skip(SkipReason::FlagOff));
        }

        let out = shadow_headers(launch, &cfg.shadow_header, &owned);
        let (body, tail) = out.split_at(out.len() - 2);
        assert_eq!(tail[0].0, ":authority");
        assert_eq!(tail[1], (cfg.shadow_header.clone(), launch.name.clone()));
        for (n, _) in body {
            let set = launch.set_headers.iter().any(|(s, _)| s == n);
            assert!(
                n == ":method" || n == ":path" || !n.starts_with(':'),
                "pseudo-header {n:?} forwarded"
            );
            assert!(!HOP_BY_HOP.contains(&n.as_str()) || set, "{n:?} forwarded");
            assert!(*n != cfg.shadow_header || set, "shadow header forwarded");
            assert!(
                !launch.remove_headers.contains(n) || set,
                "{n:?} not removed"
            );
        }

        let line = MismatchLog {
            launch: &launch.name,
            request_id: &String::from_utf8_lossy(req.header("x-request-id").unwrap_or_default()),
            method,
            path: path_only(req.path),
            kinds: Kinds {
                status: random & 1 == 1,
                headers: random & 2 == 2,
                body: random & 4 == 4,
                grpc_status: random & 8 == 8,
            },
            paths: &[path.to_string()],
            headers: &[path.to_string()],
            primary_status: (random >> 16) as u16,
            dark_status: random as u16,
        }
        .line();
        assert!(line.starts_with("darklaunch mismatch {"));
    }

    for authority in headers
        .iter()
        .filter(|(n, _)| *n == ":authority")
        .map(|(_, v)| String::from_utf8_lossy(v))
        .chain([path.into()])
    {
        let s = shadow_authority(&authority);
        assert_eq!(s.len(), authority.len() + "-shadow".len());
        assert!(s.contains("-shadow"));
    }
});
