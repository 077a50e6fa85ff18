//! Batch payload compression with Kafka's codecs (gzip, snappy in xerial framing, lz4 frame,
//! zstd), through the kafka-protocol crate's implementations.

use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Lz4, Snappy, Zstd};

use crate::error::LogError;

fn codec_error(e: impl std::fmt::Display) -> LogError {
    LogError::CorruptRecord(format!("compressed records: {e}"))
}

/// The record bytes of a batch payload compressed with `codec` (0 = none).
pub fn decompress(codec: i16, payload: &[u8]) -> Result<Bytes, LogError> {
    let mut input = Bytes::copy_from_slice(payload);
    let take = |b: &mut Bytes| Ok(std::mem::take(b));
    match codec {
        0 => Ok(input),
        1 => Gzip::decompress(&mut input, take).map_err(codec_error),
        2 => Snappy::decompress(&mut input, take).map_err(codec_error),
        3 => Lz4::decompress(&mut input, take).map_err(codec_error),
        4 => Zstd::decompress(&mut input, take).map_err(codec_error),
        other => Err(LogError::InvalidRecord(format!(
            "unknown compression codec {other}"
        ))),
    }
}

/// `records` compressed with `codec` (0 = none).
pub fn compress(codec: i16, records: &[u8]) -> Result<Vec<u8>, LogError> {
    let mut out = BytesMut::new();
    let fill = |b: &mut BytesMut| {
        b.extend_from_slice(records);
        Ok(())
    };
    match codec {
        0 => return Ok(records.to_vec()),
        1 => Gzip::compress(&mut out, fill).map_err(codec_error)?,
        2 => Snappy::compress(&mut out, fill).map_err(codec_error)?,
        3 => Lz4::compress(&mut out, fill).map_err(codec_error)?,
        4 => Zstd::compress(&mut out, fill).map_err(codec_error)?,
        other => {
            return Err(LogError::InvalidRecord(format!(
                "unknown compression codec {other}"
            )))
        }
    }
    Ok(out.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..5000).map(|i| (i % 7) as u8).collect();
        for codec in 0..=4 {
            let c = compress(codec, &data).unwrap();
            assert_eq!(
                &decompress(codec, &c).unwrap()[..],
                &data[..],
                "codec {codec}"
            );
        }
        assert!(decompress(1, b"not gzip").is_err());
    }
}
