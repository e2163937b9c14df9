//! Trait objects in a pool: `Paged<dyn Shape>` through typetag and `pageable_dyn!`, with two
//! implementations of one struct name in different modules told apart by their typetag names,
//! paged out and read back through the trait, also inside other values.

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
