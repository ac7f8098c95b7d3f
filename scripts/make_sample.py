"""Write sample images to try zarrfs on.

    python scripts/make_sample.py [DIRECTORY]

Writes, into DIRECTORY (default: ./samples):
  sample.ome.tif   2-channel z-stack (c=2, z=8, 1536x2048 uint16), tiled 256x256, deflate, physical sizes
  rgb.tif          interleaved RGB uint8 (1000x1500), tiled 256x256, JPEG
  stack.tif        plain striped multi-page uint16 stack (5 pages of 600x700), LZW
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tifffile


def _blobs(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A smooth image with bright spots: compresses like real fluorescence data, unlike pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    image = np.zeros(shape, dtype=np.float64)
    for _ in range(40):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        radius = rng.uniform(10, 60)
        image += rng.uniform(500, 3000) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius**2))
    return image + rng.normal(100, 10, shape)


def write_samples(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stack = (
        np.stack([np.stack([_blobs((1536, 2048), seed=c * 100 + z) for z in range(8)]) for c in range(2)])
        .clip(0, 65535)
        .astype(np.uint16)
    )
    ome = directory / "sample.ome.tif"
    tifffile.imwrite(
        ome,
        stack,
        tile=(256, 256),
        compression="zlib",
        metadata={
            "axes": "CZYX",
            "PhysicalSizeX": 0.65,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 0.65,
            "PhysicalSizeYUnit": "µm",
            "PhysicalSizeZ": 2.0,
            "PhysicalSizeZUnit": "µm",
            "Channel": {"Name": ["DAPI", "GFP"]},
        },
    )
    rgb = directory / "rgb.tif"
    red, green, blue = (_blobs((1000, 1500), seed=s) / 16 for s in (1, 2, 3))
    tifffile.imwrite(
        rgb,
        np.stack([red, green, blue], axis=-1).clip(0, 255).astype(np.uint8),
        tile=(256, 256),
        compression="jpeg",
        photometric="rgb",
    )
    plain = directory / "stack.tif"
    with tifffile.TiffWriter(plain) as writer:
        for page in range(5):
            image = _blobs((600, 700), seed=1000 + page).clip(0, 65535).astype(np.uint16)
            writer.write(image, compression="lzw", rowsperstrip=16, metadata=None)
    return [ome, rgb, plain]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("samples")
    for path in write_samples(target):
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
