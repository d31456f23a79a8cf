//! The OpenAPI document's last touches that derives cannot express.

use utoipa::openapi::schema::{Object, OneOfBuilder, Schema, Type};
use utoipa::openapi::{OpenApi, RefOr};

/// Makes every `Proven<V>`'s `value` nullable, as it is on the wire (an
/// absent record is `null`): utoipa 6 inlines a generic `Option<V>`
/// field's schema without its `null` alternative.
pub fn finish(doc: &mut OpenApi) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for (name, schema) in components.schemas.iter_mut() {
        if !name.starts_with("Proven_") {
            continue;
        }
        let RefOr::T(Schema::Object(obj)) = schema else {
            continue;
        };
        if let Some(value) = obj.properties.remove("value") {
            let nullable = OneOfBuilder::new()
                .item(value)
                .item(Object::with_type(Type::Null))
                .build();
            obj.properties
                .insert("value".to_string(), RefOr::T(Schema::OneOf(nullable)));
        }
    }
}
