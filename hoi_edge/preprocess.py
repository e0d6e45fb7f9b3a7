"""Image loading and letterboxing in NumPy/OpenCV, shared by PyTorch and every exported runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hoi_edge.errors import InputFileError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as RGB uint8 (H,W,3); a clear error for missing or undecodable files."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"image not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise InputFileError(f"cannot decode image {path}: not a supported image file or corrupt")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_image(image: np.ndarray, source: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        raise InputFileError(f"{source}: expected an RGB uint8 array of shape (H,W,3), got {shape}")
    if min(image.shape[:2]) < 2:
        raise InputFileError(f"{source}: image of size {image.shape[1]}x{image.shape[0]} is too small")
    return image


@dataclass(frozen=True)
class Letterbox:
    """Scale-to-fit into a square, padded bottom/right: box coords map back with one division."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def scale(self, height: int, width: int) -> float:
        return self.size / max(height, width)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 (H,W,3) -> float32 (1,3,S,S) normalised; padding is 0 after normalisation (the mean colour)."""
        h, w = image.shape[:2]
        s = self.scale(h, w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR if s > 1 else cv2.INTER_AREA)
        x = (resized.astype(np.float32) / 255.0 - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        out = np.zeros((self.size, self.size, 3), np.float32)
        out[:nh, :nw] = x
        return np.ascontiguousarray(out.transpose(2, 0, 1)[None])
