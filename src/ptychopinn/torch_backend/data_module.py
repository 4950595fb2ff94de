"""Torch views of a :class:`~ptychopinn.grouped.GroupedScan` (lazy normalisation per item)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ptychopinn.grouped import GroupedScan


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


def split_groups(n_groups: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) index split; validation is empty when it would round to 0."""
    order = np.random.default_rng(seed).permutation(n_groups)
    n_val = int(round(validation_fraction * n_groups))
    if n_val >= n_groups:
        n_val = n_groups - 1
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def make_loader(dataset: GroupDataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0)
