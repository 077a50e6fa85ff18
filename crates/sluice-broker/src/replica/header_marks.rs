//! Which of a partition's records may carry Sluice's own headers (a queue's delivery time,
//! `share/delays.rs`). Produce validation reads every record anyway and says whether a set
//! has such a header; records this broker did not validate (recovered at start, replicated
//! while it followed) are taken as possibly having one. A share fetch reads only the batches
//! that may, to look for delivery times, and sends the rest to the socket unread.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

pub struct HeaderMarks {
    /// Every record at or below this offset may carry Sluice's headers; none above may,
    /// unless a flagged append is being written.
    through: AtomicI64,
    /// Flagged appends under way (their offsets are not known until they are planned).
    writing: AtomicUsize,
}

impl HeaderMarks {
    /// Nothing before `log_end` was validated here.
    pub fn new(log_end: i64) -> HeaderMarks {
        HeaderMarks {
            through: AtomicI64::new(log_end - 1),
            writing: AtomicUsize::new(0),
        }
    }

    /// Everything before `log_end` may carry Sluice's headers (a replica becoming leader
    /// did not validate what it replicated).
    pub fn cover_log(&self, log_end: i64) {
        self.through.fetch_max(log_end - 1, Ordering::SeqCst);
    }

    /// A flagged append is about to be planned: until `written`, every record may carry
    /// the headers (its records could become readable before their offsets are noted).
    pub fn writing(&self) {
        self.writing.fetch_add(1, Ordering::SeqCst);
    }

    /// The flagged append is written (or failed) and its records end at `last`.
    pub fn written(&self, last: i64) {
        self.through.fetch_max(last, Ordering::SeqCst);
        self.writing.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether records from `first` on may carry Sluice's headers.
    pub fn may_hold(&self, first: i64) -> bool {
        self.writing.load(Ordering::SeqCst) > 0 || first <= self.through.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_records_validated_without_the_headers_are_clean() {
        let marks = HeaderMarks::new(100);
        assert!(marks.may_hold(99), "recovered, not validated");
        assert!(!marks.may_hold(100));
        marks.writing();
        assert!(marks.may_hold(500), "a flagged append is under way");
        marks.written(120);
        assert!(marks.may_hold(120));
        assert!(!marks.may_hold(121));
        marks.cover_log(200);
        assert!(marks.may_hold(199));
        assert!(!marks.may_hold(200));
    }
}
