"""Reading image files: 16-bit PNGs, EXIF orientation, non-UTF-8 names, and one reader for the whole package."""

import io
import os
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

import lrpjax
from lrpjax.data import pipeline
from lrpjax.io.preprocess import load_image


def _png16(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(values.astype(np.uint16)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_16_bit_grayscale_png_is_scaled_not_clipped_in_every_reader(tmp_path):
    ramp = (np.arange(16 * 16).reshape(16, 16) * 257).astype(np.uint16)  # 0 ... 65535 in steps of 257
    data = _png16(ramp)
    (tmp_path / "gray16.png").write_bytes(data)
    want = np.repeat((ramp // 257).astype(np.uint8)[..., None], 3, -1)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # what PIL's convert("RGB") clips to 255
    np.testing.assert_array_equal(load_image(tmp_path / "gray16.png"), want)
    np.testing.assert_array_equal(pipeline.decode_image(data), want)


def test_exif_orientation_is_applied_on_read(tmp_path):
    pixels = np.zeros((4, 6, 3), np.uint8)
    pixels[0, 0] = (255, 0, 0)  # a red top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", exif=exif)
    (tmp_path / "phone.png").write_bytes(buffer.getvalue())
    want = np.rot90(pixels, k=-1)  # clockwise: 6 x 4, the red corner at the top right
    for got in (load_image(tmp_path / "phone.png"), pipeline.decode_image(buffer.getvalue())):
        assert got.shape == (6, 4, 3)
        np.testing.assert_array_equal(got, want)


def test_only_imagefiles_decodes_and_lists_image_files():
    """One reader and one extension list: no other module opens images with PIL or keeps its own suffixes."""
    root = pathlib.Path(lrpjax.__file__).parent.parent
    offenders = []
    for folder in ("lrpjax", "experiments", "weights_conversion"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if path.name != "imagefiles.py" and (re.search(r"Image\.open\(|\(\"\.png\", \"\.jpg\"", text)):
                offenders.append(str(path.relative_to(root)))
    assert offenders == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX file names are bytes")
def test_a_file_name_that_is_not_utf8_is_skipped_with_its_reason(tmp_path):
    from lrpjax.io.imagefiles import list_image_files

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "ok.png")
    bad = os.path.join(os.fsencode(tmp_path), b"caf\xe9.png")
    with open(bad, "wb") as handle:
        handle.write((tmp_path / "ok.png").read_bytes())
    listing = list_image_files(tmp_path)
    assert listing.ids == ["ok.png"]
    assert len(listing.skipped) == 1 and "caf\\xe9.png" in listing.skipped[0][0]
    assert "not valid UTF-8" in listing.skipped[0][1]
