"""Hand-crafted features of single-cell images and of cell tracks, for comparison with learned embeddings.

Texture uses scikit-image grey-level co-occurrence matrices and Zernike moments are computed here, so no
extra dependency beyond ``pip install 'viscy-utils[eval]'`` (scipy) is needed.
"""

from __future__ import annotations

from math import factorial
from typing import TypedDict

import numpy as np
import pandas as pd

from viscy_utils._optional import import_optional

__all__ = [
    "IntensityFeatures",
    "TextureFeatures",
    "MorphologyFeatures",
    "SymmetryDescriptor",
    "TrackFeatures",
    "DisplacementFeatures",
    "AngularFeatures",
    "CellFeatures",
    "DynamicFeatures",
]


class IntensityFeatures(TypedDict):
    mean_intensity: float
    std_dev: float
    min_intensity: float
    max_intensity: float
    kurtosis: float
    skewness: float
    spectral_entropy: float
    iqr: float
    weighted_intensity_gradient: float


class TextureFeatures(TypedDict):
    spectral_entropy: float
    contrast: float
    entropy: float
    homogeneity: float
    dissimilarity: float
    texture: float


class MorphologyFeatures(TypedDict):
    area: float
    perimeter: float
    perimeter_area_ratio: float
    eccentricity: float
    intensity_localization: float
    masked_intensity: float
    masked_area: float


class SymmetryDescriptor(TypedDict):
    zernike_std: float
    zernike_mean: float
    radial_intensity_gradient: float


class TrackFeatures(TypedDict):
    instantaneous_velocity: list[float]
    mean_velocity: float
    max_velocity: float
    min_velocity: float
    std_velocity: float


class DisplacementFeatures(TypedDict):
    total_distance: float
    net_displacement: float
    directional_persistence: float


class AngularFeatures(TypedDict):
    mean_angular_velocity: float
    max_angular_velocity: float
    std_angular_velocity: float


def _radii(shape: tuple[int, int], center: tuple[float, float]) -> np.ndarray:
    y, x = np.indices(shape)
    return np.hypot(y - center[0], x - center[1])


def _radial_slope(values: np.ndarray, radii: np.ndarray) -> float:
    """Slope of the mean of ``values`` per integer radius against the radius."""
    bins = radii.astype(int).ravel()
    counts = np.bincount(bins)
    profile = np.bincount(bins, weights=values.ravel())[counts > 0] / counts[counts > 0]
    if profile.size < 2:
        return 0.0
    return float(np.polyfit(np.flatnonzero(counts), profile, 1)[0])


def _spectral_entropy(image: np.ndarray) -> float:
    power = np.abs(np.fft.fft2(image)) ** 2
    total = power.sum()
    if total == 0:
        return 0.0
    p = power.ravel() / total
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _radial_polynomial(n: int, m: int, rho: np.ndarray) -> np.ndarray:
    return sum(
        (-1) ** k
        * factorial(n - k)
        / (factorial(k) * factorial((n + m) // 2 - k) * factorial((n - m) // 2 - k))
        * rho ** (n - 2 * k)
        for k in range((n - m) // 2 + 1)
    )


def _zernike_magnitudes(image: np.ndarray, radius: float, degree: int = 8) -> np.ndarray:
    """Magnitudes of the Zernike moments up to ``degree`` on a disk around the intensity centroid."""
    total = image.sum()
    if total > 0:
        center = import_optional("scipy.ndimage").center_of_mass(image)
    else:
        center = ((image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2)
    y, x = np.indices(image.shape)
    dy, dx = (y - center[0]) / radius, (x - center[1]) / radius
    rho, theta = np.hypot(dy, dx), np.arctan2(dy, dx)
    inside = rho <= 1
    weights = image[inside] / image[inside].sum() if image[inside].sum() > 0 else image[inside]
    magnitudes = []
    for n in range(degree + 1):
        for m in range(n % 2, n + 1, 2):
            basis = _radial_polynomial(n, m, rho[inside]) * np.exp(-1j * m * theta[inside])
            magnitudes.append(abs((n + 1) / np.pi * (weights * basis).sum()))
    return np.array(magnitudes)


class CellFeatures:
    """Intensity, texture, morphology and symmetry features of one 2-D cell image.

    Parameters
    ----------
    image : np.ndarray
        2-D image; features use a copy rescaled to [0, 1].
    segmentation_mask : np.ndarray | None
        Binary cell mask, needed for morphology features.
    """

    def __init__(self, image: np.ndarray, segmentation_mask: np.ndarray | None = None) -> None:
        image = np.asarray(image, dtype=np.float64)
        if image.ndim != 2:
            raise ValueError(f"CellFeatures expects a 2-D image, got shape {image.shape}.")
        span = image.max() - image.min()
        self.image = (image - image.min()) / span if span > 0 else np.zeros_like(image)
        self.segmentation_mask = None if segmentation_mask is None else np.asarray(segmentation_mask) > 0
        self.intensity_features: IntensityFeatures | None = None
        self.texture_features: TextureFeatures | None = None
        self.morphology_features: MorphologyFeatures | None = None
        self.symmetry_descriptor: SymmetryDescriptor | None = None

    def compute_intensity_features(self) -> IntensityFeatures:
        """Moments, percentiles, spectral entropy and the radial slope of the intensity-weighted gradient."""
        stats = import_optional("scipy.stats")
        image = self.image
        constant = np.ptp(image) == 0
        gradient = np.hypot(*np.gradient(image)) * image
        center = ((image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2)
        p25, p75 = np.percentile(image, [25, 75])
        self.intensity_features = IntensityFeatures(
            mean_intensity=float(image.mean()),
            std_dev=float(image.std()),
            min_intensity=float(image.min()),
            max_intensity=float(image.max()),
            kurtosis=float("nan") if constant else float(stats.kurtosis(image, axis=None)),
            skewness=float("nan") if constant else float(stats.skew(image, axis=None)),
            spectral_entropy=_spectral_entropy(image),
            iqr=float(p75 - p25),
            weighted_intensity_gradient=_radial_slope(gradient, _radii(image.shape, center)),
        )
        return self.intensity_features

    def compute_texture_features(self) -> TextureFeatures:
        """Grey-level co-occurrence features (distance 1, 45 degrees) and their spread over 4 directions."""
        from skimage.feature import graycomatrix, graycoprops

        image = np.round(self.image * 255).astype(np.uint8)
        angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
        glcm = graycomatrix(image, distances=[1], angles=angles, levels=256, symmetric=True, normed=True)
        diagonal = glcm[:, :, 0, 1]
        nonzero = diagonal[diagonal > 0]
        properties = ["contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM"]
        per_angle = np.stack([graycoprops(glcm, prop)[0] for prop in properties])  # (properties, angles)
        self.texture_features = TextureFeatures(
            spectral_entropy=_spectral_entropy(self.image),
            contrast=float(graycoprops(glcm, "contrast")[0, 1]),
            entropy=float(-(nonzero * np.log2(nonzero)).sum()),
            homogeneity=float(graycoprops(glcm, "homogeneity")[0, 1]),
            dissimilarity=float(graycoprops(glcm, "dissimilarity")[0, 1]),
            texture=float(np.nan_to_num(np.ptp(per_angle, axis=1)).mean()),
        )
        return self.texture_features

    def compute_morphology_features(self) -> MorphologyFeatures:
        """Shape of the mask and how intensity is distributed inside it.

        ``intensity_localization`` is the fraction of the total intensity inside the mask,
        ``masked_intensity`` the mean intensity inside it and ``masked_area`` the number of mask pixels
        brighter than the image mean.
        """
        from skimage.measure import perimeter, regionprops

        if self.segmentation_mask is None:
            raise AssertionError("Segmentation mask is required")
        mask = self.segmentation_mask
        if not mask.any():
            raise AssertionError("Segmentation mask is empty")
        area = float(mask.sum())
        boundary = float(perimeter(mask))
        total = self.image.sum()
        self.morphology_features = MorphologyFeatures(
            area=area,
            perimeter=boundary,
            perimeter_area_ratio=boundary / area,
            eccentricity=float(regionprops(mask.astype(np.uint8))[0].eccentricity),
            intensity_localization=float(self.image[mask].sum() / total) if total > 0 else 0.0,
            masked_intensity=float(self.image[mask].mean()),
            masked_area=float((self.image[mask] > self.image.mean()).sum()),
        )
        return self.morphology_features

    def compute_symmetry_descriptor(self) -> SymmetryDescriptor:
        """Spread and mean of Zernike moment magnitudes (radius 32), and the radial intensity slope."""
        magnitudes = _zernike_magnitudes(self.image, radius=32)
        center = ((self.image.shape[0] - 1) / 2, (self.image.shape[1] - 1) / 2)
        slope = _radial_slope(self.image, _radii(self.image.shape, center))
        self.symmetry_descriptor = SymmetryDescriptor(
            zernike_std=float(magnitudes.std()),
            zernike_mean=float(magnitudes.mean()),
            radial_intensity_gradient=float(slope),
        )
        return self.symmetry_descriptor

    def compute_all_features(self) -> pd.DataFrame:
        """All features (morphology only with a mask) as a single-row DataFrame."""
        self.compute_intensity_features()
        self.compute_texture_features()
        self.compute_symmetry_descriptor()
        if self.segmentation_mask is not None:
            self.compute_morphology_features()
        return self.to_df()

    def to_df(self) -> pd.DataFrame:
        """Computed features as a single-row DataFrame."""
        row = {}
        for group in (
            self.intensity_features,
            self.texture_features,
            self.morphology_features,
            self.symmetry_descriptor,
        ):
            row.update(group or {})
        return pd.DataFrame([row])


class DynamicFeatures:
    """Velocity, displacement and turning features of tracks.

    Parameters
    ----------
    tracking_df : pd.DataFrame
        Tracks table with numeric ``track_id``, ``t``, ``x`` and ``y`` columns.
    """

    def __init__(self, tracking_df: pd.DataFrame) -> None:
        missing = [c for c in ("track_id", "t", "x", "y") if c not in tracking_df]
        if missing:
            raise ValueError(f"Missing required columns: {missing}")
        for column in ("t", "x", "y"):
            if not pd.api.types.is_numeric_dtype(tracking_df[column]):
                raise ValueError(f"Column {column} must be numeric")
        self.tracking_df = tracking_df

    def _track(self, track_id: int) -> tuple[np.ndarray, np.ndarray]:
        track = self.tracking_df[self.tracking_df["track_id"] == track_id].sort_values("t")
        return track["t"].to_numpy(dtype=np.float64), track[["x", "y"]].to_numpy(dtype=np.float64)

    @staticmethod
    def _steps(t: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.diff(xy, axis=0), np.diff(t)

    def compute_velocity_features(self, track_id: int) -> TrackFeatures:
        """Speed between consecutive frames (0 first); zeros for fewer than 2 points."""
        t, xy = self._track(track_id)
        if len(t) < 2:
            return TrackFeatures(
                instantaneous_velocity=[0.0] * len(t),
                mean_velocity=0.0,
                max_velocity=0.0,
                min_velocity=0.0,
                std_velocity=0.0,
            )
        steps, dt = self._steps(t, xy)
        speed = np.linalg.norm(steps, axis=1) / np.where(dt > 0, dt, 1)
        return TrackFeatures(
            instantaneous_velocity=[0.0, *speed.tolist()],
            mean_velocity=float(speed.mean()),
            max_velocity=float(speed.max()),
            min_velocity=float(speed.min()),
            std_velocity=float(speed.std()),
        )

    def compute_displacement_features(self, track_id: int) -> DisplacementFeatures:
        """Path length, net displacement and their ratio; zeros for fewer than 2 points."""
        t, xy = self._track(track_id)
        if len(t) < 2:
            return DisplacementFeatures(total_distance=0.0, net_displacement=0.0, directional_persistence=0.0)
        total = float(np.linalg.norm(np.diff(xy, axis=0), axis=1).sum())
        net = float(np.linalg.norm(xy[-1] - xy[0]))
        return DisplacementFeatures(
            total_distance=total, net_displacement=net, directional_persistence=net / total if total > 0 else 0.0
        )

    def compute_angular_features(self, track_id: int) -> AngularFeatures:
        """Turning rate (absolute heading change per time); zeros for fewer than 3 points."""
        t, xy = self._track(track_id)
        if len(t) < 3:
            return AngularFeatures(mean_angular_velocity=0.0, max_angular_velocity=0.0, std_angular_velocity=0.0)
        steps, dt = self._steps(t, xy)
        heading = np.unwrap(np.arctan2(steps[:, 1], steps[:, 0]))
        turn = np.abs(np.diff(heading)) / np.where(dt[1:] > 0, dt[1:], 1)
        return AngularFeatures(
            mean_angular_velocity=float(turn.mean()),
            max_angular_velocity=float(turn.max()),
            std_angular_velocity=float(turn.std()),
        )

    def compute_all_features(self, track_id: int) -> pd.DataFrame:
        """Velocity, displacement and angular features of one track as a single-row DataFrame."""
        row = {
            **self.compute_velocity_features(track_id),
            **self.compute_displacement_features(track_id),
            **self.compute_angular_features(track_id),
        }
        return pd.DataFrame([row])
