//! darklaunch-report: reads the stats the darklaunch filter publishes (from
//! Envoy admin endpoints or from Prometheus), computes per-launch divergence
//! with a 95% Wilson interval, error rates and latency, and gives each launch
//! a verdict (PASS / MARGINAL / FAIL / INCONCLUSIVE) for CI and rollout gates.
//! `validate` checks plugin configurations with the filter's own parser
//! and `schema` prints their JSON Schema; `samples` groups the mismatch
//! samples the filter logs (or posts over OTLP), and `replay` sends a
//! sampled request to two versions and compares the answers with the
//! filter's own comparator. See report/README.md.

pub mod cli;
pub mod envoy;
pub mod http;
pub mod model;
pub mod prom;
pub mod replay;
pub mod report;
pub mod samples;
pub mod serve;
pub mod validate;
pub mod verdict;
pub mod wilson;
