//! Any bytes as a produced record set: validation returns a result, never panics, and never
//! expands a compressed batch past its limit.
#![no_main]

libfuzzer_sys::fuzz_target!(|set: &[u8]| {
    sluice_log::fuzzing::validate_record_set(set);
});
