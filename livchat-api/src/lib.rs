//! `livchat-api`, the REST frontend over `livchat-core`: every operation of core's registry
//! (`livchat_core::ops::operations()`) as a route under `/api`, the OpenAPI 3.1 document
//! generated from the same registry and its JSON Schemas (`/openapi.json`, browsable at
//! `/docs`), jobs answered 202 and run in the service, Server-Sent Events for following them,
//! bearer auth with the vault's `api_token`, rate limits and one error shape.
//!
//! Must not touch: any leaf crate directly, the home directory's files, or a rule of an
//! operation (validation, plans and runs are core's; this crate maps HTTP onto them). Glue
//! only: `routes` maps operations to HTTP, `openapi` describes them, `service` is the axum
//! application and its middleware, `events` streams jobs, `serve` binds and shuts down.

pub mod answers;
pub mod error;
pub mod events;
pub mod limits;
pub mod openapi;
pub mod routes;
pub mod serve;
pub mod service;
