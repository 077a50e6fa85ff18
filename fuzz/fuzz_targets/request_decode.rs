//! Any bytes as a request frame: decoding returns a result, never panics or over-allocates.
#![no_main]

libfuzzer_sys::fuzz_target!(|frame: &[u8]| {
    let _ = sluice_kafka::fuzzing::decode_request(frame);
});
