//! Kafka's fixed-width fields of the coordinators' records (`__consumer_offsets`,
//! `__transaction_state`, `__share_group_state`): big-endian integers, strings with a 16-bit
//! length, bytes with a 32-bit one.

/// Big-endian writer of the fields.
#[derive(Default)]
pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn i16(&mut self, v: i16) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn string(&mut self, s: &str) {
        let b = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
        self.i16(b.len() as i16);
        self.0.extend_from_slice(b);
    }
    pub(crate) fn nullable_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.i16(-1),
        }
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.i32(b.len() as i32);
        self.0.extend_from_slice(b);
    }
}

/// The reader matching `Writer`.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("record truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    pub(crate) fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    pub(crate) fn string(&mut self) -> Result<String, String> {
        self.nullable_string()?
            .ok_or_else(|| "null where a string is required".to_string())
    }
    pub(crate) fn nullable_string(&mut self) -> Result<Option<String>, String> {
        match self.i16()? {
            -1 => Ok(None),
            n if n >= 0 => String::from_utf8(self.take(n as usize)?.to_vec())
                .map(Some)
                .map_err(|e| e.to_string()),
            n => Err(format!("negative string length {n}")),
        }
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], String> {
        match self.i32()? {
            n if n >= 0 => self.take(n as usize),
            n => Err(format!("negative bytes length {n}")),
        }
    }
}
