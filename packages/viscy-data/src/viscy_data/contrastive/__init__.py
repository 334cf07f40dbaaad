"""Multi-experiment contrastive data: which cells, which pairs, which patches.

- :mod:`~viscy_data.contrastive.experiment`: ``ExperimentConfig`` / ``ExperimentRegistry``, the
  plates of an ``experiments.yml`` with their positional channel maps (opened once).
- :mod:`~viscy_data.contrastive.cell_index`: ``MultiExperimentIndex``, one table of every tracked
  cell with lineage, clamped patch origins, tau in frames per experiment and the lineage/time
  lookup that gives both the valid anchors and the positives.
- :mod:`~viscy_data.contrastive.tau_sampling`: the biased draw of anchor-positive offsets.
- :mod:`~viscy_data.contrastive.dataset`: ``MultiExperimentTripletDataset``, batched anchor and
  positive patches read together, in one batched read.

Batches are composed by :class:`viscy_data.sampler.FlexibleBatchSampler`; the Lightning wiring
(``dynaclr.datamodule.MultiExperimentDataModule``) lives in the DynaCLR application. The submodules
are imported on use: this package imports nothing itself.
"""
