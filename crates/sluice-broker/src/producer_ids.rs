//! InitProducerId for idempotent producers: unique producer ids, handed out in blocks whose
//! end is recorded in meta.json before any id of the block is used.

use crate::broker::Broker;
use crate::error::{BrokerError, Result};

const BLOCK: i64 = 1000;

pub struct ProducerIds {
    next: i64,
    pub(crate) block_end: i64,
}

impl ProducerIds {
    /// After a restart, continue after every id that may have been given out.
    pub fn starting_at(block_end: i64) -> ProducerIds {
        ProducerIds {
            next: block_end,
            block_end,
        }
    }
}

impl Broker {
    /// A producer id and epoch. With an existing id and epoch (a producer recovering, KIP-360)
    /// the same id comes back with the next epoch; a transactional id is refused.
    pub fn init_producer_id(
        &self,
        transactional_id: Option<&str>,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(i64, i16)> {
        if transactional_id.is_some() {
            tracing::info!(
                "refused a transactional InitProducerId: transactions are not supported yet"
            );
            return Err(BrokerError::TransactionsUnsupported(
                "transactions are not supported by this broker yet (Sluice): use an idempotent producer".into(),
            ));
        }
        if producer_id >= 0 && epoch >= 0 {
            if producer_id >= self.producer_ids.lock().next {
                return Err(BrokerError::InvalidRequest(format!(
                    "producer id {producer_id} was never given out"
                )));
            }
            if epoch < i16::MAX - 1 {
                return Ok((producer_id, epoch + 1));
            }
        }
        let _admin = self.admin.lock();
        let extend = {
            let ids = self.producer_ids.lock();
            ids.next >= ids.block_end
        };
        if extend {
            self.producer_ids.lock().block_end += BLOCK;
            let topics = self.topics.read().clone();
            self.save_metadata(&topics)?;
        }
        let mut ids = self.producer_ids.lock();
        let id = ids.next;
        ids.next += 1;
        Ok((id, 0))
    }
}

#[cfg(test)]
mod tests {
    use crate::broker::tests::broker;

    #[test]
    fn ids_are_unique_across_restarts_and_epochs_bump() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let (a, ea) = b.init_producer_id(None, -1, -1).unwrap();
        let (c, _) = b.init_producer_id(None, -1, -1).unwrap();
        assert_ne!(a, c);
        assert_eq!(ea, 0);
        assert_eq!(b.init_producer_id(None, a, 0).unwrap(), (a, 1));
        assert!(b.init_producer_id(None, 999_999, 0).is_err());
        assert!(b.init_producer_id(Some("tx"), -1, -1).is_err());
        drop(b);
        let b = broker(dir.path());
        let (d, _) = b.init_producer_id(None, -1, -1).unwrap();
        assert!(d > c, "no id is reused after a restart");
    }
}
