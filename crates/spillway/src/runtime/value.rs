//! What can be paged: [`Pageable`] values and their deep size.

use std::sync::Arc;

use get_size2::GetSize;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value that a [`Pool`](super::Pool) can page out and back in.
///
/// Implemented for every `T: Serialize + DeserializeOwned + GetSize + Send + Sync + 'static`;
/// trait objects get it through [`pageable_dyn!`](crate::pageable_dyn).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be paged: it needs serde's `Serialize` and `Deserialize` and get-size2's `GetSize`",
    note = "derive them with the versions spillway re-exports: `spillway::serde`, and get-size2 at the version of `spillway::get_size2` (a derive of another version implements another trait)",
    note = "a trait object needs `spillway::pageable_dyn!`"
)]
pub trait Pageable: Send + Sync + 'static {
    /// Serializes the value (handles inside it become child indexes), appending to `out`,
    /// which holds the value's type tag already (and may hold other values before it: on an
    /// error the caller cuts what was appended).
    fn encode_value(&self, out: &mut Vec<u8>) -> Result<(), postcard::Error>;
    /// Deserializes a value (child indexes become lazy handles) from the bytes after its type
    /// tag.
    fn decode_value(bytes: &[u8]) -> Result<Arc<Self>, postcard::Error>;
    /// Bytes the value occupies in memory, its heap included: what the budget counts.
    fn deep_size(&self) -> usize;
    /// The type's name, for error messages.
    fn type_name() -> &'static str {
        std::any::type_name::<Self>()
    }
    /// The stable name stored values of this type are tagged with when the pool has none
    /// registered for it ([`PoolBuilder::schema`](super::PoolBuilder::schema)): `None` for the
    /// blanket implementation, which then uses [`type_name`](Self::type_name); the name given
    /// to [`pageable_dyn!`](crate::pageable_dyn) for a trait object.
    fn stable_name() -> Option<&'static str> {
        None
    }
}

impl<T> Pageable for T
where
    T: Serialize + DeserializeOwned + GetSize + Send + Sync + 'static,
{
    fn encode_value(&self, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
        encode_into(self, out)
    }

    fn decode_value(bytes: &[u8]) -> Result<Arc<Self>, postcard::Error> {
        postcard::from_bytes(bytes).map(Arc::new)
    }

    fn deep_size(&self) -> usize {
        GetSize::get_size(self)
    }
}

/// Serializes `value` with postcard, appending to `out` (which a page-out shares between the
/// values of a batch, so that they take no allocation each). Not for use outside the crate's
/// own macros.
#[doc(hidden)]
pub fn encode_into<T: Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), postcard::Error> {
    postcard::to_extend(value, Append(out)).map(drop)
}

/// `out` as postcard's writer: appends to the vector it borrows.
struct Append<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Append<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        self.0.extend(bytes);
    }
}

/// Deep size of a trait object: implement it (usually through `GetSize`) as a supertrait of a
/// trait whose objects are paged.
pub trait DeepSize {
    /// Bytes the value occupies, heap included.
    fn deep_size(&self) -> usize;
}

impl<T: GetSize> DeepSize for T {
    fn deep_size(&self) -> usize {
        GetSize::get_size(self)
    }
}

/// Makes `dyn Trait` pageable, for a trait declared with `#[typetag::serde]` (typetag is a
/// dependency of the crate that declares the trait, not of spillway) and `DeepSize + Send + Sync`
/// as supertraits.
///
/// A trait object cannot be cloned into a new value, so [`Pool::update`](crate::Pool::update)
/// does not apply to it: [`Pool::update_with`](crate::Pool::update_with) builds the new value
/// from the old one by reference, typically through a method of the trait that returns a
/// `Box<dyn Trait>`:
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use spillway::{DeepSize, Paged, Pool};
///
/// #[typetag::serde]
/// trait Shape: DeepSize + Send + Sync {
///     fn area(&self) -> f64;
///     /// This shape, `k` times as large: how an update makes a new value of the trait.
///     fn scaled(&self, k: f64) -> Box<dyn Shape>;
/// }
/// spillway::pageable_dyn!(Shape);
///
/// #[derive(Serialize, Deserialize, get_size2::GetSize)]
/// struct Square {
///     side: f64,
/// }
///
/// #[typetag::serde]
/// impl Shape for Square {
///     fn area(&self) -> f64 {
///         self.side * self.side
///     }
///     fn scaled(&self, k: f64) -> Box<dyn Shape> {
///         Box::new(Square { side: self.side * k })
///     }
/// }
///
/// fn main() -> spillway::Result<()> {
///     let pool = Pool::builder().budget(16 << 20).build()?;
///     let small: Paged<dyn Shape> =
///         pool.insert_boxed(Box::new(Square { side: 2.0 }) as Box<dyn Shape>)?;
///     assert_eq!(small.get()?.area(), 4.0);
///     // An update: a new handle, the old one unchanged.
///     let big = pool.update_with(&small, |s| s.scaled(3.0))?;
///     // Both paged out, and read back through the trait.
///     pool.shrink_to(0)?;
///     assert!(!small.is_resident() && !big.is_resident());
///     assert_eq!(big.get()?.area(), 36.0);
///     assert_eq!(small.get()?.area(), 4.0);
///     Ok(())
/// }
/// ```
///
/// The implementation does not overlap the blanket one for sized types (a trait object is never
/// `Sized`), and the orphan rule allows it because the trait object type is local to the crate
/// that declares the trait.
///
/// `pageable_dyn!(Shape, "shape")` gives the trait object a stable name for the type tag of its
/// stored values (see "Changing a stored type" in the crate docs); without one, the tag uses
/// the Rust path of `dyn Shape`, which moving the trait changes.
///
/// typetag names each implementation by its type name, so two types of one name in different
/// modules would collide: give them distinct names with `#[typetag::serde(name = "...")]`
/// (typetag refuses two implementations registered under one name when it first deserializes).
#[macro_export]
macro_rules! pageable_dyn {
    ($trait:path) => {
        $crate::pageable_dyn!(@impl $trait, ::std::option::Option::None);
    };
    ($trait:path, $name:expr) => {
        $crate::pageable_dyn!(@impl $trait, ::std::option::Option::Some($name));
    };
    (@impl $trait:path, $name:expr) => {
        impl $crate::Pageable for dyn $trait {
            fn encode_value(
                &self,
                out: &mut ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<(), $crate::__postcard::Error> {
                $crate::__encode_into(self, out)
            }
            fn decode_value(
                bytes: &[u8],
            ) -> ::std::result::Result<::std::sync::Arc<Self>, $crate::__postcard::Error> {
                let b: ::std::boxed::Box<dyn $trait> = $crate::__postcard::from_bytes(bytes)?;
                ::std::result::Result::Ok(::std::sync::Arc::from(b))
            }
            fn deep_size(&self) -> usize {
                $crate::DeepSize::deep_size(self)
            }
            fn stable_name() -> ::std::option::Option<&'static str> {
                $name
            }
        }
    };
}
