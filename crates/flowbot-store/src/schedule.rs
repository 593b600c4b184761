//! Triggers the workers fire: schedule slots (exactly once per slot across every worker and
//! process: the key `(flow, slot)` is the guard) and polling cursors (stored in the same
//! transaction as the events they produced, so nothing is missed or repeated).

use std::str::FromStr;

use jiff::tz::TimeZone;
use jiff::Timestamp;
use sqlx::Row;

use crate::inbox::{insert_event, EnqueueOutcome, NewEvent};
use crate::{Result, Store};

/// What to do about slots that passed while nothing ran (flowbot was stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissedSlots {
    /// Run only slots reached on time (within a minute); missed ones are recorded as skipped.
    Skip,
    /// Run once for the latest missed slot.
    CatchUp,
}

/// Slots further back than this are never looked at.
const LOOKBACK_MS: i64 = 7 * 24 * 3600 * 1000;
/// A slot reached this late still counts as on time.
const GRACE_MS: i64 = 60_000;

/// A cron schedule in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: jiff_cron::Schedule,
    tz: TimeZone,
    missed: MissedSlots,
}

/// What the scheduler should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotDecision {
    Fire(Timestamp),
    Skip(Timestamp),
}

impl Schedule {
    /// `expr` is a standard five-field cron expression (minute hour day month weekday),
    /// e.g. `0 9 * * *` for every day at 09:00 in `tz`.
    pub fn parse(
        expr: &str,
        tz: &str,
        missed: MissedSlots,
    ) -> std::result::Result<Schedule, String> {
        let fields = expr.split_whitespace().count();
        if fields != 5 {
            return Err(format!(
                "`{expr}` has {fields} fields; a schedule has five: minute hour day-of-month month day-of-week"
            ));
        }
        let cron = jiff_cron::Schedule::from_str(&format!("0 {expr}"))
            .map_err(|e| format!("`{expr}` is not a cron expression: {e}"))?;
        let tz = TimeZone::get(tz).map_err(|_| format!("unknown time zone `{tz}`"))?;
        Ok(Schedule { cron, tz, missed })
    }

    /// Given the last slot already handled, what to do at `now`.
    pub fn decide(
        &self,
        last_handled: Option<Timestamp>,
        enabled_since: Timestamp,
        now: Timestamp,
    ) -> Option<SlotDecision> {
        // Slots strictly after the last handled one; without one, from the moment the
        // flow was enabled (a slot at that very moment included).
        let floor = last_handled
            .unwrap_or_else(|| {
                Timestamp::from_millisecond(enabled_since.as_millisecond() - 1)
                    .unwrap_or(enabled_since)
            })
            .max(Timestamp::from_millisecond(now.as_millisecond() - LOOKBACK_MS).unwrap_or(now));
        let start = floor.to_zoned(self.tz.clone());
        let mut latest = None;
        for slot in self.cron.after(start) {
            let ts = slot.timestamp();
            if ts > now {
                break;
            }
            latest = Some(ts);
        }
        let slot = latest?;
        if Some(slot) == last_handled {
            return None;
        }
        let on_time = now.as_millisecond() - slot.as_millisecond() <= GRACE_MS;
        Some(if on_time || self.missed == MissedSlots::CatchUp {
            SlotDecision::Fire(slot)
        } else {
            SlotDecision::Skip(slot)
        })
    }
}

impl Store {
    /// The last schedule slot handled (fired or skipped) for a flow.
    pub async fn last_schedule_slot(&self, flow_id: &str) -> Result<Option<Timestamp>> {
        let slot: Option<i64> =
            sqlx::query_scalar("SELECT MAX(slot) FROM schedule_fires WHERE flow_id = $1")
                .bind(flow_id.to_string())
                .fetch_one(self.pool())
                .await?;
        Ok(slot.and_then(|s| Timestamp::from_millisecond(s).ok()))
    }

    /// Fire a slot: enqueue its run unless another worker already did. Returns the
    /// outcome when this call fired it.
    pub async fn fire_schedule_slot(
        &self,
        slot: Timestamp,
        ev: NewEvent,
    ) -> Result<Option<EnqueueOutcome>> {
        let now = self.now_ms();
        let fired = self
            .inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let inserted = sqlx::query(
                        "INSERT INTO schedule_fires (flow_id, slot) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(ev.flow_id.clone())
                    .bind(slot.as_millisecond())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if inserted == 0 {
                        return Ok(None);
                    }
                    let outcome = insert_event(conn, now, &ev).await?;
                    if let EnqueueOutcome::Queued { run_id, .. } | EnqueueOutcome::Failed { run_id, .. } = &outcome {
                        sqlx::query("UPDATE schedule_fires SET run_id = $1 WHERE flow_id = $2 AND slot = $3")
                            .bind(run_id.clone())
                            .bind(ev.flow_id.clone())
                            .bind(slot.as_millisecond())
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(Some(outcome))
                })
            })
            .await?;
        if matches!(fired, Some(EnqueueOutcome::Queued { .. })) {
            self.wake_workers();
        }
        Ok(fired)
    }

    /// Record a missed slot as skipped, so it is not considered again.
    pub async fn skip_schedule_slot(&self, flow_id: &str, slot: Timestamp) -> Result<()> {
        let flow_id = flow_id.to_string();
        self.inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO schedule_fires (flow_id, slot) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                        .bind(flow_id)
                        .bind(slot.as_millisecond())
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    /// Where a polling trigger has read up to, and when it last polled (ms).
    pub async fn poll_cursor(&self, flow_id: &str) -> Result<Option<(String, i64)>> {
        let row = sqlx::query("SELECT cursor, updated_at FROM trigger_cursors WHERE flow_id = $1")
            .bind(flow_id.to_string())
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("cursor")?, r.try_get("updated_at")?)),
            None => None,
        })
    }

    /// Store what a poll produced: the new cursor and its events, in one transaction, and
    /// only if the cursor is still the one the poll started from (another worker may have
    /// polled meanwhile). Returns false when it was not, and nothing was written.
    pub async fn commit_poll(
        &self,
        flow_id: &str,
        expected: Option<String>,
        cursor: String,
        events: Vec<NewEvent>,
    ) -> Result<bool> {
        let flow_id = flow_id.to_string();
        let now = self.now_ms();
        let (moved, queued) = self
            .inner
            .writer
            .write(move |conn| {
                Box::pin(async move {
                    let moved = match &expected {
                        Some(old) => sqlx::query(
                            "UPDATE trigger_cursors SET cursor = $1, updated_at = $2 WHERE flow_id = $3 AND cursor = $4",
                        )
                        .bind(cursor.clone())
                        .bind(now)
                        .bind(flow_id.clone())
                        .bind(old.clone())
                        .execute(&mut *conn)
                        .await?
                        .rows_affected(),
                        None => sqlx::query(
                            "INSERT INTO trigger_cursors (flow_id, cursor, updated_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        )
                        .bind(flow_id.clone())
                        .bind(cursor.clone())
                        .bind(now)
                        .execute(&mut *conn)
                        .await?
                        .rows_affected(),
                    };
                    if moved == 0 {
                        return Ok((false, false));
                    }
                    let mut queued = false;
                    for ev in &events {
                        queued |= matches!(
                            insert_event(conn, now, ev).await?,
                            EnqueueOutcome::Queued { .. }
                        );
                    }
                    Ok((true, queued))
                })
            })
            .await?;
        if queued {
            self.wake_workers();
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_daily_slot_in_tokyo_fires_at_nine_local() {
        let s = Schedule::parse("0 9 * * *", "Asia/Tokyo", MissedSlots::Skip).unwrap();
        let since = ts("2026-11-28T00:00:01Z");
        // 09:00 JST is 00:00 UTC.
        assert_eq!(s.decide(None, since, ts("2026-11-28T23:59:00Z")), None);
        assert_eq!(
            s.decide(None, since, ts("2026-11-29T00:00:20Z")),
            Some(SlotDecision::Fire(ts("2026-11-29T00:00:00Z")))
        );
        // Once handled, the same slot is not offered again.
        assert_eq!(
            s.decide(
                Some(ts("2026-11-29T00:00:00Z")),
                since,
                ts("2026-11-29T00:00:40Z")
            ),
            None
        );
    }

    #[test]
    fn missed_slots_are_skipped_or_caught_up_once() {
        let since = ts("2026-11-20T00:00:00Z");
        let now = ts("2026-11-29T03:00:00Z");
        let skip = Schedule::parse("0 9 * * *", "Asia/Tokyo", MissedSlots::Skip).unwrap();
        assert_eq!(
            skip.decide(None, since, now),
            Some(SlotDecision::Skip(ts("2026-11-29T00:00:00Z")))
        );
        let catch = Schedule::parse("0 9 * * *", "Asia/Tokyo", MissedSlots::CatchUp).unwrap();
        assert_eq!(
            catch.decide(None, since, now),
            Some(SlotDecision::Fire(ts("2026-11-29T00:00:00Z")))
        );
    }

    #[test]
    fn bad_schedules_are_explained() {
        assert!(Schedule::parse("0 9 * *", "UTC", MissedSlots::Skip)
            .unwrap_err()
            .contains("five"));
        assert!(Schedule::parse("0 25 * * *", "UTC", MissedSlots::Skip).is_err());
        assert!(Schedule::parse("0 9 * * *", "Mars/Base", MissedSlots::Skip)
            .unwrap_err()
            .contains("time zone"));
    }
}
