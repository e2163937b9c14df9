//! Operation sequences over a whole pool on a log store, with one injected I/O fault: no call
//! panics, no read returns wrong bytes, and every acknowledged root is whole after a reopen
//! (see `spillway_fuzz::pool_ops`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| spillway_fuzz::pool_ops::run(data));
