"""NT-Xent with hard-negative re-weighting (HCL), computed from one similarity matrix."""

import math
from typing import Literal

import torch
from pytorch_metric_learning.losses import NTXentLoss
from pytorch_metric_learning.utils import common_functions as c_f
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from torch import Tensor

from viscy_models.contrastive.distributed import gather_embeddings_and_labels

__all__ = ["NTXentHCL"]

_ESTIMATORS = ("hcl", "robinson")


def _negatives_only(similarity: Tensor, neg_mask: Tensor, has_neg: Tensor) -> Tensor:
    """``similarity`` with ``-inf`` outside the negatives (rows without negatives are kept whole, for finite grads)."""
    return similarity.masked_fill(~(neg_mask | ~has_neg.unsqueeze(1)), float("-inf"))


def _scaled_logsumexp(negatives: Tensor, scale: float, has_neg: Tensor) -> Tensor:
    """Row-wise ``log sum_k exp(scale * s_ik)`` over the negatives (``scale > 0``); ``-inf`` for rows without any."""
    lse = (negatives * scale).logsumexp(dim=1)
    return torch.where(has_neg, lse, torch.full_like(lse, float("-inf")))


class NTXentHCL(NTXentLoss):
    """NT-Xent loss whose negatives are re-weighted towards the hard ones (Robinson et al., ICLR 2021).

    For every positive pair (i, p) with similarity ``s_ip`` and the negatives k of anchor i (``M_i`` of them)::

        w_ik = exp(beta * s_ik),  w~_ik = w_ik * M_i / sum_k w_ik          (weights average to 1)
        loss_ip = -log( e^{s_ip/t} / (e^{s_ip/t} + sum_k w~_ik e^{s_ik/t}) )

    ``beta=0`` gives plain NT-Xent. The loss is computed from one (N x N) similarity matrix with log-sum-exps
    per anchor, so memory is O(N^2) rather than PML's O(#pos pairs x #neg pairs).

    Parameters
    ----------
    temperature : float
        Softmax temperature ``t``.
    beta : float
        Hardness concentration; 0 disables re-weighting.
    estimator : {"hcl", "robinson"}
        ``"hcl"`` (default) is the formula above. ``"robinson"`` is the debiased hard-negative estimator of the
        paper: importance weights ``exp(beta * s / t)`` normalised to mean 1, the negative term
        ``Ng = (-tau_plus * M * e^{s_ip/t} + sum_k w~_ik e^{s_ik/t}) / (1 - tau_plus)`` clamped below at
        ``M * exp(-1/t)``, and ``loss = -log(e^{s_ip/t} / (e^{s_ip/t} + Ng))``.
    tau_plus : float
        Class prior of the ``"robinson"`` estimator's positive-sample correction, in [0, 1).
    gather_distributed : bool
        All-gather embeddings (with gradients) and labels across DDP ranks before computing the loss, so every
        rank sees the global batch's negatives; labels are offset per rank (see
        :func:`viscy_models.contrastive.distributed.gather_embeddings_and_labels`).
    **kwargs
        Forwarded to ``NTXentLoss`` (``distance``, ``reducer``, ``embedding_regularizer``, ...).
    """

    def __init__(
        self,
        temperature: float = 0.07,
        beta: float = 0.5,
        estimator: Literal["hcl", "robinson"] = "hcl",
        tau_plus: float = 0.1,
        gather_distributed: bool = False,
        **kwargs,
    ) -> None:
        if temperature <= 0:
            raise ValueError(f"NTXentHCL: temperature must be > 0, got {temperature}")
        if beta < 0:
            raise ValueError(f"NTXentHCL: beta must be >= 0, got {beta}")
        if estimator not in _ESTIMATORS:
            raise ValueError(f"NTXentHCL: estimator must be one of {_ESTIMATORS}, got {estimator!r}")
        if not 0 <= tau_plus < 1:
            raise ValueError(f"NTXentHCL: tau_plus must be in [0, 1), got {tau_plus}")
        super().__init__(temperature=temperature, **kwargs)
        self.beta = beta
        self.estimator = estimator
        self.tau_plus = tau_plus
        self.gather_distributed = gather_distributed
        self.add_to_recordable_attributes(list_of_names=["beta"], is_stat=False)

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor | None = None,
        indices_tuple: tuple[Tensor, ...] | None = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        """Compute the loss of ``embeddings`` (N, D) with ``labels`` (N,); same call signature as PML losses."""
        if self.gather_distributed:
            if labels is None or indices_tuple is not None or ref_emb is not None:
                raise ValueError("NTXentHCL: gather_distributed=True needs labels and no indices_tuple/ref_emb")
            embeddings, labels = gather_embeddings_and_labels(embeddings, c_f.to_device(labels, embeddings))
        return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)

    def compute_loss(
        self,
        embeddings: Tensor,
        labels: Tensor | None,
        indices_tuple: tuple[Tensor, ...] | None,
        ref_emb: Tensor,
        ref_labels: Tensor | None,
    ) -> dict:
        """Per-positive-pair losses in PML's loss-dict format (reduction type ``"pos_pair"``)."""
        c_f.labels_or_indices_tuple_required(labels, indices_tuple)
        pos_mask, neg_mask = self._pair_masks(labels, indices_tuple, ref_labels, len(embeddings), len(ref_emb))
        n_pos, n_neg = int(pos_mask.sum()), int(neg_mask.sum())
        if n_pos == 0 or n_neg == 0 or (n_pos <= 1 and n_neg <= 1):
            return self.zero_losses()
        similarity = self.distance(embeddings, ref_emb)
        if not self.distance.is_inverted:
            similarity = -similarity
        anchors, positives = pos_mask.nonzero(as_tuple=True)
        pos_logits = similarity[anchors, positives] / self.temperature
        num_neg = neg_mask.sum(dim=1)
        has_neg = num_neg > 0
        negatives = _negatives_only(similarity, neg_mask, has_neg)
        del similarity, pos_mask, neg_mask  # free N x N buffers that backward does not need
        if self.estimator == "hcl":
            losses = self._hcl_losses(negatives, num_neg, has_neg, anchors, pos_logits)
        else:
            losses = self._robinson_losses(negatives, num_neg, has_neg, anchors, pos_logits)
        return {"loss": {"losses": losses, "indices": (anchors, positives), "reduction_type": "pos_pair"}}

    @staticmethod
    def _pair_masks(
        labels: Tensor | None,
        indices_tuple: tuple[Tensor, ...] | None,
        ref_labels: Tensor | None,
        n_rows: int,
        n_cols: int,
    ) -> tuple[Tensor, Tensor]:
        """Boolean (n_rows, n_cols) masks of positive and negative pairs, following PML's pairing rules."""
        if indices_tuple is None:
            matches = labels.unsqueeze(1) == ref_labels.unsqueeze(0)
            neg_mask = ~matches
            if ref_labels is labels:
                matches.fill_diagonal_(False)
            return matches, neg_mask
        a1, p, a2, n = lmu.convert_to_pairs(indices_tuple, labels, ref_labels)
        device = a1.device
        pos_mask = torch.zeros((n_rows, n_cols), dtype=torch.bool, device=device)
        neg_mask = torch.zeros((n_rows, n_cols), dtype=torch.bool, device=device)
        pos_mask[a1, p] = True
        neg_mask[a2, n] = True
        return pos_mask, neg_mask

    def _hcl_losses(
        self, negatives: Tensor, num_neg: Tensor, has_neg: Tensor, anchors: Tensor, pos_logits: Tensor
    ) -> Tensor:
        # log sum_k w~_ik e^{s_ik/t} = log M_i - LSE_k(beta s_ik) + LSE_k((beta + 1/t) s_ik)
        log_neg = _scaled_logsumexp(negatives, self.beta + 1 / self.temperature, has_neg)
        if self.beta > 0:
            log_weight_sum = _scaled_logsumexp(negatives, self.beta, has_neg)
            log_weight_sum = torch.where(has_neg, log_weight_sum.clamp_min(math.log(1e-8)), log_weight_sum)
            log_neg = log_neg + torch.log(num_neg.to(negatives.dtype)) - log_weight_sum
            log_neg = torch.where(has_neg, log_neg, torch.full_like(log_neg, float("-inf")))
        ratio = torch.sigmoid(pos_logits - log_neg[anchors])
        return -torch.log(ratio + c_f.small_val(negatives.dtype))

    def _robinson_losses(
        self, negatives: Tensor, num_neg: Tensor, has_neg: Tensor, anchors: Tensor, pos_logits: Tensor
    ) -> Tensor:
        t = self.temperature
        count = num_neg.to(negatives.dtype)
        # log of the importance-weighted negative sum, weights exp(beta s / t) normalised to mean 1
        log_neg = _scaled_logsumexp(negatives, (self.beta + 1) / t, has_neg)
        if self.beta > 0:
            log_weight_sum = _scaled_logsumexp(negatives, self.beta / t, has_neg)
            log_neg = torch.where(has_neg, log_neg + torch.log(count) - log_weight_sum, log_neg)
        log_neg = log_neg[anchors]
        count = count[anchors]
        shift = torch.maximum(pos_logits, log_neg).detach()
        pos_term = torch.exp(pos_logits - shift)
        neg_estimate = (-self.tau_plus * count * pos_term + torch.exp(log_neg - shift)) / (1 - self.tau_plus)
        neg_estimate = torch.maximum(neg_estimate, count * torch.exp(-1 / t - shift))
        return torch.log(pos_term + neg_estimate) - (pos_logits - shift)
