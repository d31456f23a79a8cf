//! The API's OpenAPI 3.1 document (`GET /v1/openapi.json`), from the
//! handlers' `#[utoipa::path]` annotations and the shared wire types
//! (`glassbox_api::wire`).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use glassbox_api::wire::ErrorEnvelope;

use super::*;

/// The API's OpenAPI 3.1 document, from the handlers' `#[utoipa::path]`
/// annotations and the shared wire types (`glassbox_api::wire`).
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Glassbox node API",
        description = "A Glassbox node's HTTP API: transactions, blocks, proven state \
                       (accounts, executors, models, jobs), receipts, and model blobs. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`; see the \
                       `glassbox_node::api` documentation for the rules."
    ),
    paths(
        health,
        status,
        submit_tx,
        tx_status,
        latest_block,
        block_at,
        account,
        executors,
        executor,
        models,
        model_by_name,
        model,
        submit_job,
        job,
        job_receipt,
        job_ext,
        concentration,
        put_tensor,
        get_tensor,
        genesis,
        snapshot,
        segment,
        openapi_json,
        blobs::put_blob,
        blobs::get_blob,
        blobs::get_slice,
    ),
    components(schemas(ErrorEnvelope))
)]
struct ApiDoc;

/// The API's OpenAPI 3.1 document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = <ApiDoc as utoipa::OpenApi>::openapi();
    glassbox_api::schema::finish(&mut doc);
    doc
}

/// The document as served, built once.
fn openapi_text() -> Result<&'static str, ApiError> {
    static TEXT: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| openapi().to_json().map_err(|e| e.to_string()))
        .as_deref()
        .map_err(|e| ApiError::internal(format!("the OpenAPI document: {e}")))
}

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
pub(super) async fn openapi_json() -> Result<Response, ApiError> {
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        openapi_text()?,
    )
        .into_response())
}
