"""The training loss of a config: which loss, on which outputs, with which fixed weights.

One place maps ``TrainingConfig.loss`` to the papers' objectives, so the training loop stays
the same for every backbone:

* ``cross-entropy``: mean voxel-wise cross-entropy (DU-Net, the seed-000 backbones, MixNet).
* ``deep-supervision``: seed 001's α-weighted cross-entropy at full, 1/2 and 1/4 resolution
  (:func:`~.deep_supervision.deep_supervision_loss` on ``forward_with_aux``).
* ``gdl``: seed 002's Generalized Dice loss with weights ``1/f_l²`` fixed from the class
  frequencies of the training labels (all their voxels, background included).
* ``damal``: seed 003's surface-attention loss + soft Dice, the attention weights computed on
  each subject's whole ground truth and cut with the patch (sampler extras).

``keras-l2`` weight decay (the DU-Net's Keras ``kernel_regularizer``) is added here; ``coupled``
weight decay is the optimiser's (:func:`~.optim.build_optimizer`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .config import TrainingConfig
from .data import Subject
from .deep_supervision import deep_supervision_loss
from .losses import cross_entropy, keras_l2_penalty, regularised_kernels
from .region_losses import attention_weights, damal_loss, gdl_class_weights, generalized_dice_loss


class Objective:
    """``objective(model, x, y, extras) -> (loss, total)``: the paper's loss and the loss plus
    the Keras-style L2 penalty that is back-propagated.

    Parameters
    ----------
    config
        The run's configuration (``loss``, ``weight_decay``, ``weight_decay_mode``).
    model
        The network being trained (its kernels for the L2 penalty).
    training
        The training subjects (class frequencies of the Generalized Dice loss).
    """

    def __init__(
        self, config: TrainingConfig, model: nn.Module, training: Sequence[Subject]
    ) -> None:
        self.loss = config.loss
        if self.loss == "deep-supervision" and not hasattr(model, "forward_with_aux"):
            raise ValueError(
                f"{config.architecture} has no deep-supervision outputs (forward_with_aux)"
            )
        self.kernels = regularised_kernels(model) if config.weight_decay_mode == "keras-l2" else []
        self.l2 = config.weight_decay
        self.class_weights: torch.Tensor | None = None
        if self.loss == "gdl":
            weights = gdl_class_weights([s.label for s in training], num_classes=4)
            self.class_weights = torch.as_tensor(weights, dtype=torch.float32)

    def extras(self, subjects: Sequence[Subject]) -> list[np.ndarray] | None:
        """Per-subject volumes the sampler must cut with each patch (DAM-AL's attention
        weights ``(4, D, H, W)``), or ``None``."""
        if self.loss != "damal":
            return None
        return [attention_weights(s.label, num_classes=4) for s in subjects]

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, extras: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.loss == "deep-supervision":
            loss = deep_supervision_loss(model.forward_with_aux(x), y)
        elif self.loss == "gdl" and self.class_weights is not None:
            loss = generalized_dice_loss(model(x), y, self.class_weights.to(x.device))
        elif self.loss == "damal":
            loss = damal_loss(model(x), y, extras)
        else:
            loss = cross_entropy(model(x), y)
        if self.kernels:
            return loss, loss + keras_l2_penalty(self.kernels, self.l2)
        return loss, loss
