//! The engine's pair lifecycle under arbitrary interleavings: requests,
//! responses, answers in either order, lost and reset calls, clock jumps,
//! CAS conflicts, late doorbells and teardowns on two workers. The
//! simulator checks the `max_in_flight` bound after every step and, once
//! drained, that every pair was counted exactly once and the stats add up.
#![no_main]

use darklaunch::engine::sim;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sim::run(&sim::ops_from_bytes(data));
});
