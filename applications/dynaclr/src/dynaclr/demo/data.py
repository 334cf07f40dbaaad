"""Demo data: two synthetic time-lapse experiments with different reporters, ready for training.

Each experiment is a real OME-Zarr HCS plate with per-FOV tracks tables (``viscy_data.synthetic``),
normalization statistics written by the ``preprocess`` code path, and an entry in ``experiments.yml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from viscy_data.synthetic import SyntheticExperiment, generate_experiment

__all__ = ["DemoData", "demo_experiments", "write_demo_data"]


@dataclass(frozen=True)
class DemoData:
    """Where the demo data lie.

    Parameters
    ----------
    experiments_yaml : Path
        Registry of both experiments (``dynaclr.experiment.ExperimentRegistry`` format).
    ground_truth : pd.DataFrame
        Cell state of every tracked observation: ``experiment, fov_name, track_id, t, condition,
        infection_state``.
    held_out_fovs : list[str]
        FOVs left out of contrastive training and used to test the linear probes.
    """

    experiments_yaml: Path
    ground_truth: pd.DataFrame
    held_out_fovs: list[str]


def demo_experiments(
    fovs_per_well: int, n_timepoints: int, image_size: int, cells_per_fov: int, seed: int, **appearance: float
) -> list[SyntheticExperiment]:
    """The two demo experiments: GFP imaged every 30 min and mCherry every 20 min, on separate wells.

    Each has one uninfected and two infected wells, so both cell states are about equally common.
    ``appearance`` is passed on to :class:`~viscy_data.synthetic.SyntheticExperiment` (noise, debris, ...).
    """
    layouts = [
        ("demo_gfp", "GFP", 30.0, {"uninfected": ["A/1"], "infected": ["A/2", "A/3"]}),
        ("demo_mcherry", "mCherry", 20.0, {"uninfected": ["B/1"], "infected": ["B/2", "B/3"]}),
    ]
    return [
        SyntheticExperiment(
            name=name,
            reporter=reporter,
            condition_wells=wells,
            fovs_per_well=fovs_per_well,
            n_timepoints=n_timepoints,
            image_size=image_size,
            cells_per_fov=cells_per_fov,
            interval_minutes=interval,
            seed=seed + i,
            **appearance,
        )
        for i, (name, reporter, interval, wells) in enumerate(layouts)
    ]


def _registry_entry(exp: SyntheticExperiment, paths: dict[str, Path]) -> dict:
    return {
        "name": exp.name,
        "data_path": str(paths["data_path"]),
        "tracks_path": str(paths["tracks_path"]),
        "channel_names": exp.channel_names,
        "source_channel": exp.channel_names,
        "condition_wells": exp.condition_wells,
        "interval_minutes": exp.interval_minutes,
        "start_hpi": 0.0,
        "organelle": "synthetic",
        "date": "",
        "moi": 1.0,
    }


def write_demo_data(root: Path, experiments: list[SyntheticExperiment], num_workers: int = 2) -> DemoData:
    """Generate the experiments under ``root``, compute their normalization statistics, write the registry.

    The last FOV of every well is held out for testing the probes.

    Parameters
    ----------
    root : Path
        Folder for the plates, tracks and ``experiments.yml`` (created; must not hold the experiments yet).
    experiments : list[SyntheticExperiment]
        What to generate (see :func:`demo_experiments`).
    num_workers : int
        Positions read in parallel by the normalization statistics.

    Returns
    -------
    DemoData
    """
    from viscy_utils.meta_utils import generate_normalization_metadata

    root.mkdir(parents=True, exist_ok=True)
    entries, truths = [], []
    for exp in experiments:
        paths = generate_experiment(root, exp)
        generate_normalization_metadata(paths["data_path"], num_workers=num_workers, grid_spacing=4)
        entries.append(_registry_entry(exp, paths))
        truths.append(pd.read_csv(paths["ground_truth"]).assign(experiment=exp.name))
    experiments_yaml = root / "experiments.yml"
    experiments_yaml.write_text(yaml.safe_dump({"experiments": entries}, sort_keys=False))
    wells = [(w, exp.fovs_per_well) for exp in experiments for group in exp.condition_wells.values() for w in group]
    held_out = [f"{well}/{n_fovs - 1}" for well, n_fovs in wells]
    columns = ["experiment", "fov_name", "track_id", "t", "condition", "infection_state"]
    return DemoData(experiments_yaml, pd.concat(truths, ignore_index=True)[columns], held_out)
