"""One split as a torch dataset: files -> decoded maps -> transformed tensors ``(image, {task: target})``.

Targets (``S`` = the resize size): semseg and parts int64 ``[S, S]`` (255 =
ignore), normals float ``[3, S, S]`` unit vectors or 255, sal and edge float
``[1, S, S]`` in {0, 1}. The image is float ``[3, S, S]``, ImageNet-normalised.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import torch
import torch.utils.data

from .classes import normals_valid_ids
from .decode import (
    edges_from_label_map,
    human_parts_label,
    mask_normals,
    read_image,
    read_label_map,
    read_normals,
    read_part_objects,
    read_saliency,
    read_semseg,
)
from .layout import Layout
from .transforms import (
    Geometry,
    finish_normals,
    normalise_image,
    random_geometry,
    sampling_grid,
    transform_normals,
    warp,
)

__all__ = ["Augmentation", "PascalSplit", "decode_sample", "transform_sample"]

IGNORE = 255


@attrs.frozen(kw_only=True)
class Augmentation:
    """Training-time randomness; ``enabled=False`` leaves only the fixed resize (evaluation)."""

    enabled: bool
    scale_range: tuple[float, float] = (0.75, 1.25)
    max_rotation: float = 20.0


def decode_sample(layout: Layout, image_id: str, tasks: Sequence[str], has_person: bool) -> dict[str, np.ndarray]:
    """The image and every selected task's map at the original resolution, decoded by the dataset's rules."""
    out = {"image": read_image(layout.image(image_id))}
    label_map = read_label_map(layout.label_map(image_id)) if {"normals", "edge"} & set(tasks) else None
    if "semseg" in tasks:
        out["semseg"] = read_semseg(layout.semseg(image_id))
    if "parts" in tasks:
        path = layout.parts(image_id)
        parts = human_parts_label(read_part_objects(path), where=path) if has_person else None
        # no person with parts, or nothing painted: the whole map is ignored (AddIgnoreRegions)
        out["parts"] = parts if parts is not None and parts.any() else np.full(out["image"].shape[:2], IGNORE, np.uint8)
    if label_map is not None and "normals" in tasks:
        path = layout.normals(image_id)
        out["normals"] = mask_normals(read_normals(path), label_map, normals_valid_ids(), where=path)
    if "sal" in tasks:
        out["sal"] = read_saliency(layout.sal(image_id))
    if label_map is not None and "edge" in tasks:
        out["edge"] = edges_from_label_map(label_map)
    return out


def _chw(array: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(array, dtype=np.float32))
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)


def transform_sample(
    decoded: dict[str, np.ndarray], geometry: Geometry, size: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Warp every map with the same geometry to ``size x size`` and convert to the target dtypes."""
    grids: dict[tuple[int, int], torch.Tensor] = {}

    def move(values: torch.Tensor, mode: str, fill: float = 0.0) -> torch.Tensor:
        shape = (values.shape[1], values.shape[2])
        if shape not in grids:  # maps of another size than the image are stretched onto it, as in the reference
            grids[shape] = sampling_grid(geometry, *shape, size)
        return warp(values, grids[shape], mode=mode, fill=fill)

    image = normalise_image(move(_chw(decoded["image"]), "bicubic"))
    targets: dict[str, torch.Tensor] = {}
    for name, array in decoded.items():
        if name in ("semseg", "parts"):
            targets[name] = move(_chw(array), "nearest", IGNORE)[0].long()
        elif name == "normals":
            targets[name] = finish_normals(move(transform_normals(_chw(array), geometry), "bicubic"))
        elif name in ("sal", "edge"):
            targets[name] = move(_chw(array), "nearest")
    return image, targets


class PascalSplit(torch.utils.data.Dataset):
    """The images of one split with the selected tasks."""

    def __init__(
        self,
        layout: Layout,
        ids: Sequence[str],
        tasks: Sequence[str],
        *,
        size: int,
        augmentation: Augmentation,
        person_ids: frozenset[str] = frozenset(),
    ):
        self.layout, self.ids, self.tasks = layout, list(ids), tuple(tasks)
        self.size, self.augmentation, self.person_ids = size, augmentation, person_ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image_id = self.ids[index]
        decoded = decode_sample(self.layout, image_id, self.tasks, image_id in self.person_ids)
        aug = self.augmentation
        geometry = random_geometry(aug.scale_range, aug.max_rotation) if aug.enabled else Geometry()
        return transform_sample(decoded, geometry, self.size)
