"""Image loading, the network input transform (letterbox or stretch) and its box mapping, in NumPy/OpenCV,
shared by PyTorch, training and every exported runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hoi_edge.core.conventions import CHANNEL_ORDERS, IMAGENET_MEAN, IMAGENET_STD, LETTERBOX, RESIZE_MODES, STRETCH  # noqa: F401
from hoi_edge.core.errors import InputFileError
from hoi_edge.core.noise import quiet_native_stderr


def load_image(path: str | Path) -> np.ndarray:
    """Read an image as RGB uint8 (H,W,3); a clear error for missing or undecodable files."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"image not found: {path}")
    return decode_image(np.fromfile(str(path), dtype=np.uint8), f"image {path}")


def decode_image(data: bytes | np.ndarray, what: str = "image") -> np.ndarray:
    """An encoded image's bytes (a file's, an upload's) as RGB uint8 (H,W,3), decoded as :func:`load_image`
    decodes files; an :class:`InputFileError` naming ``what`` when they are not an image."""
    buf = data if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    with quiet_native_stderr():          # libpng/libjpeg complain on stderr about a corrupt file; we name it
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if image is None:
        raise InputFileError(f"cannot decode {what}: not a supported image file or corrupt")
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
    """A detector's / CLIP's input transform: resize into an S x S square, channel order, normalise.

    ``resize='letterbox'`` scales to fit (aspect kept), padded bottom/right with the mean colour;
    ``'stretch'`` resizes each axis to S (aspect not kept, as upstream NanoDet). ``mean``/``std``
    are in 0..1 pixel units and in the network's channel order (``channels``). Boxes the network
    returns in this input map back to image pixels with :meth:`boxes_to_pixels`, the one rule
    for that (inference, training targets and export share it).
    """

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = LETTERBOX
    channels: str = "rgb"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize mode must be one of {RESIZE_MODES}, not {self.resize!r}")
        if self.channels not in CHANNEL_ORDERS:
            raise ValueError(f"channel order must be one of {CHANNEL_ORDERS}, not {self.channels!r}")

    def scale(self, height: int, width: int) -> float:
        """The letterbox scale (input pixels per image pixel); stretch mode has one per axis, see boxes_to_pixels."""
        return self.size / max(height, width)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """RGB uint8 (H,W,3) -> float32 (1,3,S,S) normalised; padding is 0 after normalisation (the mean colour)."""
        if self.channels == "bgr":
            image = image[..., ::-1]
        resized = resize_to_input(image, self.size, self.resize)
        nh, nw = resized.shape[:2]
        out = np.zeros((1, 3, self.size, self.size), np.float32)
        out[:, :, :nh, :nw] = _normalise(resized, self.mean, self.std)
        return out

    def boxes_to_pixels(self, boxes: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
        """See :func:`boxes_to_pixels`."""
        return boxes_to_pixels(boxes, image_hw, self.size, self.resize)


def resize_to_input(image: np.ndarray, size: int, resize: str = LETTERBOX) -> np.ndarray:
    """The image resized as a network input of side ``size`` wants it, before padding: letterbox scales by
    s = size / max(h, w) to (round(h*s), round(w*s)) (INTER_AREA when shrinking, INTER_LINEAR when enlarging);
    stretch resizes to size x size (INTER_LINEAR, as upstream NanoDet). The one resize rule: the three-unit
    pipeline and an end-to-end artifact's app side (:mod:`hoi_edge.pipeline.end_to_end`) both use it."""
    image = np.ascontiguousarray(image)
    if resize == STRETCH:
        return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    h, w = image.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    return cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR if s > 1 else cv2.INTER_AREA)


def _normalise(resized: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    x = (resized.astype(np.float32) / 255.0 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def boxes_to_pixels(boxes: np.ndarray, image_hw: tuple[int, int], input_size: int,
                    resize: str = LETTERBOX) -> np.ndarray:
    """(N,4) cx,cy,w,h normalised by the network input (0..1) -> (N,4) x1,y1,x2,y2 original-image pixels, clipped.

    Letterbox: one scale for both axes (the longer image side fills the input); stretch: x by the
    image width, y by its height. The one rule for this mapping: instance selection, training
    targets and every backend use it.
    """
    h, w = image_hw
    boxes = np.asarray(boxes, np.float32)
    if resize == LETTERBOX:
        scale = input_size / max(h, w)
        cx, cy, bw, bh = (boxes * input_size / scale).T
    elif resize == STRETCH:
        cx, cy, bw, bh = (boxes * np.asarray([w, h, w, h], np.float32)).T
    else:
        raise ValueError(f"resize mode must be one of {RESIZE_MODES}, not {resize!r}")
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
    return np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)


def pixels_to_boxes(xyxy: np.ndarray, image_hw: tuple[int, int], input_size: int,
                    resize: str = LETTERBOX) -> np.ndarray:
    """The inverse of :func:`boxes_to_pixels` (before its clipping): (N,4) x1,y1,x2,y2 original-image pixels ->
    (N,4) cx,cy,w,h normalised by the network input; where one detector's boxes become another's targets."""
    h, w = image_hw
    x1, y1, x2, y2 = np.asarray(xyxy, np.float32).reshape(-1, 4).T
    cxcywh = np.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], 1)
    if resize == LETTERBOX:
        return (cxcywh / max(h, w)).astype(np.float32)      # (pixels * scale) / input_size, scale = size / max
    if resize == STRETCH:
        return (cxcywh / np.asarray([w, h, w, h], np.float32)).astype(np.float32)
    raise ValueError(f"resize mode must be one of {RESIZE_MODES}, not {resize!r}")
