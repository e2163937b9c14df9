//! Trait objects in a pool: `Paged<dyn Shape>` through typetag and `pageable_dyn!`, with two
//! implementations of one struct name in different modules told apart by their typetag names,
//! paged out and read back through the trait, also inside other values, and updated (a new
//! value made from the old one through the trait, with `Pool::update_with`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spillway::{DeepSize, MemStore, Paged, Pool};

#[typetag::serde]
trait Shape: DeepSize + Send + Sync {
    fn area(&self) -> f64;
    fn describe(&self) -> String;
}

spillway::pageable_dyn!(Shape);

mod plane {
    use super::*;

    #[derive(Serialize, Deserialize, get_size2::GetSize)]
    pub struct Square {
        pub side: f64,
        pub label: String,
    }

    #[typetag::serde(name = "plane::Square")]
    impl Shape for Square {
        fn area(&self) -> f64 {
            self.side * self.side
        }
        fn describe(&self) -> String {
            format!("plane square {}", self.label)
        }
    }
}

mod grid {
    use super::*;

    /// Same name as `plane::Square`, another type: a square of `cells` unit cells a side.
    #[derive(Serialize, Deserialize, get_size2::GetSize)]
    pub struct Square {
        pub cells: u32,
    }

    #[typetag::serde(name = "grid::Square")]
    impl Shape for Square {
        fn area(&self) -> f64 {
            f64::from(self.cells * self.cells)
        }
        fn describe(&self) -> String {
            format!("grid square of {} cells", self.cells)
        }
    }
}

/// A shape made of other paged shapes.
#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Group {
    parts: Vec<Paged<dyn Shape>>,
}

#[typetag::serde(name = "Group")]
impl Shape for Group {
    fn area(&self) -> f64 {
        self.parts
            .iter()
            .map(|p| p.get().expect("get a part").area())
            .sum()
    }
    fn describe(&self) -> String {
        format!("group of {}", self.parts.len())
    }
}

fn pool() -> Pool {
    Pool::builder()
        .budget(1 << 20)
        .store(Arc::new(MemStore::new()))
        .build()
        .expect("a pool")
}

#[test]
fn trait_objects_page_out_and_back_through_the_trait() {
    let pool = pool();
    let a: Paged<dyn Shape> = pool
        .insert_boxed(Box::new(plane::Square {
            side: 2.0,
            label: "a".into(),
        }) as Box<dyn Shape>)
        .expect("insert a");
    let b: Paged<dyn Shape> = pool
        .insert_boxed(Box::new(grid::Square { cells: 3 }) as Box<dyn Shape>)
        .expect("insert b");
    let (ka, kb) = (a.key().expect("key"), b.key().expect("key"));
    assert_ne!(ka, kb);
    pool.shrink_to(0).expect("shrink_to");
    assert!(!a.is_resident() && !b.is_resident());
    assert_eq!(a.get().expect("get").area(), 4.0);
    assert_eq!(a.get().expect("get").describe(), "plane square a");
    assert_eq!(b.get().expect("get").area(), 9.0);
    assert_eq!(b.get().expect("get").describe(), "grid square of 3 cells");
    // Through a fresh handle, by key.
    drop((a, b));
    let a: Paged<dyn Shape> = pool.load(ka).expect("load");
    let b: Paged<dyn Shape> = pool.load(kb).expect("load");
    assert_eq!(a.get().expect("get").describe(), "plane square a");
    assert_eq!(b.get().expect("get").describe(), "grid square of 3 cells");
}

#[test]
fn trait_objects_inside_other_values_round_trip() {
    let pool = pool();
    let parts: Vec<Paged<dyn Shape>> = (1..=4u32)
        .map(|i| {
            let shape: Box<dyn Shape> = if i % 2 == 0 {
                Box::new(grid::Square { cells: i })
            } else {
                Box::new(plane::Square {
                    side: f64::from(i),
                    label: format!("p{i}"),
                })
            };
            pool.insert_boxed(shape).expect("insert a part")
        })
        .collect();
    let group: Paged<dyn Shape> = pool
        .insert_boxed(Box::new(Group { parts }) as Box<dyn Shape>)
        .expect("insert the group");
    let key = pool.persist(&group).expect("persist");
    drop(group);
    pool.shrink_to(0).expect("shrink_to");
    let group: Paged<dyn Shape> = pool.load(key).expect("load");
    let g = group.get().expect("get");
    assert_eq!(g.describe(), "group of 4");
    assert_eq!(g.area(), 1.0 + 4.0 + 9.0 + 16.0);
}

/// A shape that knows how to make a larger copy of itself: how a trait object is updated.
#[typetag::serde]
trait Scalable: DeepSize + Send + Sync {
    fn side(&self) -> u32;
    fn grown(&self, by: u32) -> Box<dyn Scalable>;
}

spillway::pageable_dyn!(Scalable);

#[derive(Serialize, Deserialize, get_size2::GetSize)]
struct Tile {
    side: u32,
    /// Shared between a tile and its grown copies, stored once.
    texture: Paged<Vec<u8>>,
}

#[typetag::serde(name = "Tile")]
impl Scalable for Tile {
    fn side(&self) -> u32 {
        self.side
    }
    fn grown(&self, by: u32) -> Box<dyn Scalable> {
        Box::new(Tile {
            side: self.side + by,
            texture: self.texture.clone(),
        })
    }
}

#[test]
fn trait_objects_update_through_update_with() {
    let pool = pool();
    let texture = pool.insert(vec![9u8; 10_000]).expect("insert the texture");
    let tile: Paged<dyn Scalable> = pool
        .insert_boxed(Box::new(Tile { side: 1, texture }) as Box<dyn Scalable>)
        .expect("insert a tile");
    let key = tile.key().expect("key");
    let written = pool.stats().objects_written;
    assert_eq!(written, 2, "the tile and its texture");
    // Updated while paged out: the old value is paged in for the closure.
    pool.shrink_to(0).expect("shrink_to");
    assert!(!tile.is_resident());
    let grown = pool
        .update_with(&tile, |t| t.grown(2))
        .expect("update a trait object");
    assert_eq!(grown.get().expect("get").side(), 3);
    // The old handle is unchanged: values are immutable.
    assert_eq!(tile.get().expect("get").side(), 1);
    assert_eq!(tile.key().expect("key"), key);
    // The new value is stored on its own, its unchanged texture not again.
    let grown_key = grown.key().expect("key");
    assert_ne!(grown_key, key);
    assert_eq!(pool.stats().objects_written, written + 1);
    pool.shrink_to(0).expect("shrink_to");
    drop(grown);
    let again: Paged<dyn Scalable> = pool.load(grown_key).expect("load");
    assert_eq!(again.get().expect("get").side(), 3);
}

#[test]
fn update_with_builds_values_that_are_not_clone() {
    /// Not `Clone`: `Pool::update` does not apply.
    #[derive(Serialize, Deserialize, get_size2::GetSize)]
    struct Counter {
        n: u64,
    }
    let pool = pool();
    let a = pool.insert(Counter { n: 1 }).expect("insert");
    let b = pool
        .update_with(&a, |c| Box::new(Counter { n: c.n + 1 }))
        .expect("update");
    assert_eq!((a.get().expect("get").n, b.get().expect("get").n), (1, 2));
}
