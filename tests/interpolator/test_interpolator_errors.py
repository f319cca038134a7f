"""Every user mistake is a one-line silkpurse error with a fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from silkpurse.errors import DeviceError, InputError, ModelError, OptionsError
from silkpurse_interpolator.engine import Interpolator
from silkpurse_interpolator.images import interpolate_images


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(ModelError, match="rife-hdv3") as err:
        Interpolator("rife-9.9", device="cpu")
    assert "unknown interpolation model" in str(err.value)


def test_missing_weights_file_and_missing_release_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        Interpolator(tmp_path / "nope.pkl", device="cpu")
    # The 4.x releases have no direct download: the fix says how to import them.
    with pytest.raises(ModelError, match="models import PATH --name rife-4.25"):
        Interpolator("rife-4.25", device="cpu")


def test_bad_options() -> None:
    with pytest.raises(OptionsError, match="rife scale"):
        Interpolator(device="cpu", rife_scale=0.3)
    with pytest.raises(OptionsError, match="fp16"):
        Interpolator(device="cpu", half=True)
    with pytest.raises(OptionsError, match="micro batch 0"):
        Interpolator(device="cpu", micro_batch=0)


def test_cuda_without_gpu_is_a_device_error() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError):
        Interpolator(device="cuda")


def test_bad_frames(hdv3, moving_square) -> None:  # type: ignore[no-untyped-def]
    a, b = moving_square(2)
    with pytest.raises(InputError, match="differ"):
        hdv3.interpolate(a[None], b[None, :32], [0.5])
    with pytest.raises(InputError, match="timesteps"):
        hdv3.interpolate(a[None], b[None], [0.5, 0.5])
    with pytest.raises(InputError, match="outside"):
        hdv3.interpolate(a[None], b[None], [1.5])
    with pytest.raises(InputError, match="dtype"):
        hdv3.interpolate(a[None].astype(np.float32), b[None].astype(np.float32), [0.5])
    with pytest.raises(InputError, match="shape"):
        hdv3.interpolate(a, b, [0.5])


def test_interpolate_images_writes_the_middle_frame(tmp_path: Path, hdv3, moving_square) -> None:  # type: ignore[no-untyped-def]
    a, b = moving_square(2)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b).save(tmp_path / "b.png")
    out = interpolate_images(tmp_path / "a.png", tmp_path / "b.png", tmp_path / "mid.png", interpolator=hdv3)
    mid = np.asarray(Image.open(out))
    np.testing.assert_array_equal(mid, hdv3.interpolate(a[None], b[None], [0.5])[0])


def test_interpolate_images_input_errors(tmp_path: Path, hdv3, moving_square) -> None:  # type: ignore[no-untyped-def]
    a, b = moving_square(2)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(b[:32]).save(tmp_path / "small.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match="does not exist"):
        interpolate_images(tmp_path / "missing.png", tmp_path / "a.png", tmp_path / "o.png", interpolator=hdv3)
    with pytest.raises(InputError, match="cannot read"):
        interpolate_images(tmp_path / "bad.png", tmp_path / "a.png", tmp_path / "o.png", interpolator=hdv3)
    with pytest.raises(InputError, match="differ in size"):
        interpolate_images(tmp_path / "a.png", tmp_path / "small.png", tmp_path / "o.png", interpolator=hdv3)
    with pytest.raises(OptionsError):
        interpolate_images(tmp_path / "a.png", tmp_path / "a.png", tmp_path / "o.png", t=2.0, interpolator=hdv3)
