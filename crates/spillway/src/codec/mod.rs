//! The codec: values to bytes and back, with handles to other values kept outside the bytes.
//!
//! Values are serialized with serde into postcard, after a type tag (see the runtime's
//! `schema` module and `docs/FORMAT.md`, "Value payload"). A value may contain handles to other paged
//! values; a handle is not serialized as its value but as an index into the value's *child
//! list*, and the children's content keys are stored beside the payload (see
//! [`Blob`](crate::store::Blob)). The content key of the value then covers its payload and its
//! children's keys, so a graph is stored bottom-up as a Merkle DAG.
//!
//! The handle's own `Serialize`/`Deserialize` find the list through a context that this module
//! installs for the duration of one [`encode_with`] or [`decode_with`] call on the current thread; outside
//! such a call (serializing a handle to JSON, say) they fail with a clear error instead of
//! writing something that cannot be read back.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;

use crate::key::ContentKey;

/// What a handle found while its parent was being encoded.
#[derive(Default)]
pub struct EncodeCtx {
    /// Keys of the children, in the order their indexes were handed out.
    pub children: Vec<ContentKey>,
    /// Children that have no key yet (never stored): they must be encoded first, and the parent
    /// encoded again after them.
    pub missing: Vec<Arc<dyn Any + Send + Sync>>,
}

/// What a handle needs while its parent is being decoded.
pub struct DecodeCtx {
    /// Keys of the children, indexed by the numbers in the payload.
    pub children: Vec<ContentKey>,
    /// The runtime object that turns a key into a handle (the pool).
    pub hydrator: Arc<dyn Any + Send + Sync>,
}

crate::sync::thread_local! {
    static ENCODE: RefCell<Option<EncodeCtx>> = const { RefCell::new(None) };
    static DECODE: RefCell<Option<DecodeCtx>> = const { RefCell::new(None) };
}

/// Runs `f` (which serializes one value) with a fresh encode context installed, and returns its
/// result with the context: the children's keys, and handles that still need storing.
pub fn encode_with<R>(f: impl FnOnce() -> R) -> (R, EncodeCtx) {
    let previous = ENCODE.with(|c| c.borrow_mut().replace(EncodeCtx::default()));
    let out = f();
    let ctx = ENCODE.with(|c| std::mem::replace(&mut *c.borrow_mut(), previous));
    (out, ctx.unwrap_or_default())
}

/// The content key of the payload that `encode` makes (run inside an encode context): the key
/// of the payload and of its children's keys (see [`ContentKey::of`]). Every handle inside the
/// value must have a key already (an error otherwise), as it does once the value has been
/// stored or read back from a store.
pub fn key_of_encoding(
    type_name: &'static str,
    encode: impl FnOnce() -> Result<Vec<u8>, postcard::Error>,
) -> crate::error::Result<ContentKey> {
    let (payload, ctx) = encode_with(encode);
    let codec_error = |detail: String| crate::error::Error::Codec {
        type_name,
        key: None,
        detail,
    };
    let payload = payload.map_err(|e| codec_error(e.to_string()))?;
    if !ctx.missing.is_empty() {
        return Err(codec_error(format!(
            "{} handles inside it were never stored, so they have no key yet",
            ctx.missing.len()
        )));
    }
    Ok(ContentKey::of(&payload, &ctx.children))
}

/// Runs `f` (which deserializes) with `ctx` installed.
pub fn decode_with<R>(ctx: DecodeCtx, f: impl FnOnce() -> R) -> R {
    let previous = DECODE.with(|c| c.borrow_mut().replace(ctx));
    let out = f();
    DECODE.with(|c| *c.borrow_mut() = previous);
    out
}

/// For a handle being serialized: records `key` (or, if `None`, the handle itself as missing)
/// and returns the index to write. `None` if no encode is in progress on this thread.
pub fn child_index(
    key: Option<ContentKey>,
    handle: impl FnOnce() -> Arc<dyn Any + Send + Sync>,
) -> Option<u32> {
    ENCODE.with(|c| {
        let mut c = c.borrow_mut();
        let ctx = c.as_mut()?;
        let idx = ctx.children.len() as u32;
        match key {
            Some(k) => ctx.children.push(k),
            None => {
                ctx.children.push(ContentKey::from_bytes([0; 16]));
                ctx.missing.push(handle());
            }
        }
        Some(idx)
    })
}

/// For a handle being deserialized: the key at `index` and the hydrator. `Err` with a message
/// if no decode is in progress or the index is out of range.
pub fn child_key(index: u32) -> Result<(ContentKey, Arc<dyn Any + Send + Sync>), String> {
    DECODE.with(|c| {
        let c = c.borrow();
        let ctx = c
            .as_ref()
            .ok_or("a spillway handle can only be deserialized by spillway's page-in")?;
        let key = ctx.children.get(index as usize).ok_or_else(|| {
            format!(
                "child index {index} is out of range: the object has {} children",
                ctx.children.len()
            )
        })?;
        Ok((*key, Arc::clone(&ctx.hydrator)))
    })
}
