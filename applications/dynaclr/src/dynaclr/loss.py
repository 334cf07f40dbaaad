"""Contrastive losses used by DynaCLR.

``NTXentHCL`` (NT-Xent with hard-negative concentration) lives in :mod:`viscy_models.contrastive.loss`;
it is re-exported here so configs can name it ``dynaclr.loss.NTXentHCL``.
"""

from viscy_models.contrastive.loss import NTXentHCL

__all__ = ["NTXentHCL"]
