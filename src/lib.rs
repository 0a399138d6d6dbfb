//! darklaunch: a proxy-wasm filter that dark-launches new service versions.
//!
//! The pure logic (configuration, decision, comparison, noise, limits) and
//! the life of a shadowed pair (`engine`) are host-agnostic and tested
//! natively; `filter` and `proxy` are the proxy-wasm glue, compiled only for
//! wasm32. Two modules are public, for `darklaunch-report`: `vocab`, the
//! names of the published stats, and `check`, the filter's configuration
//! parser for validating a configuration outside Envoy (and, with the
//! `schema` feature, its JSON Schema).
#![deny(unsafe_code)]
// Natively the glue is absent, so what only it uses looks unused; dead code
// is checked by the wasm32 build (`make lint`), which has the glue.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unused_imports))]

pub mod check;
pub mod vocab;

/// Private modules; the `fuzzing` feature makes them public for the fuzz
/// targets and benches.
macro_rules! internal {
    ($($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "fuzzing")]
            pub mod $name;
            #[cfg(not(feature = "fuzzing"))]
            mod $name;
        )*
    };
}

internal!(
    capture, compare, config, decision, decode, engine, fields, headermap, host, json, limits,
    memeq, murmur3, noise, outcome, pointer, protobuf, redact, sample, shadow, grpc, utc,
);

#[cfg(target_arch = "wasm32")]
mod filter;
#[cfg(target_arch = "wasm32")]
mod proxy;
