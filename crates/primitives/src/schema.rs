//! JSON schemas (OpenAPI 3.1, through utoipa) of the text forms defined
//! here, for the HTTP API's document (feature `openapi`).

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

/// A string schema: `description`, matching `pattern`.
pub fn text(description: &str, pattern: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .into()
}

/// Lower-case hex of `bytes` bytes (any length when `None`).
pub fn hex(description: &str, bytes: Option<usize>) -> RefOr<Schema> {
    match bytes {
        Some(n) => text(description, &format!("^[0-9a-f]{{{}}}$", 2 * n)),
        None => text(description, "^([0-9a-f]{2})*$"),
    }
}

/// `impl ToSchema` for a type whose JSON is a string: `$name`'s schema is
/// `$schema` (an expression of type `RefOr<Schema>`).
#[macro_export]
macro_rules! text_schema {
    ($name:ty, $schema:expr) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $schema
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}
