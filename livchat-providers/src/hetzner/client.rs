//! Sending requests: one call through the transport (which retries), a call whose answer
//! decodes, every page of a list, deleting what we created by name, and waiting for the
//! actions Hetzner answers long operations with.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use hcloud::models;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{CloudError, Result, Service};
use crate::http::Reply;
use crate::provider::{ActionProgress, ActionStatus, MANAGED_BY_LABEL, ProgressFn};

use super::HetznerProvider;
use super::errors::api_error;

/// Largest page Hetzner serves.
const PER_PAGE: u32 = 50;
/// A bound on pages, so a server that always answers "there is a next page" cannot loop us.
const MAX_PAGES: u32 = 200;

pub(super) fn managed_labels(extra: &BTreeMap<String, String>) -> HashMap<String, String> {
    let mut l: HashMap<String, String> = extra.clone().into_iter().collect();
    l.insert(MANAGED_BY_LABEL.0.to_owned(), MANAGED_BY_LABEL.1.to_owned());
    l
}

pub(super) fn is_managed(labels: &HashMap<String, String>) -> bool {
    labels.get(MANAGED_BY_LABEL.0).map(String::as_str) == Some(MANAGED_BY_LABEL.1)
}

pub(super) fn json<T: serde::Serialize>(body: &T) -> Vec<u8> {
    // Serialising our own request models cannot fail (no maps with non-string keys).
    serde_json::to_vec(body).unwrap_or_default()
}

impl HetznerProvider {
    pub(super) async fn call(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Reply> {
        self.http
            .request(operation, method, path, query, body, &|op, r| {
                api_error(op, r, None)
            })
            .await
    }

    /// A request whose success body decodes to `T`; any other status is an error.
    pub(super) async fn call_json<T: DeserializeOwned>(
        &self,
        operation: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<T> {
        let reply = self.call(operation, method, path, query, body).await?;
        if !reply.status.is_success() {
            return Err(api_error(operation, reply, None));
        }
        self.http.decode(operation, &reply)
    }

    /// Deletes every item of `/{collection}` named `name` (found with the API's `name`
    /// filter) that carries our `managed-by` label; none, or one gone meanwhile (404), is a
    /// success. An item of that name without the label is not ours and is left alone. `key`
    /// gives an item's id, name and whether it carries the label.
    pub(super) async fn delete_named<T: DeserializeOwned>(
        &self,
        kind: &str,
        collection: &str,
        name: &str,
        key: fn(&T) -> (i64, &String, bool),
    ) -> Result<()> {
        let found: Vec<T> = self
            .list_all(
                &format!("find {kind}"),
                &format!("/{collection}"),
                collection,
                &[("name", name.to_owned())],
            )
            .await?;
        let operation = format!("delete {kind} {name}");
        for item in &found {
            let (id, item_name, managed) = key(item);
            if item_name != name {
                continue;
            }
            if !managed {
                tracing::warn!(%kind, %name, id, "not deleted: it lacks the managed-by label, so LivChat did not create it");
                continue;
            }
            let reply = self
                .call(
                    &operation,
                    Method::DELETE,
                    &format!("/{collection}/{id}"),
                    &[],
                    None,
                )
                .await?;
            if !reply.status.is_success() && reply.status != StatusCode::NOT_FOUND {
                return Err(api_error(&operation, reply, Some(name)));
            }
        }
        Ok(())
    }

    /// All pages of a list endpoint; `field` is the array's key (`servers`).
    pub(super) async fn list_all<T: DeserializeOwned>(
        &self,
        operation: &str,
        path: &str,
        field: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut page = 1u32;
        for _ in 0..MAX_PAGES {
            let mut q = query.to_vec();
            q.push(("page", page.to_string()));
            q.push(("per_page", PER_PAGE.to_string()));
            let mut v: serde_json::Value = self
                .call_json(operation, Method::GET, path, &q, None)
                .await?;
            let items = v
                .get_mut(field)
                .map(serde_json::Value::take)
                .ok_or_else(|| CloudError::Decode {
                    service: Service::Hetzner,
                    operation: operation.to_owned(),
                    message: format!("no {field:?} array in the answer"),
                })?;
            let items: Vec<T> = serde_json::from_value(items).map_err(|e| CloudError::Decode {
                service: Service::Hetzner,
                operation: operation.to_owned(),
                message: e.to_string(),
            })?;
            let meta: models::Meta = serde_json::from_value(
                v.get_mut("meta")
                    .map(serde_json::Value::take)
                    .unwrap_or_default(),
            )
            .map_err(|e| CloudError::Decode {
                service: Service::Hetzner,
                operation: operation.to_owned(),
                message: format!("meta: {e}"),
            })?;
            let empty = items.is_empty();
            out.extend(items);
            // Stop unless the server paged as asked and points forward: a server (or a
            // mock) that ignores `page` would otherwise loop or repeat items.
            let paged_as_asked = meta.pagination.page == i64::from(page);
            match meta.pagination.next_page {
                Some(next) if !empty && paged_as_asked && next > i64::from(page) => {
                    page = u32::try_from(next).unwrap_or(u32::MAX);
                }
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Polls an action until it ends, reporting progress at every poll.
    pub(super) async fn wait_action(
        &self,
        action: models::Action,
        progress: &ProgressFn,
    ) -> Result<()> {
        let started = Instant::now();
        let mut action = action;
        loop {
            let status = match action.status {
                models::action::Status::Running => ActionStatus::Running,
                models::action::Status::Success => ActionStatus::Success,
                models::action::Status::Error => ActionStatus::Error,
            };
            progress(ActionProgress {
                action_id: action.id,
                command: action.command.clone(),
                progress: u8::try_from(action.progress.clamp(0, 100)).unwrap_or(0),
                status,
            });
            match status {
                ActionStatus::Success => return Ok(()),
                ActionStatus::Error => {
                    let (code, message) = action
                        .error
                        .map(|e| (e.code, e.message))
                        .unwrap_or_else(|| ("unknown".into(), "no error details".into()));
                    return Err(CloudError::ActionFailed {
                        service: Service::Hetzner,
                        id: action.id,
                        command: action.command,
                        code,
                        message,
                    });
                }
                ActionStatus::Running => {}
            }
            if started.elapsed() >= self.config.action_timeout {
                return Err(CloudError::WaitTimeout {
                    service: Service::Hetzner,
                    what: format!("action {} ({})", action.command, action.id),
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(self.config.action_poll_interval).await;
            let got: models::GetActionResponse = self
                .call_json(
                    "get action",
                    Method::GET,
                    &format!("/actions/{}", action.id),
                    &[],
                    None,
                )
                .await?;
            action = *got.action;
        }
    }

    pub(super) async fn wait_actions(
        &self,
        actions: Vec<models::Action>,
        progress: &ProgressFn,
    ) -> Result<()> {
        for a in actions {
            self.wait_action(a, progress).await?;
        }
        Ok(())
    }
}
