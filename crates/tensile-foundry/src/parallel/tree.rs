//! The order of every sum in a data-parallel step, fixed whatever the world size.
//!
//! A step's micro-batches (units) are the leaves of one binary tree: a node over `lo..hi`
//! with two or more units has the children `lo..mid` and `mid..hi`, `mid = lo + (hi − lo)/2`.
//! One process sums the whole tree ([`sum`]). With W ranks, the tree is cut at depth
//! `d = ⌈log₂ W⌉` into `2^d` nodes ([`nodes`]), each rank sums the subtrees of the nodes it
//! owns ([`owned`]), and every rank combines the gathered node sums up the same tree
//! ([`combine`]). Floating-point addition is not associative, but here every addition has the
//! same two operands as in one process, so the result is the same to the bit.

use std::ops::Range;

/// The depth at which the tree is cut for `world` ranks: `⌈log₂ world⌉`.
pub fn depth(world: usize) -> u32 {
    world.max(1).next_power_of_two().trailing_zeros()
}

/// The `2^depth` nodes at `depth` of the tree over `0..units`, left to right; nodes below a
/// single unit are empty (their parent is that unit).
pub fn nodes(units: usize, depth: u32) -> Vec<Range<usize>> {
    // A level of one node, the root: a vector holding one range, not the range's numbers.
    #[allow(clippy::single_range_in_vec_init)]
    let mut level = vec![0..units];
    for _ in 0..depth {
        level = level
            .into_iter()
            .flat_map(|r| {
                let mid = r.start + r.len() / 2;
                [r.start..mid, mid..r.end]
            })
            .collect();
    }
    level
}

/// The node indices (of the `2^depth(world)` nodes) that `rank` sums: a contiguous share, one
/// or two nodes each.
pub fn owned(rank: usize, world: usize) -> Range<usize> {
    let count = 1usize << depth(world);
    let world = world.max(1);
    rank * count / world..(rank + 1) * count / world
}

/// The most nodes one rank owns: the slots every rank sends in an all-gather.
pub fn slots(world: usize) -> usize {
    (1usize << depth(world)).div_ceil(world.max(1))
}

/// The tree's sum of `leaf(i)` over `range`, none when it is empty.
pub fn sum<T, E>(range: Range<usize>, leaf: &mut impl FnMut(usize) -> Result<T, E>, add: &mut impl FnMut(T, T) -> Result<T, E>) -> Result<Option<T>, E> {
    match range.len() {
        0 => Ok(None),
        1 => leaf(range.start).map(Some),
        n => {
            let mid = range.start + n / 2;
            let left = sum(range.start..mid, leaf, add)?;
            let right = sum(mid..range.end, leaf, add)?;
            join(left, right, add)
        }
    }
}

/// The node sums of one level (a power of two of them, in order) combined up the tree.
pub fn combine<T, E>(mut level: Vec<Option<T>>, add: &mut impl FnMut(T, T) -> Result<T, E>) -> Result<Option<T>, E> {
    while level.len() > 1 {
        let mut up = Vec::with_capacity(level.len() / 2);
        let mut it = level.into_iter();
        while let (Some(a), b) = (it.next(), it.next()) {
            up.push(join(a, b.flatten(), add)?);
        }
        level = up;
    }
    Ok(level.into_iter().next().flatten())
}

fn join<T, E>(a: Option<T>, b: Option<T>, add: &mut impl FnMut(T, T) -> Result<T, E>) -> Result<Option<T>, E> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(add(a, b)?),
        (a, b) => a.or(b),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A sum that records its own parenthesisation: equal strings mean the same additions of
    /// the same operands in the same order, hence the same floating-point result.
    fn shape(range: Range<usize>) -> Option<String> {
        sum::<String, ()>(range, &mut |i| Ok(i.to_string()), &mut |a, b| Ok(format!("({a}+{b})"))).unwrap()
    }

    #[test]
    fn the_tree_halves_with_the_smaller_half_first() {
        assert_eq!(shape(0..5).unwrap(), "((0+1)+(2+(3+4)))");
        assert_eq!(nodes(5, 2), vec![0..1, 1..2, 2..3, 3..5]);
        assert_eq!(nodes(1, 2), vec![0..0, 0..0, 0..0, 0..1]);
        assert_eq!((depth(1), depth(2), depth(3), depth(4), depth(5)), (0, 1, 2, 2, 3));
        assert_eq!((owned(0, 3), owned(1, 3), owned(2, 3), slots(3)), (0..1, 1..2, 2..4, 2));
    }

    proptest! {
        #[test]
        fn every_world_size_adds_the_same_operands_in_the_same_order(units in 0usize..40, world in 1usize..12) {
            let d = depth(world);
            let level = nodes(units, d);
            prop_assert_eq!(level.len(), 1 << d);
            // Every node belongs to exactly one rank, and every unit to exactly one node.
            let mut owners = vec![0; level.len()];
            for r in 0..world {
                prop_assert!(owned(r, world).len() <= slots(world));
                for n in owned(r, world) {
                    owners[n] += 1;
                }
            }
            prop_assert!(owners.iter().all(|&k| k == 1));
            let units_seen: Vec<usize> = level.iter().flat_map(|r| r.clone()).collect();
            prop_assert_eq!(units_seen, (0..units).collect::<Vec<_>>());
            let split = combine::<String, ()>(level.into_iter().map(shape).collect(), &mut |a, b| Ok(format!("({a}+{b})"))).unwrap();
            prop_assert_eq!(split, shape(0..units));
        }
    }
}
