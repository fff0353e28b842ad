//! A reply's reservations on the ledger: what it reserved (one [`Charge`] per meter) and how
//! the reservation ends ([`close`]: settled when the reply is charged, released otherwise).
//! The policy that decides what to reserve lives in `services::credits`; this is what the
//! reply's writer needs to finish what it started.

use chrono::Utc;
use threadline_domain::ledger::{CreditWindow, LedgerCommand, LedgerError};
use threadline_domain::plans::Meter;

use crate::store::bus::{CommandBus, CommandError, CommandMeta};

/// One meter's reservation for a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// The `CreditWindow` stream (a window, or a purchased-credit book).
    pub stream_id: String,
    pub meter: Meter,
    pub amount: u64,
}

/// Everything a reply reserved; settled or released together when it ends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reservation {
    pub charges: Vec<Charge>,
}

/// Ends a reply's reservation: settles it when the reply is charged (`cost_micros` is the
/// actual cost, when known) or releases it (`None`: nothing was produced). Each charge is its
/// own stream, so they are closed side by side (one group commit).
pub async fn close(
    bus: &CommandBus,
    reservation: &Reservation,
    generation_id: &str,
    charge: Option<Option<u64>>,
    meta: &CommandMeta,
) {
    let at = Utc::now();
    let closes = reservation.charges.iter().map(|c| async move {
        let command = match charge {
            Some(cost) => LedgerCommand::Settle {
                generation_id: generation_id.to_owned(),
                amount: match (c.meter, cost) {
                    (Meter::CostMicros, Some(actual)) => actual,
                    _ => c.amount,
                },
                at,
            },
            None => LedgerCommand::Release {
                generation_id: generation_id.to_owned(),
                at,
            },
        };
        match bus
            .execute::<CreditWindow>(&c.stream_id, command, meta)
            .await
        {
            Ok(_) | Err(CommandError::Rejected(LedgerError::NotReserved)) => {}
            Err(e) => {
                tracing::error!(error = %e, generation_id, stream = c.stream_id, "cannot close a reservation");
            }
        }
    });
    futures::future::join_all(closes).await;
}
