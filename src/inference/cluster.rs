//! Speaker clustering, top down: the windows start as one group, and a group is split in two
//! while some group's best two-way split looks like two voices rather than two halves of one
//! (halves' centroids less alike than one voice's, a silhouette that says apart, each half big
//! enough to be a speaker), within optional bounds on the count. Each two-way split is spectral
//! (recursive normalised cut) on the cosine affinity of all windows refined as in Google's
//! spectral clustering recipe (ICASSP 2018 / Turn-to-Diarize: crop the diagonal, keep each row's
//! strongest affinities, symmetrise, diffuse, normalise rows), with k-means (linfa) on the two
//! leading eigenvectors of the group's part of it.
//!
//! Why not the recipe's eigengap for the count: on pairs of espeak-ng voices it split one voice
//! into four to seven clusters on some runs (one CI run failed so), and joining clusters by
//! centroid cosine could not undo it reliably; choosing the count by the best silhouette instead
//! joined the two closest of three voices. On 5 runs of 12 espeak-ng conversations over fresh
//! random noise (2- and 3-voice round robins, all 6 voice pairs, 4 single voices) this found
//! every count right, and 4 of 4 voices in the 10-minute bench (DER 0.027).

use super::InferenceError;
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;
use tch::{Device, Kind, Tensor};

/// Upper bound on the number of speakers when the caller sets none.
pub const DEFAULT_MAX_SPEAKERS: usize = 8;
/// Below this many windows the eigen-structure means little: split on the embeddings themselves.
const MIN_SPECTRAL_WINDOWS: usize = 6;
/// A group of fewer windows is not split unless more speakers are asked for: the centroids and
/// silhouettes of a few windows' halves are noise (5 windows of one voice scored 0.90 and 0.22).
const MIN_SPLIT_WINDOWS: usize = 12;
/// Nor is a group split into a part this small (about 4 s of speech at the default 0.75 s
/// step), as pyannote's clustering keeps a minimum cluster size: one odd utterance of a voice
/// (4 windows of an espeak-ng voice scored silhouette 0.24) is not a speaker of its own.
const MIN_SPEAKER_WINDOWS: usize = 6;
/// Each window keeps at least this many of its strongest affinities when the affinity is pruned.
const MIN_NEIGHBOURS: i64 = 2;

/// How the windows are clustered.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOptions {
    /// At least this many speakers (when there are that many windows).
    pub min_speakers: Option<usize>,
    /// At most this many speakers (DEFAULT_MAX_SPEAKERS when unset).
    pub max_speakers: Option<usize>,
    /// Row-wise thresholding keeps the affinities at or above this percentile of each row
    /// (others are scaled by 0.01).
    pub p_percentile: f64,
    /// A group is one voice when its best split into two leaves centroids at least this similar
    /// (cosine). On espeak-ng voices one voice's halves gave 0.89–0.97 (higher on long
    /// recordings), two different voices 0.91–0.93 for the closest pair and 0.62–0.82 otherwise,
    /// so this alone cannot decide: it only rules out splitting the clearly alike.
    pub single_speaker_centroid_cosine: f64,
    /// …or when that split's mean silhouette (cosine distance, within the group) is below this.
    /// Over 60 random-noise espeak-ng conversations and a 10-minute four-voice one, the halves
    /// of one voice (centroid cosine under 0.94, each half at least MIN_SPEAKER_WINDOWS) scored
    /// at most 0.223; two voices scored at least 0.245.
    pub min_split_silhouette: f64,
    /// Spectral clustering runs on at most this many windows (landmarks beyond it).
    pub max_spectral_windows: usize,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            min_speakers: None,
            max_speakers: None,
            p_percentile: 0.9,
            single_speaker_centroid_cosine: 0.94,
            min_split_silhouette: 0.235,
            max_spectral_windows: 1500,
        }
    }
}

/// One speaker index per row of `embeddings` (`[n, d]`, L2-normalised), numbered from 0.
///
/// Past `max_spectral_windows` windows (an affinity of n² and an O(n³) eigen-decomposition),
/// evenly spaced landmark windows are clustered and every window joins the speaker whose
/// landmark centroid it is most similar to.
pub fn cluster_embeddings(
    embeddings: &Tensor,
    opts: &ClusterOptions,
) -> Result<Vec<usize>, InferenceError> {
    let embeddings = embeddings.to_device(Device::Cpu).to_kind(Kind::Double);
    let n = usize::try_from(embeddings.size().first().copied().unwrap_or(0)).unwrap_or(0);
    let landmarks = opts.max_spectral_windows.max(MIN_SPECTRAL_WINDOWS);
    if n <= landmarks {
        return cluster_all(&embeddings, opts);
    }
    let picked: Vec<i64> = (0..landmarks).map(|i| (i * n / landmarks) as i64).collect();
    let landmark_embeddings = embeddings.f_index_select(0, &Tensor::from_slice(&picked))?;
    let landmark_labels = cluster_all(&landmark_embeddings, opts)?;
    let speakers = landmark_labels.iter().max().map_or(1, |&m| m + 1);
    let centroids: Vec<Tensor> = (0..speakers)
        .map(|speaker| centroid(&landmark_embeddings, &landmark_labels, speaker))
        .collect::<Result<_, _>>()?;
    let centroids = Tensor::f_stack(&centroids, 0)?;
    let centroids = &centroids / centroids.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    let nearest = embeddings.f_matmul(&centroids.tr())?.argmax(1, false);
    log::debug!("cluster: {n} windows assigned to the centroids of {landmarks} landmarks");
    Ok(Vec::<i64>::try_from(nearest)?
        .into_iter()
        .map(|l| l as usize)
        .collect())
}

/// Divisive clustering of every row (double precision, on the CPU).
fn cluster_all(embeddings: &Tensor, opts: &ClusterOptions) -> Result<Vec<usize>, InferenceError> {
    let n = usize::try_from(embeddings.size().first().copied().unwrap_or(0)).unwrap_or(0);
    let max_speakers = opts
        .max_speakers
        .unwrap_or(DEFAULT_MAX_SPEAKERS)
        .clamp(1, n.max(1));
    let min_speakers = opts.min_speakers.unwrap_or(1).clamp(1, max_speakers);
    let affinity = if n >= MIN_SPECTRAL_WINDOWS {
        let cosine = embeddings.f_matmul(&embeddings.tr())?.clamp(-1.0, 1.0);
        Some(refine_affinity(&cosine, opts.p_percentile)?)
    } else {
        None
    };
    let new_group = |rows: Vec<usize>| -> Result<Group, InferenceError> {
        let split = if rows.len() >= 2 {
            bisect(embeddings, affinity.as_ref(), &rows)?
        } else {
            None
        };
        Ok(Group { rows, split })
    };
    let mut groups = vec![new_group((0..n).collect())?];
    while groups.len() < max_speakers {
        let Some(index) = next_to_split(&groups, opts, groups.len() < min_speakers) else {
            for group in &groups {
                if let Some(split) = &group.split {
                    log::debug!(
                        "cluster: {} windows stay one speaker (halves {} + {}, centroid cosine \
                         {:.3}, silhouette {:.3})",
                        group.rows.len(),
                        split.halves[0].len(),
                        split.halves[1].len(),
                        split.cosine,
                        split.silhouette
                    );
                }
            }
            break;
        };
        let group = groups.swap_remove(index);
        let Split {
            halves,
            cosine,
            silhouette,
        } = group.split.expect("only a group with a split is picked");
        log::debug!(
            "cluster: splitting {} windows into {} + {} (centroid cosine {cosine:.3}, \
             silhouette {silhouette:.3})",
            group.rows.len(),
            halves[0].len(),
            halves[1].len()
        );
        for half in halves {
            groups.push(new_group(half)?);
        }
    }
    let mut labels = vec![0; n];
    for (label, group) in groups.iter().enumerate() {
        for &row in &group.rows {
            labels[row] = label;
        }
    }
    log::debug!("cluster: {n} windows → {} speakers", groups.len());
    Ok(labels)
}

/// The group to split next: of those whose split is two voices (halves less alike than one
/// voice's, and apart by silhouette), the best separated; when more groups are needed anyway,
/// the one whose halves are least alike.
fn next_to_split(groups: &[Group], opts: &ClusterOptions, need_more: bool) -> Option<usize> {
    let splits = groups.iter().enumerate().filter_map(|(index, group)| {
        let split = group.split.as_ref()?;
        Some((index, split, group.rows.len()))
    });
    if need_more {
        return splits
            .min_by(|a, b| a.1.cosine.total_cmp(&b.1.cosine))
            .map(|(index, _, _)| index);
    }
    splits
        .filter(|(_, split, windows)| {
            *windows >= MIN_SPLIT_WINDOWS
                && split
                    .halves
                    .iter()
                    .all(|half| half.len() >= MIN_SPEAKER_WINDOWS)
                && split.cosine < opts.single_speaker_centroid_cosine
                && split.silhouette >= opts.min_split_silhouette
        })
        .max_by(|a, b| a.1.silhouette.total_cmp(&b.1.silhouette))
        .map(|(index, _, _)| index)
}

/// Some of the windows, with their best two-way split when they have one.
struct Group {
    rows: Vec<usize>,
    split: Option<Split>,
}

struct Split {
    halves: [Vec<usize>; 2],
    /// Cosine between the halves' centroids.
    cosine: f64,
    /// Mean silhouette of the split, on cosine distance within the group.
    silhouette: f64,
}

/// The best split of `rows` into two non-empty halves: spectral, on their part of the refined
/// affinity of all windows (recursive two-way normalised cut: refining a small group again
/// prunes it into pieces inside one voice), or k-means on the embeddings when there are too
/// few windows for an eigen-structure.
fn bisect(
    embeddings: &Tensor,
    affinity: Option<&Tensor>,
    rows: &[usize],
) -> Result<Option<Split>, InferenceError> {
    let index = Tensor::from_slice(&rows.iter().map(|&r| r as i64).collect::<Vec<_>>());
    let members = embeddings.f_index_select(0, &index)?;
    let labels = match affinity {
        Some(affinity) if rows.len() >= MIN_SPECTRAL_WINDOWS => {
            let part = affinity
                .f_index_select(0, &index)?
                .f_index_select(1, &index)?;
            // eigh sorts ascending: the two largest are the last two.
            let (_, eigenvectors) = part.f_linalg_eigh("L")?;
            let leading = eigenvectors.narrow(1, rows.len() as i64 - 2, 2);
            kmeans(
                &(&leading / leading.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)),
                2,
            )?
        }
        _ => kmeans(&members, 2)?,
    };
    let mut halves = [Vec::new(), Vec::new()];
    for (&row, &label) in rows.iter().zip(&labels) {
        halves[label.min(1)].push(row);
    }
    if halves.iter().any(Vec::is_empty) {
        return Ok(None);
    }
    let distance = (1.0f64 - members.f_matmul(&members.tr())?).clamp_min(0.0);
    Ok(Some(Split {
        halves,
        cosine: centroid_cosine(&members, &labels)?,
        silhouette: mean_silhouette(&distance, &labels, 2)?,
    }))
}

/// Mean silhouette (Rousseeuw 1987) of `labels` (values below `k`) over a distance matrix:
/// s = (b − a) / max(a, b), a the mean distance to the window's own cluster, b to the nearest
/// other; windows alone in their cluster score 0.
fn mean_silhouette(distance: &Tensor, labels: &[usize], k: usize) -> Result<f64, InferenceError> {
    let n = labels.len();
    if n == 0 || k < 2 {
        return Ok(0.0);
    }
    let index = Tensor::from_slice(&labels.iter().map(|&l| l as i64).collect::<Vec<_>>());
    let one_hot = index.one_hot(k as i64).to_kind(Kind::Double);
    let sizes =
        Vec::<f64>::try_from(one_hot.sum_dim_intlist([0i64].as_slice(), false, Kind::Double))?;
    // Sum of distances from every window to every cluster: [n, k].
    let sums = Vec::<f64>::try_from(distance.f_matmul(&one_hot)?.contiguous().view([-1]))?;
    let mut total = 0.0;
    for (i, &own) in labels.iter().enumerate() {
        if sizes[own] <= 1.0 {
            continue;
        }
        let row = &sums[i * k..(i + 1) * k];
        let a = row[own] / (sizes[own] - 1.0);
        let b = (0..k)
            .filter(|&c| c != own && sizes[c] > 0.0)
            .map(|c| row[c] / sizes[c])
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            total += (b - a) / a.max(b).max(1e-12);
        }
    }
    Ok(total / n as f64)
}

/// Cosine between the centroids of the windows labelled 0 and those labelled 1.
fn centroid_cosine(embeddings: &Tensor, labels: &[usize]) -> Result<f64, InferenceError> {
    let (a, b) = (
        centroid(embeddings, labels, 0)?,
        centroid(embeddings, labels, 1)?,
    );
    let norms = (a.norm() * b.norm()).double_value(&[]);
    // An empty side means k-means found one group: as similar as can be.
    Ok(if norms > 0.0 {
        a.dot(&b).double_value(&[]) / norms
    } else {
        1.0
    })
}

/// Mean of the rows with this label (zeros when there are none).
fn centroid(embeddings: &Tensor, labels: &[usize], label: usize) -> Result<Tensor, InferenceError> {
    let rows: Vec<i64> = labels
        .iter()
        .enumerate()
        .filter(|(_, &l)| l == label)
        .map(|(i, _)| i as i64)
        .collect();
    if rows.is_empty() {
        return Ok(Tensor::zeros(
            [embeddings.size()[1]],
            (Kind::Double, Device::Cpu),
        ));
    }
    let members = embeddings.f_index_select(0, &Tensor::from_slice(&rows))?;
    Ok(members.mean_dim([0i64].as_slice(), false, Kind::Double))
}

/// The refined affinity: crop diagonal → row-wise percentile threshold → max(A, Aᵀ) →
/// A·Aᵀ → divide rows by their max → (A + Aᵀ)/2, the last so `linalg_eigh` sees a symmetric
/// matrix (row normalisation breaks symmetry; the recipe's own eig takes real parts instead).
fn refine_affinity(cosine: &Tensor, p_percentile: f64) -> Result<Tensor, InferenceError> {
    let n = cosine.size()[0];
    let eye = Tensor::eye(n, (Kind::Double, Device::Cpu));
    // The diagonal (always 1) would dominate every row: replace it by the row's best other value.
    let off: Tensor = cosine * (eye.ones_like() - &eye);
    let row_max = off.amax([1], true);
    let cropped = &off + &eye * &row_max;
    // Keep the top (1 − p) of each row, at least MIN_NEIGHBOURS entries.
    let keep = (((1.0 - p_percentile) * n as f64).ceil() as i64).clamp(MIN_NEIGHBOURS.min(n), n);
    let (top, _) = cropped.f_topk(keep, 1, true, true)?;
    let threshold = top.narrow(1, keep - 1, 1);
    let kept = cropped.ge_tensor(&threshold);
    let thresholded = cropped.where_self(&kept, &(&cropped * 0.01));
    let symmetric = thresholded.maximum(&thresholded.tr());
    let diffused = symmetric.f_matmul(&symmetric.tr())?;
    let normalised = &diffused / diffused.amax([1], true).clamp_min(1e-12);
    Ok((&normalised + normalised.tr()) * 0.5f64)
}

/// k-means (linfa, 10 seeded runs) on the rows of `points`.
fn kmeans(points: &Tensor, k: usize) -> Result<Vec<usize>, InferenceError> {
    let size = points.size();
    let (rows, cols) = (size[0] as usize, size[1] as usize);
    let values = Vec::<f64>::try_from(points.to_kind(Kind::Double).contiguous().view([-1]))?;
    let records = Array2::from_shape_vec((rows, cols), values)
        .map_err(|err| InferenceError::Clustering(err.to_string()))?;
    let dataset = DatasetBase::from(records);
    let model = KMeans::params(k)
        .max_n_iterations(300)
        .tolerance(1e-6)
        .fit(&dataset)
        .map_err(|err| InferenceError::Clustering(err.to_string()))?;
    Ok(model.predict(&dataset).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unit vectors scattered around centres that share a common positive part (as GE2E
    /// embeddings, which are non-negative, do): centre c is 0.2·1 + e_c.
    fn blobs(per_centre: &[usize], spread: f64) -> (Tensor, Vec<usize>) {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let d = 16;
        let mut values = Vec::new();
        let mut truth = Vec::new();
        for (c, &count) in per_centre.iter().enumerate() {
            for _ in 0..count {
                for j in 0..d {
                    let centre = 0.2 + if j == c { 1.0 } else { 0.0 };
                    values.push(centre + spread * rng.gen_range(-1.0..1.0));
                }
                truth.push(c);
            }
        }
        let x = Tensor::from_slice(&values).view([-1, d as i64]);
        (&x / x.norm_scalaropt_dim(2, [1], true), truth)
    }

    fn same_partition(a: &[usize], b: &[usize]) -> bool {
        (0..a.len()).all(|i| (0..a.len()).all(|j| (a[i] == a[j]) == (b[i] == b[j])))
    }

    #[test]
    fn finds_the_number_of_well_separated_groups() {
        for groups in [vec![20, 15], vec![12, 20, 9], vec![10, 10, 10, 10]] {
            let (x, truth) = blobs(&groups, 0.05);
            let labels = cluster_embeddings(&x, &ClusterOptions::default()).unwrap();
            assert!(same_partition(&labels, &truth), "{groups:?}: {labels:?}");
        }
    }

    #[test]
    fn many_windows_go_through_landmarks() {
        let (x, truth) = blobs(&[300, 200, 250], 0.05);
        let few_landmarks = ClusterOptions {
            max_spectral_windows: 60,
            ..ClusterOptions::default()
        };
        let labels = cluster_embeddings(&x, &few_landmarks).unwrap();
        assert!(same_partition(&labels, &truth));
    }

    #[test]
    fn one_tight_group_is_one_speaker_and_bounds_hold() {
        let (x, _) = blobs(&[30], 0.05);
        assert!(cluster_embeddings(&x, &ClusterOptions::default())
            .unwrap()
            .iter()
            .all(|&l| l == 0));
        let two = ClusterOptions {
            min_speakers: Some(2),
            ..ClusterOptions::default()
        };
        let labels = cluster_embeddings(&x, &two).unwrap();
        assert_eq!(labels.iter().max(), Some(&1), "{labels:?}");
        let (x, _) = blobs(&[10, 10, 10], 0.05);
        let at_most_two = ClusterOptions {
            max_speakers: Some(2),
            ..ClusterOptions::default()
        };
        assert!(cluster_embeddings(&x, &at_most_two)
            .unwrap()
            .iter()
            .all(|&l| l < 2));
        let empty = Tensor::zeros([0, 16], (Kind::Float, Device::Cpu));
        assert!(cluster_embeddings(&empty, &ClusterOptions::default())
            .unwrap()
            .is_empty());
        let (x, _) = blobs(&[1], 0.05);
        assert_eq!(
            cluster_embeddings(&x, &ClusterOptions::default()).unwrap(),
            vec![0]
        );
    }
}
