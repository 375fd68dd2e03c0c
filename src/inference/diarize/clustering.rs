//! Clustering: local turns' embeddings grouped into global speakers by agglomerative
//! hierarchical clustering (kodama, a port of fastcluster) with average linkage on cosine
//! distance, cut at a distance threshold; clusters with too little speech to be a speaker join
//! the nearest large one; then every embedding goes to its nearest centroid (cosine).
//!
//! After pyannote-audio's `AgglomerativeClustering` (`pipelines/clustering.py`: flat clusters
//! at a threshold, small clusters reassigned to the nearest large one, every embedding then
//! assigned to its nearest centroid), including its handling of a forced number of speakers:
//! when the threshold's count falls outside `[min_speakers, max_speakers]`, the dendrogram is
//! cut at the nearest allowed count. Average linkage (UPGMA) on cosine distance, the usual
//! choice for x-vector AHC (Kaldi's and 3D-Speaker's recipes), in place of pyannote's centroid
//! linkage: with one embedding per turn, embeddings of overlapped or mixed speech lie between
//! speakers, and centroid linkage chained two voices that talked over each other into one
//! (tests/diarization_robustness.rs) where average linkage kept them apart.

use super::embeddings::{normalize, EMBEDDING_SIZE};
use crate::inference::InferenceError;
use kodama::{linkage, Method};

/// How embeddings are clustered.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusteringOptions {
    /// Average-linkage merge threshold (cosine distance, 1 − cosine similarity).
    pub threshold: f64,
    /// Clusters whose embeddings' weights (seconds of speech) add up to less are not speakers.
    pub min_speaker_weight: f64,
    pub min_speakers: Option<usize>,
    pub max_speakers: Option<usize>,
    /// Cluster at most this many (evenly spaced) embeddings; assign the rest.
    pub max_embeddings: usize,
}

/// Global speakers: a centroid each, and each embedding's speaker.
#[derive(Debug, Clone, PartialEq)]
pub struct Clusters {
    /// `[speakers][EMBEDDING_SIZE]`, L2-normalised.
    pub centroids: Vec<Vec<f32>>,
    /// For each input embedding, the index of its centroid.
    pub assignment: Vec<usize>,
}

/// Clusters `embeddings` (each L2-normalised, `EMBEDDING_SIZE` long), each with a weight (the
/// seconds of speech it stands for). Only those whose index is in `train` shape the clusters
/// (all of them when `train` is empty); all are assigned.
pub fn cluster(
    embeddings: &[&[f32]],
    weights: &[f64],
    train: &[usize],
    opts: &ClusteringOptions,
) -> Result<Clusters, InferenceError> {
    if weights.len() != embeddings.len() {
        return Err(InferenceError::Clustering(format!(
            "{} weights for {} embeddings",
            weights.len(),
            embeddings.len()
        )));
    }
    if let Some(bad) = embeddings.iter().position(|e| e.len() != EMBEDDING_SIZE) {
        return Err(InferenceError::Clustering(format!(
            "embedding {bad} has {} values, expected {EMBEDDING_SIZE}",
            embeddings[bad].len()
        )));
    }
    if embeddings.is_empty() {
        return Ok(Clusters {
            centroids: Vec::new(),
            assignment: Vec::new(),
        });
    }
    let mut train: Vec<usize> = if train.is_empty() {
        (0..embeddings.len()).collect()
    } else {
        train.to_vec()
    };
    if train.len() > opts.max_embeddings.max(2) {
        let keep = opts.max_embeddings.max(2);
        train = (0..keep).map(|i| train[i * train.len() / keep]).collect();
    }
    let points: Vec<&[f32]> = train.iter().map(|&i| embeddings[i]).collect();
    let point_weights: Vec<f64> = train.iter().map(|&i| weights[i]).collect();
    let (labels, all_speakers) = flat_clusters(&points, &point_weights, opts);
    let centroids = cluster_centroids(&points, &point_weights, &labels, opts, all_speakers);
    let assignment = embeddings.iter().map(|e| nearest(e, &centroids)).collect();
    Ok(Clusters {
        centroids,
        assignment,
    })
}

/// A label per point: the dendrogram cut at the threshold, or at the nearest count within the
/// speaker bounds when the threshold's count of large clusters falls outside them (then every
/// cluster is a speaker, whatever its size: the second value says so).
fn flat_clusters(
    points: &[&[f32]],
    weights: &[f64],
    opts: &ClusteringOptions,
) -> (Vec<usize>, bool) {
    let n = points.len();
    if n < 2 {
        return (vec![0; n], false);
    }
    let mut condensed = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            condensed.push(cosine_distance(points[i], points[j]));
        }
    }
    let dendrogram = linkage(&mut condensed, n, Method::Average);
    let steps = dendrogram.steps();
    // Merges applied in order; a cluster is kept whole when no merge inside it (its own or any
    // of its sub-clusters') is above the threshold, as SciPy's `fcluster(criterion="distance")`
    // decides.
    let mut highest = vec![0.0f64; 2 * n - 1];
    let by_threshold = cut(n, steps.len(), |k| {
        let step = &steps[k];
        highest[n + k] = step
            .dissimilarity
            .max(highest[step.cluster1])
            .max(highest[step.cluster2]);
        (
            step.cluster1,
            step.cluster2,
            highest[n + k] <= opts.threshold,
        )
    });
    let large = count_large(&by_threshold, weights, opts.min_speaker_weight);
    if log::log_enabled!(log::Level::Debug) {
        log::debug!(
            "clustering: {n} embeddings, last merges at cosine distance {:?}, {} clusters at {} \
         ({large} with {} s of speech or more; seconds each {:.1?})",
            steps
                .iter()
                .rev()
                .take(4)
                .map(|s| (s.dissimilarity * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            by_threshold.iter().max().map_or(0, |m| m + 1),
            opts.threshold,
            opts.min_speaker_weight,
            cluster_weights(&by_threshold, weights)
        );
    }
    let max = opts.max_speakers.unwrap_or(usize::MAX).clamp(1, n);
    let min = opts.min_speakers.unwrap_or(1).clamp(1, max);
    if (min..=max).contains(&large) {
        return (by_threshold, false);
    }
    // Exactly `wanted` clusters: the first n - wanted merges.
    let wanted = large.clamp(min, max);
    let labels = cut(n, steps.len(), |k| {
        (steps[k].cluster1, steps[k].cluster2, k < n - wanted)
    });
    (labels, true)
}

/// Applies the dendrogram's merges for which `merge(k)` says so (given the step index, it
/// returns the two clusters' labels and whether to merge) and numbers the resulting clusters
/// 0, 1, … in order of their first point.
fn cut(n: usize, steps: usize, mut merge: impl FnMut(usize) -> (usize, usize, bool)) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..n).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    // An observation standing for each cluster label (observations, then one per merge).
    let mut member: Vec<usize> = (0..n).collect();
    for k in 0..steps {
        let (a, b, join) = merge(k);
        let (a, b) = (member[a], member[b]);
        member.push(a);
        if join {
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            parent[rb] = ra;
        }
    }
    let mut numbers = std::collections::HashMap::new();
    (0..n)
        .map(|i| {
            let r = root(&mut parent, i);
            let next = numbers.len();
            *numbers.entry(r).or_insert(next)
        })
        .collect()
}

/// How many clusters weigh at least `min_weight`.
fn count_large(labels: &[usize], weights: &[f64], min_weight: f64) -> usize {
    cluster_weights(labels, weights)
        .iter()
        .filter(|&&w| w >= min_weight)
        .count()
}

fn cluster_weights(labels: &[usize], weights: &[f64]) -> Vec<f64> {
    let mut totals = vec![0.0; labels.iter().max().map_or(0, |m| m + 1)];
    for (&l, &w) in labels.iter().zip(weights) {
        totals[l] += w;
    }
    totals
}

/// Normalised centroids of the large clusters, or of all when `all_speakers` (all points as one
/// when none is large).
fn cluster_centroids(
    points: &[&[f32]],
    weights: &[f64],
    labels: &[usize],
    opts: &ClusteringOptions,
    all_speakers: bool,
) -> Vec<Vec<f32>> {
    let totals = cluster_weights(labels, weights);
    let mut large: Vec<usize> = (0..totals.len())
        .filter(|&l| all_speakers || totals[l] >= opts.min_speaker_weight)
        .collect();
    if large.is_empty() {
        // No cluster is big enough to be a speaker: one speaker.
        let mut centroid = vec![0.0f32; EMBEDDING_SIZE];
        for p in points {
            centroid.iter_mut().zip(p.iter()).for_each(|(c, v)| *c += v);
        }
        normalize(&mut centroid);
        return vec![centroid];
    }
    large.sort_unstable();
    large
        .iter()
        .map(|&label| {
            let mut centroid = vec![0.0f32; EMBEDDING_SIZE];
            for (p, _) in points.iter().zip(labels).filter(|(_, &l)| l == label) {
                centroid.iter_mut().zip(p.iter()).for_each(|(c, v)| *c += v);
            }
            normalize(&mut centroid);
            centroid
        })
        .collect()
}

/// Index of the centroid with the highest cosine similarity to `embedding`.
fn nearest(embedding: &[f32], centroids: &[Vec<f32>]) -> usize {
    centroids
        .iter()
        .map(|c| c.iter().zip(embedding).map(|(a, b)| a * b).sum::<f32>())
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(0, |(i, _)| i)
}

/// 1 − cosine similarity of two unit vectors, in [0, 2].
fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    (1.0 - dot).clamp(0.0, 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A unit vector near axis `axis`, nudged by `jitter` along the next axis.
    fn near(axis: usize, jitter: f32) -> Vec<f32> {
        let mut v = vec![0.0f32; EMBEDDING_SIZE];
        v[axis] = 1.0;
        v[(axis + 1) % EMBEDDING_SIZE] = jitter;
        normalize(&mut v);
        v
    }

    fn options() -> ClusteringOptions {
        ClusteringOptions {
            threshold: 0.4,
            min_speaker_weight: 2.0,
            min_speakers: None,
            max_speakers: None,
            max_embeddings: 3000,
        }
    }

    /// Every point weighs one second.
    fn run(points: &[Vec<f32>], opts: &ClusteringOptions) -> Clusters {
        let refs: Vec<&[f32]> = points.iter().map(Vec::as_slice).collect();
        cluster(&refs, &vec![1.0; refs.len()], &[], opts).unwrap()
    }

    #[test]
    fn average_linkage_merges_at_the_mean_pairwise_distance() {
        // d(a, b) = 1, d(a, c) = 4, d(b, c) = 6: {a, b} meets c at (4 + 6) / 2.
        let mut condensed = vec![1.0f64, 4.0, 6.0];
        let dendrogram = linkage(&mut condensed, 3, Method::Average);
        let last = &dendrogram.steps()[1];
        assert!((last.dissimilarity - 5.0).abs() < 1e-9, "{last:?}");
    }

    #[test]
    fn distinct_voices_become_distinct_speakers() {
        let points: Vec<Vec<f32>> = (0..12)
            .map(|i| near(i % 3, 0.05 * (i / 3) as f32))
            .collect();
        let clusters = run(&points, &options());
        assert_eq!(clusters.centroids.len(), 3);
        for (i, &a) in clusters.assignment.iter().enumerate() {
            assert_eq!(a, clusters.assignment[i % 3], "point {i}");
        }
    }

    #[test]
    fn a_cluster_too_small_joins_the_nearest_speaker() {
        let mut points: Vec<Vec<f32>> = (0..20).map(|i| near(i % 2, 0.01 * i as f32)).collect();
        // One odd embedding (1 s, under the 2 s a speaker needs), closer to speaker 0 than to
        // speaker 1, but past the threshold.
        let mut odd = near(0, 0.0);
        odd[5] = 2.0;
        normalize(&mut odd);
        points.push(odd);
        let clusters = run(&points, &options());
        assert_eq!(clusters.centroids.len(), 2);
        assert_eq!(clusters.assignment[20], clusters.assignment[0]);
    }

    #[test]
    fn speaker_bounds_cut_the_dendrogram_at_an_allowed_count() {
        let points: Vec<Vec<f32>> = (0..12)
            .map(|i| near(i % 3, 0.05 * (i / 3) as f32))
            .collect();
        let at_most_two = ClusteringOptions {
            max_speakers: Some(2),
            ..options()
        };
        assert_eq!(run(&points, &at_most_two).centroids.len(), 2);
        let same: Vec<Vec<f32>> = (0..12).map(|i| near(0, 0.01 * i as f32)).collect();
        let at_least_two = ClusteringOptions {
            min_speakers: Some(2),
            ..options()
        };
        assert_eq!(run(&same, &at_least_two).centroids.len(), 2);
    }

    #[test]
    fn nothing_to_cluster_gives_no_speakers_and_one_embedding_one() {
        assert!(run(&[], &options()).centroids.is_empty());
        let one = run(&[near(4, 0.0)], &options());
        assert_eq!((one.centroids.len(), one.assignment.clone()), (1, vec![0]));
    }
}
