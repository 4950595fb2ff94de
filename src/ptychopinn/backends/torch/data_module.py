"""Torch views of a :class:`~ptychopinn.data.grouped.GroupedScan` (lazy normalisation per item)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ptychopinn.data.grouped import GroupedScan, epoch_order


class GroupDataset(Dataset):
    """Item g: (X_n (C, N, N) float32, offsets (C, 2) float32) of group ``selection[g]``."""

    def __init__(self, grouped: GroupedScan, selection: np.ndarray):
        self.grouped = grouped
        self.selection = np.asarray(selection)

    def __len__(self) -> int:
        return len(self.selection)

    def __getitem__(self, item: int):
        group = self.selection[item : item + 1]
        return (
            torch.from_numpy(self.grouped.diffraction(group)[0]),
            torch.from_numpy(self.grouped.offsets(group)[0]),
        )


class EpochOrderSampler(Sampler):
    """Visits items in :func:`ptychopinn.data.grouped.epoch_order` (the backend-neutral order).

    Lightning calls :meth:`set_epoch` before every epoch, so epoch e is the same permutation
    here and in the TensorFlow backend.
    """

    def __init__(self, n_items: int, shuffle: bool, seed: int):
        self.n_items, self.shuffle, self.seed, self.epoch = n_items, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(epoch_order(self.n_items, self.epoch, self.seed, self.shuffle).tolist())

    def __len__(self) -> int:
        return self.n_items


def make_loader(dataset: GroupDataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    sampler = EpochOrderSampler(len(dataset), shuffle, seed)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=0)
