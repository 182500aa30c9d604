"""A tiny Office-31 in LibMTL's exact layout: JPEGs (some grayscale) and list files with non-alphabetical labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mtlx_testing.fixtures import single_thread  # noqa: F401  (autouse pytest fixture)

#: Deliberately not alphabetical (as in the real list files: back_pack 0, paper_notebook 1, ...).
CLASSES = {"back_pack": 0, "paper_notebook": 1, "bike": 17, "calculator": 30}
SPLIT_SIZES = {"train": 4, "val": 2, "test": 2}
DOMAINS = ("amazon", "dslr", "webcam")


def write_office31(root: Path, seed: int = 0) -> dict[str, dict[str, list[tuple[str, int]]]]:
    """Write images and ``data_txt/office-31/<domain>_<split>.txt``; return ``{domain: {split: [(path, label)]}}``."""
    rng = np.random.default_rng(seed)
    lists_dir = root / "data_txt" / "office-31"
    lists_dir.mkdir(parents=True)
    written: dict[str, dict[str, list[tuple[str, int]]]] = {}
    names = list(CLASSES)
    counter = 0
    for domain in DOMAINS:
        written[domain] = {}
        for split, size in SPLIT_SIZES.items():
            lines = []
            for _ in range(size):
                cls = names[counter % len(names)]
                counter += 1
                relative = f"{domain}/images/{cls}/frame_{counter:04d}.jpg"
                path = root / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
                image = Image.fromarray(pixels)
                if counter % 3 == 0:  # grayscale JPEGs exercise .convert('RGB')
                    image = image.convert("L")
                image.save(path, quality=95)
                lines.append((relative, CLASSES[cls]))
            (lists_dir / f"{domain}_{split}.txt").write_text("".join(f"{p} {label}\n" for p, label in lines))
            written[domain][split] = lines
    return written


@pytest.fixture
def office31(tmp_path: Path) -> tuple[Path, dict[str, dict[str, list[tuple[str, int]]]]]:
    root = tmp_path / "office-31"
    return root, write_office31(root)
