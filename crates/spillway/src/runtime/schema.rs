//! Stored types: the name and schema version that tag each value a pool stores, and the
//! upgrades that read older versions.
//!
//! Every value payload starts with a type tag (`format::value`, `docs/FORMAT.md` "Value
//! payload"): a hash of the type's stable name and its schema version. A pool writes the tag of
//! the value's type and, on every decode (a page-in, whether of a handle from `load`, `root`,
//! an insert or a parent's child list), checks it against the type the value is read as before
//! the value's bytes are decoded: a value of another type is [`Error::TypeMismatch`], another
//! version of the type is [`Error::SchemaVersion`] unless an upgrade from that version is
//! registered, which then decodes the old Rust type and converts it.
//!
//! A type's stable name and version come from, in order: the pool builder
//! ([`PoolBuilder::schema`](super::PoolBuilder::schema)); the type's
//! [`Pageable::stable_name`] (a trait object's name given to `pageable_dyn!`), version 0; its
//! Rust path, `std::any::type_name`, version 0. Rust does not promise that a type's path is the
//! same across compiler versions, and moving or renaming the type changes it: a type whose
//! stored values must outlive such a change needs a registered name.
//!
//! Invariants: [`Schemas`] is built once, with the pool, and read-only afterwards, so a lookup
//! is one hash-map probe by `TypeId` without a lock; its names are distinct and so are their
//! hashes (the builder refuses two types under one name or two names under one hash); every
//! upgrade is from a version below its type's current one.

use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::value::Pageable;
use crate::error::{Error, Result};
use crate::format::value::{self as tag, TypeTag};
use crate::key::{BuildKeyHasher, ContentKey};

/// A map by `TypeId`, whose hash is a hash already: used as is.
type TypeMap<V> = HashMap<TypeId, V, BuildKeyHasher>;

crate::sync::thread_local! {
    /// The hashes of the default names (a type's `stable_name` or Rust path, which depend on
    /// the type alone, not on the pool) met on this thread: hashing a name takes 100 to 250 ns,
    /// a lookup here a few, without a lock shared between threads. One entry per type.
    static DEFAULT_HASHES: RefCell<TypeMap<u32>> = RefCell::new(TypeMap::default());
}

/// Decodes the bytes of an old version and returns the upgraded value as `Arc<New>`, boxed.
type UpgradeFn = dyn Fn(&[u8]) -> Result<Box<dyn Any + Send + Sync>, postcard::Error> + Send + Sync;

/// An upgrade from one stored version to the current type.
struct Upgrade {
    from: u32,
    old_type: &'static str,
    run: Box<UpgradeFn>,
}

/// A type registered with a pool: its stable name, current version, and upgrades.
struct Schema {
    name: String,
    rust_type: &'static str,
    tag: TypeTag,
    upgrades: Vec<Upgrade>,
}

/// What the pool builder collects: types and upgrades, checked when the pool is built.
#[derive(Default)]
pub(crate) struct SchemaBuilder {
    types: Vec<(TypeId, Schema)>,
    /// Upgrades by the `TypeId` of the type they produce, with that type's Rust path.
    upgrades: Vec<(TypeId, &'static str, Upgrade)>,
}

impl std::fmt::Debug for SchemaBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut l = f.debug_list();
        for (_, s) in &self.types {
            l.entry(&format_args!(
                "{:?} v{} ({})",
                s.name, s.tag.version, s.rust_type
            ));
        }
        for (_, new, u) in &self.upgrades {
            l.entry(&format_args!("{} v{} -> {new}", u.old_type, u.from));
        }
        l.finish()
    }
}

impl SchemaBuilder {
    /// Registers `T` under `name` at `version`.
    pub fn add<T: ?Sized + Pageable>(&mut self, name: String, version: u32) {
        self.types.push((
            TypeId::of::<T>(),
            Schema {
                tag: TypeTag::of(&name, version),
                name,
                rust_type: T::type_name(),
                upgrades: Vec::new(),
            },
        ));
    }

    /// Registers an upgrade of `New`'s stored version `from`, decoded as `Old`, through `f`.
    pub fn upgrade<Old, New>(&mut self, from: u32, f: impl Fn(Old) -> New + Send + Sync + 'static)
    where
        Old: DeserializeOwned + 'static,
        New: Pageable,
    {
        let run = move |bytes: &[u8]| -> Result<Box<dyn Any + Send + Sync>, postcard::Error> {
            let old: Old = postcard::from_bytes(bytes)?;
            Ok(Box::new(Arc::new(f(old))))
        };
        self.upgrades.push((
            TypeId::of::<New>(),
            New::type_name(),
            Upgrade {
                from,
                old_type: std::any::type_name::<Old>(),
                run: Box::new(run),
            },
        ));
    }

    /// The pool's schemas, or what is wrong with the registrations (all of it).
    pub fn build(self) -> Result<Schemas> {
        let mut problems = Vec::new();
        let mut types: TypeMap<Schema> = TypeMap::default();
        for (id, s) in self.types {
            if let Some(other) = types.values().find(|o| o.name == s.name) {
                problems.push(format!(
                    "{} and {} are both registered as {:?}: each would read the other's values",
                    other.rust_type, s.rust_type, s.name
                ));
            } else if let Some(other) = types.values().find(|o| o.tag.hash == s.tag.hash) {
                problems.push(format!(
                    "the names {:?} and {:?} have the same type hash {:#010x}: rename one",
                    other.name, s.name, s.tag.hash
                ));
            }
            if let Some(old) = types.insert(id, s) {
                problems.push(format!(
                    "{} is registered twice (as {:?} and again): register each type once",
                    old.rust_type, old.name
                ));
            }
        }
        for (id, new_type, u) in self.upgrades {
            match types.get_mut(&id) {
                None => problems.push(format!(
                    "an upgrade from version {} to {new_type} is registered, but {new_type} is not: \
                     give it its stable name and current version with `schema::<{new_type}>(name, version)`",
                    u.from
                )),
                Some(s) if u.from >= s.tag.version => problems.push(format!(
                    "an upgrade of {:?} from version {} is not from an older version: {} is at version {}",
                    s.name, u.from, s.rust_type, s.tag.version
                )),
                Some(s) if s.upgrades.iter().any(|o| o.from == u.from) => problems.push(format!(
                    "two upgrades of {:?} from version {} are registered: keep one",
                    s.name, u.from
                )),
                Some(s) => s.upgrades.push(u),
            }
        }
        if !problems.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "the pool's stored types: {}",
                problems.join("; ")
            )));
        }
        Ok(Schemas { types })
    }
}

/// A pool's registered types, by `TypeId`: built once, read-only afterwards.
#[derive(Default)]
pub(crate) struct Schemas {
    types: TypeMap<Schema>,
}

impl Schemas {
    fn get<T: ?Sized + Pageable>(&self) -> Option<&Schema> {
        if self.types.is_empty() {
            return None;
        }
        self.types.get(&TypeId::of::<T>())
    }

    /// The stable name and tag of `T` in this pool.
    fn name_and_tag<T: ?Sized + Pageable>(&self) -> (&str, TypeTag) {
        match self.get::<T>() {
            Some(s) => (&s.name, s.tag),
            None => {
                let name = T::stable_name().unwrap_or_else(T::type_name);
                let hash = DEFAULT_HASHES.with(|h| {
                    *h.borrow_mut()
                        .entry(TypeId::of::<T>())
                        .or_insert_with(|| tag::type_hash(name))
                });
                (name, TypeTag { hash, version: 0 })
            }
        }
    }

    /// The payload of `value`: its type tag, then its encoding.
    pub fn encode<T: ?Sized + Pageable>(&self, value: &T) -> Result<Vec<u8>, postcard::Error> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(value, &mut out)?;
        Ok(out)
    }

    /// [`encode`](Self::encode), appending to `out`; on an error, `out` may hold part of the
    /// payload after what it held: the caller cuts it.
    pub fn encode_into<T: ?Sized + Pageable>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), postcard::Error> {
        tag::encode(self.name_and_tag::<T>().1, out);
        value.encode_value(out)
    }

    /// Decodes the payload of object `key` as a `T`: checks its tag, then decodes the value,
    /// through an upgrade if it is a registered older version. To be run inside the codec's
    /// decode context (handles in the value need it).
    pub fn decode<T: ?Sized + Pageable>(&self, key: ContentKey, payload: &[u8]) -> Result<Arc<T>> {
        let (found, body) = tag::decode(payload).map_err(|e| Error::Corrupted {
            what: "value type tag",
            location: format!("object {key}"),
            detail: e.to_string(),
        })?;
        let (name, want) = self.name_and_tag::<T>();
        let codec = |type_name: &'static str, e: postcard::Error| Error::Codec {
            type_name,
            key: Some(key),
            detail: e.to_string(),
        };
        if found == want {
            return T::decode_value(body).map_err(|e| codec(T::type_name(), e));
        }
        if found.hash != want.hash {
            return Err(Error::TypeMismatch {
                key,
                expected: format!(
                    "{name:?} version {} (Rust type {}, type hash {:#010x})",
                    want.version,
                    T::type_name(),
                    want.hash
                ),
                found: self.describe(found),
            });
        }
        let upgrade = self
            .get::<T>()
            .and_then(|s| s.upgrades.iter().find(|u| u.from == found.version));
        let Some(u) = upgrade else {
            return Err(Error::SchemaVersion {
                key,
                name: name.to_string(),
                type_name: T::type_name(),
                expected: want.version,
                found: found.version,
            });
        };
        let upgraded = (u.run)(body).map_err(|e| codec(u.old_type, e))?;
        upgraded.downcast::<Arc<T>>().map(|b| *b).map_err(|_| {
            Error::Internal(format!(
                "the upgrade to {} made another type",
                T::type_name()
            ))
        })
    }

    /// A found tag in words: the registered type it names, or its hash and version with the
    /// names this pool knows.
    fn describe(&self, found: TypeTag) -> String {
        if let Some(s) = self.types.values().find(|s| s.tag.hash == found.hash) {
            return format!(
                "{:?} version {} (Rust type {} in this pool, type hash {:#010x})",
                s.name, found.version, s.rust_type, found.hash
            );
        }
        let mut known: Vec<String> = self
            .types
            .values()
            .map(|s| {
                format!(
                    "{:?} version {} ({:#010x})",
                    s.name, s.tag.version, s.tag.hash
                )
            })
            .collect();
        known.sort();
        format!(
            "a type this pool has no name for ({found}; the names it has: {}; a type without a \
             registered name is tagged with the hash of its Rust path, and a value stored before \
             type tags has none)",
            if known.is_empty() {
                "none registered".to_string()
            } else {
                known.join(", ")
            }
        )
    }
}
