//! darklaunch: a proxy-wasm filter that dark-launches new service versions.
//!
//! Pure logic lives in host-independent modules (tested natively); the
//! `filter` module is the thin proxy-wasm glue and is compiled only for wasm32.

pub mod compare;
pub mod config;
pub mod decision;
pub mod decode;
pub mod fields;
pub mod headermap;
pub mod json;
pub mod limits;
pub mod murmur3;
pub mod noise;
pub mod outcome;
pub mod pointer;
pub mod shadow;
pub mod stats;

#[cfg(target_arch = "wasm32")]
mod filter;
#[cfg(target_arch = "wasm32")]
mod host;
