//! Speaker clustering: spectral clustering of window embeddings on their cosine affinity,
//! refined as in Google's spectral clustering recipe (ICASSP 2018 / Turn-to-Diarize): crop the
//! diagonal, keep each row's strongest affinities, symmetrise, diffuse, normalise rows. The
//! number of speakers comes from the largest eigengap of the refined affinity (within optional
//! bounds); k-means (linfa) on the leading eigenvectors gives each window its speaker.

use super::InferenceError;
use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::Array2;
use tch::{Device, Kind, Tensor};

/// Upper bound on the number of speakers when the caller sets none.
pub const DEFAULT_MAX_SPEAKERS: usize = 8;
/// Below this many windows the eigen-structure means little: count speakers from cosines alone.
const MIN_SPECTRAL_WINDOWS: usize = 6;

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
    /// The audio is one voice when the best split into two groups leaves group centroids at
    /// least this similar (cosine). On espeak-ng voices one voice split in two gave 0.94–0.96,
    /// two different voices 0.62–0.91.
    pub single_speaker_centroid_cosine: f64,
    /// After clustering, clusters whose centroids are at least this similar are joined (the
    /// eigengap ratio sometimes splits one voice in two; on espeak-ng such halves scored
    /// 0.94–0.96 while the two closest distinct voices scored 0.91–0.92).
    pub merge_centroid_cosine: f64,
    /// Spectral clustering runs on at most this many windows (landmarks beyond it).
    pub max_spectral_windows: usize,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            min_speakers: None,
            max_speakers: None,
            p_percentile: 0.9,
            single_speaker_centroid_cosine: 0.92,
            merge_centroid_cosine: 0.93,
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

/// Spectral clustering of every row (double precision, on the CPU).
fn cluster_all(embeddings: &Tensor, opts: &ClusterOptions) -> Result<Vec<usize>, InferenceError> {
    let n = usize::try_from(embeddings.size().first().copied().unwrap_or(0)).unwrap_or(0);
    let max_speakers = opts
        .max_speakers
        .unwrap_or(DEFAULT_MAX_SPEAKERS)
        .clamp(1, n.max(1));
    let min_speakers = opts.min_speakers.unwrap_or(1).clamp(1, max_speakers);
    if n <= 1 || max_speakers == 1 {
        return Ok(vec![0; n]);
    }
    let spectral = if n >= MIN_SPECTRAL_WINDOWS {
        let cosine = embeddings.f_matmul(&embeddings.tr())?.clamp(-1.0, 1.0);
        let (eigenvalues, eigenvectors) =
            refine_affinity(&cosine, opts.p_percentile)?.f_linalg_eigh("L")?;
        // eigh sorts ascending; the speakers are in the largest ones.
        Some((
            Vec::<f64>::try_from(eigenvalues.flip([0]))?,
            eigenvectors.flip([1]),
        ))
    } else {
        None
    };
    // k speakers: k-means on the leading k eigenvectors (rows normalised), or on the embeddings
    // themselves when there are too few windows for an eigen-structure.
    let assign = |k: usize| match &spectral {
        Some((_, eigenvectors)) => {
            let leading = eigenvectors.narrow(1, 0, k as i64);
            kmeans(
                &(&leading / leading.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12)),
                k,
            )
        }
        None => kmeans(embeddings, k),
    };
    let two = assign(2)?;
    let similarity = centroid_cosine(embeddings, &two)?;
    let single = similarity >= opts.single_speaker_centroid_cosine;
    log::debug!("cluster: {n} windows; best two-way split has centroid cosine {similarity:.3}");
    if single && min_speakers == 1 {
        return Ok(vec![0; n]);
    }
    let k = match (&spectral, single) {
        // One voice but the caller insists on more: the fewest allowed, as the eigengap of a
        // single voice only measures noise.
        (_, true) | (None, false) => min_speakers.max(2),
        (Some((eigenvalues, _)), false) => {
            log::debug!(
                "cluster: leading eigenvalues {:?}",
                &eigenvalues[..eigenvalues.len().min(8)]
            );
            eigengap_count(eigenvalues, min_speakers.max(2), max_speakers)
        }
    };
    let labels = if k == 2 { two } else { assign(k)? };
    let labels = merge_alike(embeddings, labels, opts.merge_centroid_cosine, min_speakers)?;
    log::debug!(
        "cluster: {k} clusters → {} speakers",
        labels.iter().max().map_or(0, |&m| m + 1)
    );
    Ok(labels)
}

/// Joins the two clusters with the most similar centroids while they are as alike as the two
/// halves of one voice (cosine ≥ `threshold`) and more than `min` remain; labels come
/// back numbered 0..k without gaps.
fn merge_alike(
    embeddings: &Tensor,
    mut labels: Vec<usize>,
    threshold: f64,
    min: usize,
) -> Result<Vec<usize>, InferenceError> {
    loop {
        let mut present: Vec<usize> = labels.clone();
        present.sort_unstable();
        present.dedup();
        if present.len() <= min.max(1) {
            break;
        }
        let centroids: Vec<Tensor> = present
            .iter()
            .map(|&l| centroid(embeddings, &labels, l))
            .collect::<Result<_, _>>()?;
        let centroids = Tensor::f_stack(&centroids, 0)?;
        let centroids = &centroids / centroids.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
        let similarity = centroids.f_matmul(&centroids.tr())?;
        let mut best = (0, 0, f64::MIN);
        for a in 0..present.len() {
            for b in a + 1..present.len() {
                let value = similarity.double_value(&[a as i64, b as i64]);
                if value > best.2 {
                    best = (a, b, value);
                }
            }
        }
        if best.2 < threshold {
            break;
        }
        let (keep, gone) = (present[best.0], present[best.1]);
        labels
            .iter_mut()
            .filter(|l| **l == gone)
            .for_each(|l| *l = keep);
    }
    let mut order: Vec<usize> = labels.clone();
    order.sort_unstable();
    order.dedup();
    Ok(labels
        .iter()
        .map(|l| order.iter().position(|o| o == l).unwrap_or(0))
        .collect())
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
    // Keep the top (1 − p) of each row, at least 2 entries.
    let keep = (((1.0 - p_percentile) * n as f64).ceil() as i64).clamp(2, n);
    let (top, _) = cropped.f_topk(keep, 1, true, true)?;
    let threshold = top.narrow(1, keep - 1, 1);
    let kept = cropped.ge_tensor(&threshold);
    let thresholded = cropped.where_self(&kept, &(&cropped * 0.01));
    let symmetric = thresholded.maximum(&thresholded.tr());
    let diffused = symmetric.f_matmul(&symmetric.tr())?;
    let normalised = &diffused / diffused.amax([1], true).clamp_min(1e-12);
    Ok((&normalised + normalised.tr()) * 0.5f64)
}

/// The k in [min, max] with the largest eigengap ratio λ_k / λ_{k+1} (eigenvalues descending,
/// the ICASSP 2018 criterion), among the k whose λ_k is not noise (≥ 2 % of λ_1): ratios
/// between near-zero tail eigenvalues say nothing. On four espeak-ng voices the normalised
/// difference (λ_k − λ_{k+1}) / λ_1 chose 3 where the ratio chose the true 4.
fn eigengap_count(eigenvalues: &[f64], min: usize, max: usize) -> usize {
    let max = max.min(eigenvalues.len().saturating_sub(1)).max(1);
    let min = min.min(max);
    let floor = 0.02 * eigenvalues.first().copied().unwrap_or(0.0);
    (min..=max)
        .filter(|&k| k == min || eigenvalues[k - 1] >= floor)
        .map(|k| (k, eigenvalues[k - 1] / eigenvalues[k].max(1e-12)))
        .fold(
            (min, f64::MIN),
            |best, (k, gap)| if gap > best.1 { (k, gap) } else { best },
        )
        .0
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
