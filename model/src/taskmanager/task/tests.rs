//! Tests of a task's pieces that need no TaskExecutor: the source's fetch plan. The lifecycle,
//! partition requests and reading are tested through the TaskExecutor
//! (`task_executor/tests.rs`).

use super::*;

#[test]
fn source_fetch_plan_keeps_the_rate_per_partition() {
    let ms = Duration::from_millis;
    // One interval's worth per fetch, rounded up.
    assert_eq!(source_fetch_plan(Some(1000)), (100, ms(100)));
    assert_eq!(source_fetch_plan(Some(15)), (2, ms(100)));
    assert_eq!(source_fetch_plan(Some(10)), (1, ms(100)));
    // Slower than one record per interval: one record every 1 s / rate.
    assert_eq!(source_fetch_plan(Some(2)), (1, ms(500)));
    assert_eq!(source_fetch_plan(Some(1)), (1, ms(1000)));
    assert_eq!(
        source_fetch_plan(None),
        (crate::external::source_log::FETCH_RECORDS_MAX, ms(100))
    );
}
