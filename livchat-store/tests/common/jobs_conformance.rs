//! The job half of the `Store` conformance suite: every implementation keeps job records the
//! same way (one at a time, live ones found cheaply, one live job per server when asked).

use std::sync::Arc;

use livchat_store::{JobOwner, JobRecord, JobStatus, Store, StoreError, StoreExt};

/// A queued job `id` on `server`, owned by this (live) process.
pub fn job(id: &str, server: Option<&str>) -> JobRecord {
    JobRecord {
        id: id.to_string(),
        kind: "setup_server".to_string(),
        server: server.map(str::to_string),
        status: JobStatus::Queued,
        progress: 0,
        current_step: None,
        steps_completed: Vec::new(),
        steps_remaining: vec!["a".into(), "b".into()],
        params: serde_json::json!({"name": server}),
        result: None,
        error: None,
        created_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid time"),
        started_at: None,
        finished_at: None,
        attempt: 1,
        owner: Some(JobOwner {
            pid: std::process::id(),
            host: livchat_store::this_host(),
        }),
        cancel_requested: false,
    }
}

/// Runs every job check against `store`, which must hold no job.
pub fn check_job_store(store: Arc<dyn Store>) {
    assert!(store.jobs().unwrap().is_empty(), "the suite needs no jobs");
    assert_eq!(store.job("job-1").unwrap(), None);

    // Insert, read back, list.
    assert_eq!(
        store
            .insert_job(&job("job-1", Some("web-1")), true)
            .unwrap(),
        None
    );
    assert_eq!(
        store.job("job-1").unwrap(),
        Some(job("job-1", Some("web-1")))
    );
    assert_eq!(store.live_jobs().unwrap().len(), 1);

    // One live job per server when exclusive: the one in the way is returned, nothing written.
    let busy = store
        .insert_job(&job("job-2", Some("web-1")), true)
        .unwrap();
    assert_eq!(busy.map(|j| j.id), Some("job-1".to_string()));
    assert_eq!(store.job("job-2").unwrap(), None);
    // Not exclusive (it waits for its turn when it runs), or another server: accepted.
    assert_eq!(
        store
            .insert_job(&job("job-2", Some("web-1")), false)
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .insert_job(&job("job-3", Some("web-2")), true)
            .unwrap(),
        None
    );

    // A job whose owner process is gone does not hold its server.
    store
        .update_job("job-3", "dead owner", &mut |j| {
            j.owner = Some(JobOwner {
                pid: u32::MAX - 1,
                host: livchat_store::this_host(),
            });
            Ok(())
        })
        .unwrap();
    assert_eq!(
        store
            .insert_job(&job("job-4", Some("web-2")), true)
            .unwrap(),
        None
    );

    // An update changes one record; the ended one leaves the live list but stays listed.
    let (done, ()) = store
        .update_job_with("job-1", "finish", |j| {
            j.status = JobStatus::Completed;
            j.progress = 100;
            Ok(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(store.job("job-1").unwrap(), Some(done));
    let live: Vec<String> = store
        .live_jobs()
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(live, ["job-2", "job-3", "job-4"]);
    let all: Vec<String> = store.jobs().unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(all, ["job-1", "job-2", "job-3", "job-4"]);

    // A refused update writes nothing; so do an invalid one and one that changes the id.
    let refused = store.update_job("job-2", "refuse", &mut |j| {
        j.progress = 50;
        Err(StoreError::Rejected("no".into()))
    });
    assert!(matches!(refused, Err(StoreError::Rejected(_))));
    let invalid = store.update_job("job-2", "too far", &mut |j| {
        j.progress = 101;
        Ok(())
    });
    assert!(invalid.unwrap_err().to_string().contains("progress"));
    let renamed = store.update_job("job-2", "rename", &mut |j| {
        j.id = "job-9".into();
        Ok(())
    });
    assert!(renamed.is_err());
    assert_eq!(
        store.job("job-2").unwrap(),
        Some(job("job-2", Some("web-1")))
    );
    assert_eq!(store.job("job-9").unwrap(), None);

    // A missing job is `None`, not an error, and its closure never runs.
    let missing = store
        .update_job("job-404", "missing", &mut |_| {
            panic!("called for a missing job")
        })
        .unwrap();
    assert_eq!(missing, None);

    // An id that could leave the jobs directory is refused.
    assert!(store.job("../state").is_err());
    assert!(store.insert_job(&job("a/b", None), false).is_err());

    // Jobs are not part of the state: their writes leave its serial alone.
    let serial = store.load().unwrap().serial;
    store
        .update_job("job-2", "progress", &mut |j| {
            j.progress = 50;
            Ok(())
        })
        .unwrap();
    assert_eq!(store.load().unwrap().serial, serial);

    // Removal.
    store
        .remove_jobs(&["job-1".into(), "job-2".into(), "job-404".into()])
        .unwrap();
    let all: Vec<String> = store.jobs().unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(all, ["job-3", "job-4"]);
}
