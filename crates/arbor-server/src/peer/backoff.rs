//! How long to wait before dialing a peer again: exponential in the failures since the last
//! success, with jitter so that the nodes of a cluster that lost a peer together do not all
//! redial it in lockstep.

use std::time::Duration;

/// The wait after `failures` consecutive failures (0 after a connection that worked and was
/// lost). The exponential step is `backoff_min · 2^failures`, capped at `backoff_max`; the wait
/// is drawn between half of the step and the whole step by `jitter` in `[0, 1)`, and never
/// under `backoff_min` nor over `backoff_max`.
pub(crate) fn backoff_delay(
    backoff_min: Duration,
    backoff_max: Duration,
    failures: u32,
    jitter: f64,
) -> Duration {
    debug_assert!(backoff_min <= backoff_max);
    let doublings = failures.min(32);
    let step = backoff_min
        .checked_mul(1u32 << doublings.min(31))
        .unwrap_or(backoff_max)
        .min(backoff_max);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let half = step / 2;
    let delay = half + half.mul_f64(jitter);
    delay.clamp(backoff_min, backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);

    #[test]
    fn grows_exponentially_until_the_cap() {
        // jitter 1.0 is the top of the range: the whole step.
        let steps: Vec<u128> = (0..8)
            .map(|failures| backoff_delay(MIN, MAX, failures, 1.0).as_millis())
            .collect();
        assert_eq!(steps, vec![100, 200, 400, 800, 1600, 2000, 2000, 2000]);
    }

    #[test]
    fn jitter_spans_half_to_whole_step_within_the_bounds() {
        assert_eq!(backoff_delay(MIN, MAX, 3, 0.0), Duration::from_millis(400));
        assert_eq!(backoff_delay(MIN, MAX, 3, 0.5), Duration::from_millis(600));
        // Half a step below the minimum is lifted to it.
        assert_eq!(backoff_delay(MIN, MAX, 0, 0.0), MIN);
        assert_eq!(backoff_delay(MIN, MAX, 30, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn absurd_inputs_stay_in_bounds() {
        for failures in [0, 1, 31, 32, 33, u32::MAX] {
            for jitter in [f64::NAN, -1.0, 0.0, 0.999, 7.0, f64::INFINITY] {
                let delay = backoff_delay(MIN, MAX, failures, jitter);
                assert!(
                    MIN <= delay && delay <= MAX,
                    "{failures} {jitter} {delay:?}"
                );
            }
        }
        let huge = Duration::from_secs(u64::MAX / 4);
        let delay = backoff_delay(huge, Duration::MAX, u32::MAX, 1.0);
        assert!(delay >= huge);
    }
}
