"""Where the files of one image live in the ``PASCAL_MT`` release, and the split lists.

Layout (the ASTMT ``PASCAL_MT.tgz``; InvPT's ``PASCALContext.tar.gz`` is the same)::

    JPEGImages/<id>.jpg
    ImageSets/Context/{train,val}.txt
    ImageSets/Parts/{train,val}.txt            JSON cache {id: [object class ids]}
    semseg/VOC12/<id>.png | semseg/pascal-context/<id>.png
    human_parts/<id>.mat
    normals_distill/<id>.png
    sal_distill/<id>.png
    pascal-context/trainval/<id>.mat           'LabelMap'
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs

from mtlx.data import require_files
from mtlx.errors import DataError

from .classes import PERSON_CLASS
from .decode import object_classes, read_part_objects

__all__ = ["EXPECTED", "SOURCE", "TASK_FILES", "Layout"]

log = logging.getLogger(__name__)

EXPECTED = (
    "JPEGImages/<id>.jpg, ImageSets/Context/{train,val}.txt, semseg/{VOC12,pascal-context}/<id>.png, "
    "human_parts/<id>.mat, normals_distill/<id>.png, sal_distill/<id>.png, pascal-context/trainval/<id>.mat "
    "(the extracted PASCAL_MT/ directory)"
)
SOURCE = (
    "the ASTMT release PASCAL_MT.tgz (https://data.vision.ee.ethz.ch/kmaninis/share/MTL/PASCAL_MT.tgz) "
    "or InvPT's PASCALContext.tar.gz; extract it and pass the directory as --data-root"
)

#: Which of a task's files it reads (besides the image).
TASK_FILES: Mapping[str, tuple[str, ...]] = {
    "semseg": ("semseg",),
    "parts": ("parts",),
    "normals": ("normals", "label_map"),
    "sal": ("sal",),
    "edge": ("label_map",),
}


@attrs.frozen
class Layout:
    """Paths inside one ``PASCAL_MT`` root."""

    root: Path

    def image(self, image_id: str) -> Path:
        return self.root / "JPEGImages" / f"{image_id}.jpg"

    def semseg(self, image_id: str) -> Path:
        """The VOC12 map when it exists (finer object labels), else the pascal-context one."""
        voc = self.root / "semseg" / "VOC12" / f"{image_id}.png"
        return voc if voc.is_file() else self.root / "semseg" / "pascal-context" / f"{image_id}.png"

    def parts(self, image_id: str) -> Path:
        return self.root / "human_parts" / f"{image_id}.mat"

    def normals(self, image_id: str) -> Path:
        return self.root / "normals_distill" / f"{image_id}.png"

    def sal(self, image_id: str) -> Path:
        return self.root / "sal_distill" / f"{image_id}.png"

    def label_map(self, image_id: str) -> Path:
        return self.root / "pascal-context" / "trainval" / f"{image_id}.mat"

    def split_file(self, split: str) -> Path:
        return self.root / "ImageSets" / "Context" / f"{split}.txt"

    def parts_cache(self, split: str) -> Path:
        return self.root / "ImageSets" / "Parts" / f"{split}.txt"

    # -- splits -------------------------------------------------------------------

    def split_ids(self, split: str) -> list[str]:
        """The ids listed in ``ImageSets/Context/<split>.txt``, in file order."""
        path = self.split_file(split)
        require_files([path], f"PASCAL-Context split {split!r}")
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not ids:
            raise DataError(f"{path} lists no image ids")
        return ids

    def check_files(self, ids: Sequence[str], tasks: Iterable[str], split: str) -> None:
        """One DataError listing missing files of the selected tasks (the reference loader asserts all)."""
        kinds = ["image", *dict.fromkeys(k for t in tasks for k in TASK_FILES[t])]
        paths = [getattr(self, kind)(i) for kind in kinds for i in ids]
        require_files(paths, f"PASCAL-Context {split} split under {self.root}")

    # -- human parts index --------------------------------------------------------

    def person_ids(self, split: str, ids: Sequence[str]) -> set[str]:
        """Ids whose annotation has a person object, from the Parts cache (built and saved if missing)."""
        index = self._parts_index(split, ids)
        return {i for i in ids if PERSON_CLASS in index[i]}

    def _parts_index(self, split: str, ids: Sequence[str]) -> dict[str, list[int]]:
        path = self.parts_cache(split)
        if path.is_file():
            try:
                index = json.loads(path.read_text())
            except json.JSONDecodeError as error:
                raise DataError(
                    f"{path}: the human-parts cache is not valid JSON ({error}); delete it to rebuild it"
                ) from None
            if not isinstance(index, dict):
                raise DataError(f"{path}: the human-parts cache must be a JSON object {{id: [class ids]}}")
            if all(i in index for i in ids):
                return {i: [int(c) for c in index[i]] for i in ids}
            log.info("%s does not cover every id of split %r; rebuilding it", path, split)
        log.info("building the human-parts cache %s from %d annotations (done once)", path, len(ids))
        index = {i: object_classes(read_part_objects(self.parts(i))) for i in ids}
        self._write_cache(path, index)
        return index

    @staticmethod
    def _write_cache(path: Path, index: Mapping[str, list[int]]) -> None:
        """Atomic write; a read-only dataset directory only costs the rebuild next time."""
        temporary: Path | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
                temporary = Path(handle.name)
                json.dump(index, handle, indent=0)
            os.replace(temporary, path)
        except OSError as error:
            if temporary is not None:
                temporary.unlink(missing_ok=True)
            log.warning("could not write the human-parts cache %s (%s); it will be rebuilt next run", path, error)
