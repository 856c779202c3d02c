//! The conformance suite every `JobLogStore` must pass: the file logs `livchat` writes and
//! `MemoryJobLogs`, which the core's job tests run on, behave the same. Takes an empty store.

use livchat_store::{JobLogStore, LogLevel, LogLine, StoreError};

/// An empty log, typed for comparisons.
const NONE: [LogLine; 0] = [];

fn line(n: i64, level: LogLevel, message: &str) -> LogLine {
    LogLine {
        // Sub-second precision must survive a round trip.
        timestamp: chrono::DateTime::from_timestamp(1_700_000_000 + n, 123_456_789)
            .expect("valid time"),
        level,
        message: message.to_owned(),
    }
}

fn assert_invalid_id(result: Result<impl std::fmt::Debug, StoreError>, id: &str) {
    match result {
        Err(StoreError::InvalidInput { field, .. }) => assert_eq!(field, "job id", "{id:?}"),
        other => panic!("{id:?} must be refused as a job id, got {other:?}"),
    }
}

/// Runs every check against `logs`, which must hold no logs.
pub fn check_job_logs(logs: &dyn JobLogStore) {
    let job = "job-20261202120000-0a1b2c3d";
    assert_eq!(
        logs.read(job, 0).unwrap(),
        NONE,
        "a job without a log reads empty"
    );

    // Lines come back in order and unchanged, including a message with a newline in it.
    let lines = [
        line(0, LogLevel::Info, "step connect: started"),
        line(
            1,
            LogLevel::Warn,
            "retrying: 503 from the provider\nsecond line",
        ),
        line(2, LogLevel::Error, "ünïcødé ✓ and \"quotes\""),
        line(3, LogLevel::Debug, ""),
    ];
    for l in &lines {
        logs.append(job, l).unwrap();
    }
    assert_eq!(logs.read(job, 0).unwrap(), lines);

    // `from` skips lines already seen (how `job logs --follow` polls).
    assert_eq!(logs.read(job, 1).unwrap(), lines[1..]);
    assert_eq!(logs.read(job, 4).unwrap(), NONE);
    assert_eq!(logs.read(job, 100).unwrap(), NONE);
    let more = line(4, LogLevel::Info, "step connect: done");
    logs.append(job, &more).unwrap();
    assert_eq!(logs.read(job, 4).unwrap(), std::slice::from_ref(&more));

    // Jobs do not share logs.
    let other = "job-20261202120001-ffffffff";
    logs.append(other, &line(9, LogLevel::Info, "other job"))
        .unwrap();
    assert_eq!(logs.read(other, 0).unwrap().len(), 1);
    assert_eq!(logs.read(job, 0).unwrap().len(), 5);

    // Remove forgets the log; removing an absent log is fine; a new log starts empty.
    logs.remove(job).unwrap();
    assert_eq!(logs.read(job, 0).unwrap(), NONE);
    logs.remove(job).unwrap();
    logs.remove("job-never-written").unwrap();
    logs.append(job, &more).unwrap();
    assert_eq!(logs.read(job, 0).unwrap(), [more]);
    assert_eq!(
        logs.read(other, 0).unwrap().len(),
        1,
        "the other job's log is kept"
    );

    // Job ids are an allowlist for every operation (they become file names).
    let longest = "j".repeat(64);
    logs.append(&longest, &line(0, LogLevel::Info, "ok"))
        .unwrap();
    assert_eq!(logs.read(&longest, 0).unwrap().len(), 1);
    for bad in ["", "../state", "a/b", "job 1", "job.1", &"j".repeat(65)] {
        assert_invalid_id(logs.append(bad, &line(0, LogLevel::Info, "x")), bad);
        assert_invalid_id(logs.read(bad, 0), bad);
        assert_invalid_id(logs.remove(bad), bad);
    }
}
