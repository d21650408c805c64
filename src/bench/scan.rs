//! The byte scan behind the benchmark's privacy check (and the privacy
//! tests'): which of many values occur anywhere in a file's bytes, in one
//! pass over the file.

use std::collections::{BTreeSet, HashMap};

/// The positions in `needles` of those (each of two bytes or more; shorter
/// ones are skipped) that occur in `bytes`, in order. Only where a
/// needle's first two bytes occur are the needles of that start compared,
/// so the cost is one pass over `bytes` whatever the number of needles.
pub fn found(bytes: &[u8], needles: &[String]) -> Vec<usize> {
    let pair = |b: &[u8]| usize::from(b[0]) << 8 | usize::from(b[1]);
    let mut starts = vec![false; 1 << 16];
    let mut by_bytes: HashMap<&[u8], usize> = HashMap::new();
    let mut lengths = BTreeSet::new();
    for (i, n) in needles.iter().enumerate().filter(|(_, n)| n.len() >= 2) {
        starts[pair(n.as_bytes())] = true;
        by_bytes.insert(n.as_bytes(), i);
        lengths.insert(n.len());
    }
    let mut found = BTreeSet::new();
    for at in 0..bytes.len().saturating_sub(1) {
        if !starts[pair(&bytes[at..])] {
            continue;
        }
        for len in &lengths {
            if let Some(i) = bytes.get(at..at + len).and_then(|w| by_bytes.get(w)) {
                found.insert(*i);
            }
        }
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::found;

    fn count_found(bytes: &[u8], needles: &[String]) -> usize {
        found(bytes, needles).len()
    }

    #[test]
    fn counts_each_needle_found_once_wherever_it_is() {
        let needles: Vec<String> = ["u-0001", "u-0002", "Message 3 of ab", "x"]
            .map(String::from)
            .to_vec();
        let bytes = b"..u-0001..u-0001..Message 3 of ab";
        assert_eq!(count_found(bytes, &needles), 2);
        assert_eq!(count_found(b"u-000", &needles), 0);
        assert_eq!(count_found(b"u-0002", &needles), 1);
        assert_eq!(count_found(b"", &needles), 0);
    }
}
