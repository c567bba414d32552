//! When each chaos event happens, drawn from the seed (the same seed and flags give the same
//! schedule): the agent's and the processor's kill times, the S3 outage window and the moment the
//! customer deletes its log group. Times are offsets from the start of generation.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::ChaosPlan;

/// No kill in the first seconds of generation: the pipeline has just started.
pub const FIRST_KILL_AFTER: Duration = Duration::from_secs(3);

/// No chaos event in the last seconds of generation, so the final restart has time to resume
/// before the drain.
pub const QUIET_END: Duration = Duration::from_secs(5);

/// Least time between two kills of the same component: a restarted program gets to start working
/// (the agent resumes in well under a second, the processor polls at once).
pub const MIN_KILL_GAP: Duration = Duration::from_secs(2);

/// The outage starts at the earliest this far into generation (data is flowing by then).
pub const OUTAGE_EARLIEST_START: Duration = Duration::from_secs(10);

/// The log group deletion keeps this far from the outage's edges, so that the processor's
/// CloudWatch pause around it never overlaps the S3 outage on the same fault proxy.
pub const DELETION_CLEARANCE: Duration = Duration::from_secs(5);

/// One chaos event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChaosEvent {
    /// SIGKILL the agent and start it again.
    KillAgent,
    /// SIGKILL the processor and start it again.
    KillProcessor,
    /// Every S3 request of both components starts failing.
    S3OutageStart,
    /// S3 answers again.
    S3OutageEnd,
    /// The customer deletes the planned tenant's log group.
    DeleteLogGroup,
}

/// The events of a run, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// `(offset from the start of generation, event)`, sorted by offset.
    pub events: Vec<(Duration, ChaosEvent)>,
}

/// The plan does not fit into the generation time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

impl Schedule {
    /// Draws the schedule of `plan` for `duration` of generation.
    pub fn draw(plan: &ChaosPlan, duration: Duration) -> Result<Self, ScheduleError> {
        let mut rng = StdRng::seed_from_u64(plan.seed);
        let mut events = Vec::new();

        let outage = if plan.s3_outage.is_zero() {
            None
        } else {
            let latest = duration
                .checked_sub(plan.s3_outage + QUIET_END)
                .filter(|latest| *latest >= OUTAGE_EARLIEST_START)
                .ok_or_else(|| {
                    ScheduleError(format!(
                        "--s3-outage {:?} does not fit into --duration {:?}: it must end {:?} before \
                         generation does and cannot start before {:?}",
                        plan.s3_outage, duration, QUIET_END, OUTAGE_EARLIEST_START
                    ))
                })?;
            let start = uniform(&mut rng, OUTAGE_EARLIEST_START, latest);
            events.push((start, ChaosEvent::S3OutageStart));
            events.push((start + plan.s3_outage, ChaosEvent::S3OutageEnd));
            Some((start, start + plan.s3_outage))
        };

        let window = (FIRST_KILL_AFTER, duration.saturating_sub(QUIET_END));
        for (count, event, flag) in [
            (plan.agent_kills, ChaosEvent::KillAgent, "--agent-kills"),
            (
                plan.processor_kills,
                ChaosEvent::KillProcessor,
                "--processor-kills",
            ),
        ] {
            let times = spaced_times(&mut rng, count, window, MIN_KILL_GAP).ok_or_else(|| {
                ScheduleError(format!(
                    "{flag} {count}: that many kills at least {MIN_KILL_GAP:?} apart do not fit \
                     between {:?} and {:?} of generation; raise --duration",
                    window.0, window.1
                ))
            })?;
            events.extend(times.into_iter().map(|t| (t, event)));
        }

        if plan.delete_log_group_of.is_some() {
            let allowed = (duration / 10, duration.saturating_sub(duration / 10));
            let blocked = outage.map(|(start, end)| {
                (
                    start.saturating_sub(DELETION_CLEARANCE),
                    end + DELETION_CLEARANCE,
                )
            });
            let at = pick_outside(&mut rng, allowed, blocked).ok_or_else(|| {
                ScheduleError(format!(
                    "no time for the log group deletion outside the S3 outage (±{DELETION_CLEARANCE:?}) \
                     within 10–90 % of --duration {duration:?}; raise --duration"
                ))
            })?;
            events.push((at, ChaosEvent::DeleteLogGroup));
        }

        events.sort_by_key(|(at, _)| *at);
        Ok(Self { events })
    }

    /// How many events of `kind` are planned.
    pub fn count(&self, kind: ChaosEvent) -> usize {
        self.events.iter().filter(|(_, e)| *e == kind).count()
    }
}

/// A time drawn uniformly from `[low, high]`.
fn uniform(rng: &mut StdRng, low: Duration, high: Duration) -> Duration {
    if high <= low {
        return low;
    }
    let span = (high - low).as_millis() as u64;
    low + Duration::from_millis(rng.random_range(0..=span))
}

/// `count` sorted times in `[window.0, window.1]`, each at least `gap` after the previous one:
/// `count` points drawn in the window shortened by the gaps, sorted, the i-th moved by i gaps.
/// `None` when they cannot fit.
fn spaced_times(
    rng: &mut StdRng,
    count: u32,
    window: (Duration, Duration),
    gap: Duration,
) -> Option<Vec<Duration>> {
    if count == 0 {
        return Some(Vec::new());
    }
    let gaps = gap.checked_mul(count - 1)?;
    let high = window.1.checked_sub(gaps)?;
    if high < window.0 {
        return None;
    }
    let mut times: Vec<Duration> = (0..count).map(|_| uniform(rng, window.0, high)).collect();
    times.sort();
    Some(
        times
            .into_iter()
            .zip(0..count)
            .map(|(t, i)| t + gap * i)
            .collect(),
    )
}

/// A time drawn uniformly from `allowed` without `blocked`; `None` if nothing is left.
fn pick_outside(
    rng: &mut StdRng,
    allowed: (Duration, Duration),
    blocked: Option<(Duration, Duration)>,
) -> Option<Duration> {
    let (low, high) = allowed;
    if high < low {
        return None;
    }
    let pieces: Vec<(Duration, Duration)> = match blocked {
        None => vec![(low, high)],
        Some((b0, b1)) => [(low, b0.min(high)), (b1.max(low), high)]
            .into_iter()
            .filter(|(a, b)| a < b)
            .collect(),
    };
    let total: u64 = pieces
        .iter()
        .map(|(a, b)| (*b - *a).as_millis() as u64)
        .sum();
    if total == 0 {
        return None;
    }
    let mut offset = rng.random_range(0..total);
    for (a, b) in pieces {
        let length = (b - a).as_millis() as u64;
        if offset < length {
            return Some(a + Duration::from_millis(offset));
        }
        offset -= length;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::FaultClass;

    fn plan(seed: u64, kills: u32, outage_secs: u64, delete: bool) -> ChaosPlan {
        ChaosPlan {
            seed,
            fault_rate: 0.3,
            fault_classes: FaultClass::ALL.to_vec(),
            agent_kills: kills,
            processor_kills: kills,
            s3_outage: Duration::from_secs(outage_secs),
            delete_log_group_of: delete.then(|| "acme".to_owned()),
            progress_table: true,
            progress_lease: None,
        }
    }

    fn at(schedule: &Schedule, kind: ChaosEvent) -> Vec<Duration> {
        schedule
            .events
            .iter()
            .filter(|(_, e)| *e == kind)
            .map(|(t, _)| *t)
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        let duration = Duration::from_secs(720);
        let a = Schedule::draw(&plan(7, 20, 300, true), duration).expect("fits");
        let b = Schedule::draw(&plan(7, 20, 300, true), duration).expect("fits");
        let c = Schedule::draw(&plan(8, 20, 300, true), duration).expect("fits");
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn the_full_run_fits_every_event_inside_generation() {
        let duration = Duration::from_secs(720);
        for seed in 0..200 {
            let schedule = Schedule::draw(&plan(seed, 20, 300, true), duration).expect("fits");
            assert_eq!(schedule.count(ChaosEvent::KillAgent), 20);
            assert_eq!(schedule.count(ChaosEvent::KillProcessor), 20);
            assert!(schedule.events.windows(2).all(|w| w[0].0 <= w[1].0));
            for kind in [ChaosEvent::KillAgent, ChaosEvent::KillProcessor] {
                let times = at(&schedule, kind);
                assert!(times[0] >= FIRST_KILL_AFTER);
                assert!(*times.last().expect("kills") <= duration - QUIET_END);
                assert!(times.windows(2).all(|w| w[1] - w[0] >= MIN_KILL_GAP));
            }
            let start = at(&schedule, ChaosEvent::S3OutageStart)[0];
            let end = at(&schedule, ChaosEvent::S3OutageEnd)[0];
            assert_eq!(end - start, Duration::from_secs(300));
            assert!(start >= OUTAGE_EARLIEST_START && end <= duration - QUIET_END);
            let deletion = at(&schedule, ChaosEvent::DeleteLogGroup)[0];
            assert!(
                deletion + DELETION_CLEARANCE <= start || deletion >= end + DELETION_CLEARANCE,
                "seed {seed}: deletion at {deletion:?} touches the outage {start:?}..{end:?}"
            );
        }
    }

    #[test]
    fn nothing_planned_means_no_events() {
        let schedule =
            Schedule::draw(&plan(1, 0, 0, false), Duration::from_secs(60)).expect("fits");
        assert!(schedule.events.is_empty());
    }

    #[test]
    fn a_plan_longer_than_generation_is_refused() {
        let short = Duration::from_secs(60);
        assert!(Schedule::draw(&plan(1, 0, 300, false), short).is_err());
        assert!(Schedule::draw(&plan(1, 40, 0, false), short).is_err());
        assert!(Schedule::draw(&plan(1, 5, 20, true), Duration::from_secs(75)).is_ok());
    }
}
