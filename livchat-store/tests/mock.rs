//! The mockall mock of `Store` (feature `mock`) can stand in for the trait object.
#![cfg(feature = "mock")]

use std::sync::Arc;

use livchat_store::{MockStore, State, Store, StoreError};

#[test]
fn mock_store_runs_the_callers_closure_and_returns_what_it_is_told() {
    let mut mock = MockStore::new();
    mock.expect_update()
        .withf(|op, _| op == "set email")
        .times(1)
        .returning(|_, f| {
            let mut state = State::new();
            f(&mut state)?;
            Ok(state)
        });
    mock.expect_load()
        .returning(|| Err(StoreError::Rejected("no state in this test".into())));
    let store: Arc<dyn Store> = Arc::new(mock);
    let state = store
        .update("set email", &mut |s: &mut State| {
            s.deployments.entry("web-1".into()).or_default();
            Ok(())
        })
        .unwrap();
    assert!(state.deployments.contains_key("web-1"));
    assert!(store.load().is_err());
}
