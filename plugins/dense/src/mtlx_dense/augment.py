"""Geometric augmentation of a dense multi-task sample, vectorised in torch.

The MTAN/LibMTL recipe (datasets spec, section 1): pick a scale s from
{1.0, 1.2, 1.5}, crop a random (H/s, W/s) window and resize it back to
(H, W) — bilinear (``align_corners=True``) for the image and normals, nearest
for labels and depth — divide depth by s (the scene looks s times closer),
then flip horizontally with probability 0.5 and negate the normals' x
component on a flip. Every field is transformed with one ``F.interpolate``
call; nothing loops over pixels.

A field's *kind* says how it transforms: ``"image"`` (the input) or a task
kind (:attr:`mtlx.TaskSpec.kind`: ``segmentation``, ``depth``, ``normal``).
Shapes are ``[C, H, W]``, except segmentation labels ``[H, W]``.

Any dense dataset plugin can use it (NYUv2, Cityscapes and GTA5 do); :class:`RandomScaleCropFlip` is resumable, so a
dataset that delegates its ``state_dict`` to it resumes mid-epoch exactly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import torch
import torch.nn.functional as F

__all__ = ["FIELD_KINDS", "RandomScaleCropFlip", "ScaleCropFlip", "resize_fields"]

#: How each kind is resampled: bilinear kinds are continuous, nearest kinds hold ids or must not be blended.
_BILINEAR = ("image", "normal")
_NEAREST = ("segmentation", "depth")
FIELD_KINDS = (*_BILINEAR, *_NEAREST)


def _resample(field: torch.Tensor, kind: str, size: tuple[int, int]) -> torch.Tensor:
    if kind in _BILINEAR:
        return F.interpolate(field[None], size=size, mode="bilinear", align_corners=True)[0]
    if kind == "segmentation":  # ids survive a float round trip exactly; nearest never blends them
        return F.interpolate(field[None, None].float(), size=size, mode="nearest")[0, 0].to(field.dtype)
    if kind == "depth":
        return F.interpolate(field[None], size=size, mode="nearest")[0]
    raise ValueError(f"unknown field kind {kind!r}; expected one of {', '.join(FIELD_KINDS)}")


def resize_fields(
    fields: Mapping[str, torch.Tensor], kinds: Mapping[str, str], size: tuple[int, int]
) -> dict[str, torch.Tensor]:
    """Resize every field to ``size`` (H, W) with the interpolation its kind requires.

    Depth values are kept: a whole frame seen at another resolution is not closer.
    """
    size = (int(size[0]), int(size[1]))
    return {
        name: field if tuple(field.shape[-2:]) == size else _resample(field, kinds[name], size)
        for name, field in fields.items()
    }


@attrs.frozen(kw_only=True)
class ScaleCropFlip:
    """One draw of the MTAN/LibMTL scale-crop-flip augmentation.

    Attributes:
        scale: zoom factor s >= 1; the crop is ``(int(H/s), int(W/s))``.
        top, left: corner of the crop window.
        flip: mirror horizontally after the crop.
    """

    scale: float = attrs.field(validator=attrs.validators.ge(1.0))
    top: int = attrs.field(validator=attrs.validators.ge(0))
    left: int = attrs.field(validator=attrs.validators.ge(0))
    flip: bool

    @classmethod
    def draw(
        cls, height: int, width: int, scales: Sequence[float], generator: torch.Generator | None = None
    ) -> ScaleCropFlip:
        """A random draw: uniform scale from ``scales``, uniform crop position, flip with probability 0.5."""
        scale = float(scales[int(torch.randint(len(scales), (1,), generator=generator))])
        crop_h, crop_w = int(height / scale), int(width / scale)
        top = int(torch.randint(height - crop_h + 1, (1,), generator=generator))
        left = int(torch.randint(width - crop_w + 1, (1,), generator=generator))
        flip = bool(torch.rand(1, generator=generator) < 0.5)
        return cls(scale=scale, top=top, left=left, flip=flip)

    def apply(self, fields: Mapping[str, torch.Tensor], kinds: Mapping[str, str]) -> dict[str, torch.Tensor]:
        """Transform every field of one sample (all share the last two dims ``H, W``)."""
        out = {}
        for name, field in fields.items():
            kind = kinds[name]
            height, width = field.shape[-2:]
            crop_h, crop_w = int(height / self.scale), int(width / self.scale)
            if self.top + crop_h > height or self.left + crop_w > width:
                raise ValueError(f"crop {self} does not fit field {name!r} of size {height}x{width}")
            window = field[..., self.top : self.top + crop_h, self.left : self.left + crop_w]
            field = _resample(window, kind, (height, width)) if self.scale != 1.0 else window.clone()
            if kind == "depth":
                field = field / self.scale
            if self.flip:
                field = field.flip(-1)
                if kind == "normal":
                    field[0] = -field[0]
            out[name] = field
        return out


class RandomScaleCropFlip:
    """Per-sample random :class:`ScaleCropFlip` whose randomness a resumed data loader reproduces.

    Its generator is seeded on first use in each process from
    ``torch.initial_seed()``: the engine's seed in the main process,
    ``base_seed + worker_id`` in a DataLoader worker (both derived from the
    run seed), so workers draw independent streams. A dataset that delegates
    ``state_dict``/``load_state_dict`` here is snapshotted by a
    StatefulDataLoader (in every worker), so a resumed run draws the same
    augmentations as an uninterrupted one::

        class Split(torch.utils.data.Dataset):
            def __getitem__(self, i):
                sample = self.augment(self.load(i), {"image": "image", "seg": "segmentation"})
                return sample.pop("image"), sample

            def state_dict(self):
                return self.augment.state_dict()

            def load_state_dict(self, state):
                self.augment.load_state_dict(state)
    """

    def __init__(self, scales: Sequence[float] = (1.0, 1.2, 1.5)):
        self.scales = tuple(scales)
        self._generator: torch.Generator | None = None
        self._pid: int | None = None

    def generator(self) -> torch.Generator:
        """This process's generator (created from ``torch.initial_seed()`` on first use)."""
        if self._generator is None or self._pid != os.getpid():  # a forked worker gets its own stream
            self._generator = torch.Generator().manual_seed(torch.initial_seed())
            self._pid = os.getpid()
        return self._generator

    def __call__(self, fields: Mapping[str, torch.Tensor], kinds: Mapping[str, str]) -> dict[str, torch.Tensor]:
        height, width = next(iter(fields.values())).shape[-2:]
        return ScaleCropFlip.draw(height, width, self.scales, self.generator()).apply(fields, kinds)

    def state_dict(self) -> dict[str, Any]:
        owned = self._generator is not None and self._pid == os.getpid()
        return {"generator": self._generator.get_state() if owned else None}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("generator") is None:
            self._generator, self._pid = None, None
        else:
            self._generator = torch.Generator()
            self._generator.set_state(state["generator"])
            self._pid = os.getpid()
