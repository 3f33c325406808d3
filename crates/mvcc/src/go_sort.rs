//! Go 1.16's `sort.Sort` (the unstable introsort etcd v3.5.1 was built with), so that Range results sorted on
//! a target with ties (VERSION, CREATE, MOD, VALUE) come back in exactly etcd's order.

/// Sorts `v` in place with Go 1.16's `sort.Sort`, `less` being the `Interface.Less`.
pub(crate) fn go_sort<T>(v: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    let n = v.len();
    let mut depth = 0usize;
    let mut i = n;
    while i > 0 {
        depth += 1;
        i >>= 1;
    }
    quick_sort(v, 0, n, depth * 2, less);
}

fn lt<T>(v: &[T], i: usize, j: usize, less: &impl Fn(&T, &T) -> bool) -> bool {
    less(&v[i], &v[j])
}

fn insertion_sort<T>(v: &mut [T], a: usize, b: usize, less: &impl Fn(&T, &T) -> bool) {
    for i in a + 1..b {
        let mut j = i;
        while j > a && lt(v, j, j - 1, less) {
            v.swap(j, j - 1);
            j -= 1;
        }
    }
}

fn sift_down<T>(v: &mut [T], lo: usize, hi: usize, first: usize, less: &impl Fn(&T, &T) -> bool) {
    let mut root = lo;
    loop {
        let mut child = 2 * root + 1;
        if child >= hi {
            return;
        }
        if child + 1 < hi && lt(v, first + child, first + child + 1, less) {
            child += 1;
        }
        if !lt(v, first + root, first + child, less) {
            return;
        }
        v.swap(first + root, first + child);
        root = child;
    }
}

fn heap_sort<T>(v: &mut [T], a: usize, b: usize, less: &impl Fn(&T, &T) -> bool) {
    let first = a;
    let hi = b - a;
    for i in (0..=(hi.saturating_sub(1)) / 2).rev() {
        if hi > 0 {
            sift_down(v, i, hi, first, less);
        }
    }
    for i in (0..hi).rev() {
        v.swap(first, first + i);
        sift_down(v, 0, i, first, less);
    }
}

fn median_of_three<T>(v: &mut [T], m1: usize, m0: usize, m2: usize, less: &impl Fn(&T, &T) -> bool) {
    if lt(v, m1, m0, less) {
        v.swap(m1, m0);
    }
    if lt(v, m2, m1, less) {
        v.swap(m2, m1);
        if lt(v, m1, m0, less) {
            v.swap(m1, m0);
        }
    }
}

fn do_pivot<T>(v: &mut [T], lo: usize, hi: usize, less: &impl Fn(&T, &T) -> bool) -> (usize, usize) {
    let m = (lo + hi) / 2;
    if hi - lo > 40 {
        let s = (hi - lo) / 8;
        median_of_three(v, lo, lo + s, lo + 2 * s, less);
        median_of_three(v, m, m - s, m + s, less);
        median_of_three(v, hi - 1, hi - 1 - s, hi - 1 - 2 * s, less);
    }
    median_of_three(v, lo, m, hi - 1, less);
    let pivot = lo;
    let (mut a, mut c) = (lo + 1, hi - 1);
    while a < c && lt(v, a, pivot, less) {
        a += 1;
    }
    let mut b = a;
    loop {
        while b < c && !lt(v, pivot, b, less) {
            b += 1;
        }
        while b < c && lt(v, pivot, c - 1, less) {
            c -= 1;
        }
        if b >= c {
            break;
        }
        v.swap(b, c - 1);
        b += 1;
        c -= 1;
    }
    let mut protect = hi - c < 5;
    if !protect && hi - c < (hi - lo) / 4 {
        let mut dups = 0;
        if !lt(v, pivot, hi - 1, less) {
            v.swap(c, hi - 1);
            c += 1;
            dups += 1;
        }
        if !lt(v, b - 1, pivot, less) {
            b -= 1;
            dups += 1;
        }
        if !lt(v, m, pivot, less) {
            v.swap(m, b - 1);
            b -= 1;
            dups += 1;
        }
        protect = dups > 1;
    }
    if protect {
        loop {
            while a < b && !lt(v, b - 1, pivot, less) {
                b -= 1;
            }
            while a < b && lt(v, a, pivot, less) {
                a += 1;
            }
            if a >= b {
                break;
            }
            v.swap(a, b - 1);
            a += 1;
            b -= 1;
        }
    }
    v.swap(pivot, b - 1);
    (b - 1, c)
}

fn quick_sort<T>(v: &mut [T], mut a: usize, mut b: usize, mut max_depth: usize, less: &impl Fn(&T, &T) -> bool) {
    while b - a > 12 {
        if max_depth == 0 {
            heap_sort(v, a, b, less);
            return;
        }
        max_depth -= 1;
        let (mlo, mhi) = do_pivot(v, a, b, less);
        if mlo - a < b - mhi {
            quick_sort(v, a, mlo, max_depth, less);
            a = mhi;
        } else {
            quick_sort(v, mhi, b, max_depth, less);
            b = mlo;
        }
    }
    if b - a > 1 {
        for i in a + 6..b {
            if lt(v, i, i - 6, less) {
                v.swap(i, i - 6);
            }
        }
        insertion_sort(v, a, b, less);
    }
}

#[cfg(test)]
mod tests {
    use super::go_sort;

    #[test]
    fn sorts_and_matches_go_tie_order() {
        // etcd 3.5.1: nine keys s1..s9, s3 at version 2, `get s --prefix --sort-by=VERSION --order=ASCEND`
        let mut v: Vec<(u8, i64)> = (1..=9).map(|i| (i, if i == 3 { 2 } else { 1 })).collect();
        go_sort(&mut v, &|a: &(u8, i64), b: &(u8, i64)| a.1 < b.1);
        assert_eq!(v.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 2, 9, 4, 5, 6, 7, 8, 3]);
        let mut v: Vec<(u8, i64)> = (1..=9).map(|i| (i, if i == 3 { 2 } else { 1 })).collect();
        go_sort(&mut v, &|a: &(u8, i64), b: &(u8, i64)| b.1 < a.1);
        assert_eq!(v.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 1, 2, 4, 5, 6, 7, 8, 9]);
        for n in [0usize, 1, 2, 13, 41, 100, 1000] {
            let mut w: Vec<u64> = (0..n as u64).map(|i| (i * 7919 + 13) % 101).collect();
            go_sort(&mut w, &|a: &u64, b: &u64| a < b);
            assert!(w.windows(2).all(|p| p[0] <= p[1]), "n={n}");
        }
    }
}
