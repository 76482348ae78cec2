//! Stable sorts for the places that sort a few hundred items at most (API
//! answers, plans, listings). `slice::sort_by` makes a full copy of the sort
//! (some 5 KB of machine code) for every closure it is called with; these sort
//! positions with one comparison through `&dyn Fn`, so the whole program holds
//! a single copy, then move the items into place. The console's per-frame
//! sorts of every row (`tui::rows`) keep `slice::sort_by`, which is faster.

use std::cmp::Ordering;

/// Sorts `v` by `cmp`, stable (equal items keep their order), like `slice::sort_by`.
pub fn sort_by<T>(v: &mut [T], cmp: impl Fn(&T, &T) -> Ordering) {
    let order = {
        let items: &[T] = v;
        positions(items.len(), &|a, b| match (items.get(a), items.get(b)) {
            (Some(x), Some(y)) => cmp(x, y),
            _ => Ordering::Equal,
        })
    };
    permute(v, order);
}

/// Sorts `v` by the key `f` gives, stable, like `slice::sort_by_key`.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], f: impl Fn(&T) -> K) {
    sort_by(v, |a, b| f(a).cmp(&f(b)));
}

/// The positions `0..n` in the order `cmp` gives them, equal ones in their order.
#[inline(never)]
fn positions(n: usize, cmp: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| cmp(*a, *b));
    order
}

/// Moves the item at `order[k]` to position `k`, cycle by cycle.
fn permute<T>(v: &mut [T], mut order: Vec<usize>) {
    for start in 0..order.len() {
        let mut at = start;
        while let Some(from) = order.get_mut(at).map(|f| std::mem::replace(f, at)) {
            // The cycle is closed (or `start` was already in place): the item
            // that belongs here was carried along.
            if from == start || from == at {
                break;
            }
            v.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_like_the_standard_stable_sort() {
        let mut seed = 7u64;
        for n in [0usize, 1, 2, 3, 5, 17, 64, 300] {
            let mut v: Vec<(u8, usize)> = (0..n)
                .map(|i| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (((seed >> 33) % 7) as u8, i)
                })
                .collect();
            let mut expected = v.clone();
            expected.sort_by_key(|x| std::cmp::Reverse(x.0));
            sort_by(&mut v, |a, b| b.0.cmp(&a.0));
            assert_eq!(v, expected, "n = {n}");
            let mut by_key = expected.clone();
            by_key.reverse();
            let mut std_key = by_key.clone();
            std_key.sort_by_key(|x| x.0);
            sort_by_key(&mut by_key, |x| x.0);
            assert_eq!(by_key, std_key, "n = {n}");
        }
    }

    #[test]
    fn moves_owned_items_without_losing_any() {
        let mut v: Vec<String> = ["d", "b", "e", "a", "c", "b"].iter().map(|s| s.to_string()).collect();
        sort_by(&mut v, |a, b| a.cmp(b));
        assert_eq!(v, ["a", "b", "b", "c", "d", "e"]);
    }
}
