//! Wire formats, as pure functions over bytes: nothing outside a codec module sees its raw bytes.
pub mod gob;
