//! Work on several cores, for large inputs only: how many cores there are, how to cut
//! a list into runs of equal work, and how to run one closure over each run. Every
//! stage that uses it gives the same result on one thread as on several (each has a
//! test that says so).

/// How many threads a large input is worth: the cores this process may use, asked once
/// (the answer takes system calls and cgroup files to find).
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// `items` cut into at most `parts` consecutive runs of about equal `weight`, in order.
pub(crate) fn balanced<T>(items: &[T], parts: usize, weight: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let parts = parts.max(1);
    let total: usize = items.iter().map(&weight).sum();
    let share = total.div_ceil(parts).max(1);
    let mut runs = Vec::with_capacity(parts);
    let (mut start, mut so_far) = (0, 0);
    for (index, item) in items.iter().enumerate() {
        so_far += weight(item);
        if so_far >= share && runs.len() + 1 < parts {
            runs.push(&items[start..=index]);
            (start, so_far) = (index + 1, 0);
        }
    }
    if start < items.len() || runs.is_empty() {
        runs.push(&items[start..]);
    }
    runs
}

/// `work` over each of `inputs`, the first on this thread and each other on a thread of
/// its own; the results in the order of `inputs`. A panic on another thread is a bug,
/// passed on as if it had happened on this one.
pub(crate) fn map<I: Sync, R: Send>(inputs: &[I], work: impl Fn(&I) -> R + Sync) -> Vec<R> {
    let Some((first, others)) = inputs.split_first() else { return Vec::new() };
    let work = &work;
    std::thread::scope(|scope| {
        let others: Vec<_> = others.iter().map(|input| scope.spawn(move || work(input))).collect();
        let mut results = Vec::with_capacity(inputs.len());
        results.push(work(first));
        for other in others {
            results.push(other.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        }
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_consecutive_cover_everything_and_share_the_weight() {
        let items: Vec<usize> = (0..50).map(|index| index % 7).collect();
        let total: usize = items.iter().sum();
        for parts in 1..=items.len() + 3 {
            let runs = balanced(&items, parts, |&weight| weight);
            assert!(!runs.is_empty() && runs.len() <= parts);
            let joined: Vec<usize> = runs.iter().flat_map(|run| run.iter().copied()).collect();
            assert_eq!(joined, items);
            for run in &runs[..runs.len() - 1] {
                assert!(run.iter().sum::<usize>() < total.div_ceil(parts) + 7, "{parts} parts");
            }
        }
        assert_eq!(balanced(&[] as &[usize], 3, |&weight| weight), vec![&[] as &[usize]]);
    }

    #[test]
    fn results_come_in_the_order_of_the_inputs() {
        let inputs: Vec<u64> = (0..9).collect();
        assert_eq!(map(&inputs, |&n| n * n), inputs.iter().map(|n| n * n).collect::<Vec<_>>());
        assert!(map(&[] as &[u64], |&n| n).is_empty());
    }
}
