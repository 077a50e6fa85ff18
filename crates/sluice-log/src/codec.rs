//! Batch payload compression with Kafka's codecs (gzip, snappy in xerial framing, lz4 frame,
//! zstd).
//!
//! Decompression is a stream with bounded buffers and a cap on what it may produce: a batch of
//! a few KB can claim gigabytes once expanded (a compression bomb), so no caller ever holds a
//! whole decompressed payload it did not ask for.

use std::io::{self, Read};

use bytes::BytesMut;
use kafka_protocol::compression::{Compressor, Snappy};

use crate::error::LogError;

fn codec_error(e: impl std::fmt::Display) -> LogError {
    LogError::CorruptRecord(format!("compressed records: {e}"))
}

/// zstd's window is a buffer the decoder allocates at the size the frame asks for; 2^24 (16
/// MiB) is more than any producer's level uses and keeps a hostile frame from asking 2 GiB.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// The error a reader returns when the stream expands past its limit.
#[derive(Debug)]
pub struct ExpansionLimit(pub usize);

impl std::fmt::Display for ExpansionLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "records expand past {} bytes", self.0)
    }
}

impl std::error::Error for ExpansionLimit {}

/// Maps a read error of a decompressing stream onto the log's errors: the expansion limit
/// is a too-large batch, anything else is a corrupt one.
pub fn read_error(e: io::Error) -> LogError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ExpansionLimit>())
    {
        Some(ExpansionLimit(limit)) => LogError::RecordTooLarge {
            size: limit.saturating_add(1),
            max: *limit,
        },
        None => codec_error(e),
    }
}

/// The record bytes of `payload` (compressed with `codec`, 0 = none) as a stream that fails
/// once it has produced more than `limit` bytes.
pub fn reader<'a>(
    codec: i16,
    payload: &'a [u8],
    limit: usize,
) -> Result<Box<dyn Read + 'a>, LogError> {
    let inner: Box<dyn Read + 'a> = match codec {
        0 => Box::new(payload),
        1 => Box::new(flate2::read::GzDecoder::new(payload)),
        2 => Box::new(XerialSnappy::new(payload, limit)),
        3 => Box::new(lz4::Decoder::new(payload).map_err(codec_error)?),
        4 => {
            let mut d = zstd::stream::read::Decoder::with_buffer(payload).map_err(codec_error)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX).map_err(codec_error)?;
            Box::new(d)
        }
        other => {
            return Err(LogError::InvalidRecord(format!(
                "unknown compression codec {other}"
            )))
        }
    };
    Ok(Box::new(Limited {
        inner,
        left: limit,
        limit,
    }))
}

/// The whole decompressed payload, refused once it passes `limit` bytes.
pub fn decompress(codec: i16, payload: &[u8], limit: usize) -> Result<Vec<u8>, LogError> {
    let mut out = Vec::new();
    reader(codec, payload, limit)?
        .read_to_end(&mut out)
        .map_err(read_error)?;
    Ok(out)
}

/// `records` compressed with `codec` (0 = none) at its default level.
pub fn compress(codec: i16, records: &[u8]) -> Result<Vec<u8>, LogError> {
    compress_at(codec, records, None)
}

/// `records` compressed with `codec` at `level` (`None`: the codec's default, as Kafka's:
/// gzip 6, lz4 9, zstd 3; snappy has no levels). lz4 writes independent blocks, as Kafka's
/// producers do.
pub fn compress_at(codec: i16, records: &[u8], level: Option<i32>) -> Result<Vec<u8>, LogError> {
    use std::io::Write;
    let io_error = |e: io::Error| LogError::InvalidRecord(format!("compressing records: {e}"));
    match codec {
        0 => Ok(records.to_vec()),
        1 => {
            let level = level.filter(|l| (0..=9).contains(l)).unwrap_or(6) as u32;
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(records.len() / 2),
                flate2::Compression::new(level),
            );
            e.write_all(records).map_err(io_error)?;
            e.finish().map_err(io_error)
        }
        2 => {
            let mut out = BytesMut::new();
            Snappy::compress(&mut out, |b: &mut BytesMut| {
                b.extend_from_slice(records);
                Ok(())
            })
            .map_err(codec_error)?;
            Ok(out.to_vec())
        }
        3 => {
            let level = level.filter(|l| (1..=17).contains(l)).unwrap_or(9) as u32;
            let mut e = lz4::EncoderBuilder::new()
                .level(level)
                .block_mode(lz4::BlockMode::Independent)
                .build(Vec::with_capacity(records.len() / 2))
                .map_err(io_error)?;
            e.write_all(records).map_err(io_error)?;
            let (out, result) = e.finish();
            result.map_err(io_error)?;
            Ok(out)
        }
        4 => zstd::bulk::compress(records, level.unwrap_or(3)).map_err(io_error),
        other => Err(LogError::InvalidRecord(format!(
            "unknown compression codec {other}"
        ))),
    }
}

/// Fails the stream once more than `limit` bytes came out of it.
struct Limited<R> {
    inner: R,
    left: usize,
    limit: usize,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Ask for one byte past the limit, so reaching it exactly is not mistaken for more.
        let want = buf.len().min(self.left.saturating_add(1));
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        if n > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ExpansionLimit(self.limit),
            ));
        }
        self.left -= n;
        Ok(n)
    }
}

/// Kafka's snappy: xerial framing (a 16-byte magic header, then blocks of a 4-byte length and
/// a raw snappy block), or a single raw snappy block when the header is missing, as Java's
/// SnappyInputStream accepts. One block is decompressed at a time, each checked against the
/// limit before its buffer is allocated.
struct XerialSnappy<'a> {
    input: &'a [u8],
    framed: bool,
    block: Vec<u8>,
    pos: usize,
    limit: usize,
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;

impl<'a> XerialSnappy<'a> {
    fn new(input: &'a [u8], limit: usize) -> XerialSnappy<'a> {
        let framed = input.len() >= XERIAL_HEADER_LEN && input.starts_with(XERIAL_MAGIC);
        XerialSnappy {
            input: if framed {
                &input[XERIAL_HEADER_LEN..]
            } else {
                input
            },
            framed,
            block: Vec::new(),
            pos: 0,
            limit,
        }
    }

    /// Decompresses the next block; false at the end of the input.
    fn next_block(&mut self) -> io::Result<bool> {
        if self.input.is_empty() {
            return Ok(false);
        }
        let compressed = if self.framed {
            if self.input.len() < 4 {
                return Err(bad_snappy("truncated block length"));
            }
            let len = u32::from_be_bytes(self.input[..4].try_into().unwrap()) as usize;
            let rest = &self.input[4..];
            if len > rest.len() {
                return Err(bad_snappy("block overruns the payload"));
            }
            self.input = &rest[len..];
            &rest[..len]
        } else {
            std::mem::take(&mut self.input)
        };
        let len = snap::raw::decompress_len(compressed).map_err(|e| bad_snappy(&e.to_string()))?;
        if len > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                ExpansionLimit(self.limit),
            ));
        }
        self.block.resize(len, 0);
        snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(|e| bad_snappy(&e.to_string()))?;
        self.pos = 0;
        Ok(true)
    }
}

fn bad_snappy(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("snappy: {what}"))
}

impl Read for XerialSnappy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.pos);
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000).map(|i| (i % 7) as u8).collect();
        for codec in 0..=4 {
            let c = compress(codec, &data).unwrap();
            assert_eq!(
                &decompress(codec, &c, data.len()).unwrap()[..],
                &data[..],
                "codec {codec}"
            );
        }
        assert!(decompress(1, b"not gzip", 1000).is_err());
    }

    #[test]
    fn expansion_past_the_limit_is_refused_for_every_codec() {
        let bomb = vec![0u8; 4 << 20];
        for codec in 0..=4 {
            let c = compress(codec, &bomb).unwrap();
            match decompress(codec, &c, 1 << 20) {
                Err(LogError::RecordTooLarge { max, .. }) => assert_eq!(max, 1 << 20),
                other => panic!("codec {codec}: {other:?}"),
            }
            // Exactly at the limit is fine.
            assert_eq!(decompress(codec, &c, 4 << 20).unwrap().len(), 4 << 20);
        }
    }

    #[test]
    fn levels_round_trip() {
        let data: Vec<u8> = (0..50_000).map(|i| (i % 13) as u8).collect();
        for (codec, level) in [
            (1, Some(1)),
            (1, Some(9)),
            (3, Some(1)),
            (3, Some(17)),
            (4, Some(-5)),
            (4, Some(19)),
        ] {
            let c = compress_at(codec, &data, level).unwrap();
            assert_eq!(
                decompress(codec, &c, data.len()).unwrap(),
                data,
                "codec {codec} level {level:?}"
            );
        }
    }

    #[test]
    fn raw_snappy_without_framing_is_read() {
        let data = b"hello hello hello hello".to_vec();
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(2, &raw, 1000).unwrap(), data);
        assert!(decompress(2, &raw, 10).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        for codec in 1..=4 {
            for seed in 0..200u32 {
                let junk: Vec<u8> = (0..seed)
                    .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                    .collect();
                let _ = decompress(codec, &junk, 1 << 16);
            }
        }
    }
}
