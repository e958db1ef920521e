import io
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import TRUNCATED
from PIL import Image
from sklearn.datasets import load_sample_images

from facessl.config import DETECTORS, Preprocessing
from facessl.data import faces, mtcnn
from facessl.data.cache import decode_face
from facessl.data.faces import (
    Box,
    crop_like_lfw,
    cut_face,
    detect_faces,
    faces_in_photo,
)
from facessl.data.photos import load_photo
from facessl.errors import FacesslError


@pytest.fixture(scope="module")
def photos(tiny_lfw) -> list:
    """Paths of 40 real LFW photos (the truncated one left out)."""
    files = sorted(p for p in tiny_lfw["folder"].glob("*/*.jpg") if not p.match(f"*/{TRUNCATED}"))
    return files[:40]


@pytest.fixture(scope="module")
def single(photos) -> list:
    """LFW photos in which the detector finds exactly one face."""
    return [p for p in photos if len(detect_faces(load_photo(p))) == 1]


def _centred(box: Box, cx: float = 125, cy: float = 125, tolerance: float = 20) -> bool:
    return abs(box.x + box.w / 2 - cx) < tolerance and abs(box.y + box.h / 2 - cy) < tolerance


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("detector", DETECTORS)
def test_finds_the_centred_face_in_lfw_photos(photos, detector):
    found = [detect_faces(load_photo(p), detector=detector) for p in photos]
    centred = [next((b for b in boxes if _centred(b)), None) for boxes in found]
    hits = [b for b in centred if b is not None]
    assert len(hits) >= (0.97 if detector == "mtcnn" else 0.9) * len(photos)
    assert all(boxes == sorted(boxes, key=lambda b: -b.w * b.h) for boxes in found)
    if detector == "haar":
        assert all(90 < b.w < 150 and b.w == b.h and b.score >= 5 for b in hits)
        return
    for b in hits:  # MTCNN: a probability, and the eyes above the nose above the mouth
        (lx, ly), (rx, ry), (_, ny), (mlx, mly), (mrx, mry) = b.landmarks
        assert 70 < b.w < 130 and b.score > 0.9
        assert b.x < lx < rx < b.x + b.w and max(ly, ry) < ny < min(mly, mry) < b.y + b.h
        assert b.x < mlx < mrx < b.x + b.w


@pytest.mark.parametrize("detector", DETECTORS)
def test_two_faces_side_by_side_largest_first(single, detector):
    left, right = load_photo(single[0]), load_photo(single[1]).resize((175, 175))
    photo = Image.new("RGB", (425, 250), "grey")
    photo.paste(left, (0, 0))
    photo.paste(right, (250, 37))
    boxes = detect_faces(photo, detector=detector)
    assert len(boxes) == 2
    big, small = boxes
    assert _centred(big) and _centred(small, 250 + 87.5, 37 + 87.5, tolerance=15)
    assert small.w < big.w
    assert detect_faces(photo, largest_only=True, detector=detector) == [big]


@pytest.mark.parametrize("detector", DETECTORS)
def test_no_faces_in_gradients_and_textures(detector):
    y, x = np.mgrid[0:300, 0:400]
    gradient = np.stack([x * 255 / 400, y * 255 / 300, (x + y) * 255 / 700], -1)
    stripes = np.repeat((127 + 100 * np.sin(x / 7) * np.cos(y / 11))[..., None], 3, -1)
    noise = np.random.default_rng(0).random((300, 400, 3)) * 255
    for pixels in (gradient, stripes, noise):
        assert detect_faces(Image.fromarray(pixels.astype(np.uint8)), detector=detector) == []


def test_mtcnn_finds_no_face_in_photos_without_people():
    """scikit-learn's sample photos: a temple in China and a flower."""
    for photo in load_sample_images().images:
        assert detect_faces(Image.fromarray(photo), detector="mtcnn") == []


def test_exif_rotation_is_applied(single):
    upright = load_photo(single[0]).crop((0, 0, 250, 210))  # not square: the size tells
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a sideways camera stores it
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    data = _encode(stored, "JPEG", quality=95, exif=exif)
    # the cascade finds upright faces only: none until the rotation is applied
    assert detect_faces(Image.open(io.BytesIO(data)).convert("RGB"), detector="haar") == []
    photo = load_photo(data)
    assert photo.size == (250, 210)
    difference = np.abs(np.asarray(photo, float) - np.asarray(upright, float)).mean()
    assert difference < 4
    assert any(_centred(b) for b in detect_faces(photo, detector="haar"))


@pytest.mark.parametrize("mode, fmt", [("RGBA", "PNG"), ("L", "JPEG"), ("CMYK", "JPEG"),
                                       ("P", "PNG"), ("RGB", "WEBP"), ("I;16", "PNG")])
def test_any_mode_and_format_loads_as_rgb(single, tmp_path, mode, fmt):
    original = load_photo(single[0])
    if mode == "I;16":
        grey = np.asarray(original.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(grey)
    else:
        image = original.convert(mode)
    if mode == "RGBA":
        image.putalpha(Image.new("L", image.size, 255))
        image.paste((0, 0, 0, 0), (0, 0, 30, 30))  # a transparent corner
    file = tmp_path / f"photo.{fmt.lower()}"
    file.write_bytes(_encode(image, fmt))
    photo = load_photo(file)
    assert photo.mode == "RGB" and photo.size == original.size
    if mode == "RGBA":
        assert (np.asarray(photo)[:30, :30] == 255).all()  # composited on white
    assert any(_centred(b) for b in detect_faces(photo))


def test_unreadable_files_are_refused_with_their_name(tmp_path):
    text = tmp_path / "holiday.jpg"
    text.write_text("these are my notes, not a photo\n")
    with pytest.raises(FacesslError, match=r"holiday\.jpg is not an image .*JPEG, PNG or WebP"):
        load_photo(text)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(FacesslError, match=r"empty\.png is empty \(0 bytes\)"):
        load_photo(empty)
    with pytest.raises(FacesslError, match="missing.jpg does not exist"):
        load_photo(tmp_path / "missing.jpg")
    with pytest.raises(FacesslError, match="upload.jpg is not an image"):
        load_photo(b"GIF? no", name="upload.jpg")


def test_jpeg_cut_inside_its_header_is_refused(single):
    data = single[0].read_bytes()[:300]
    with pytest.raises(FacesslError, match="is damaged and cannot be decoded"):
        load_photo(data, name="cut.jpg")


def test_truncated_lfw_jpeg_loads_with_a_warning(tiny_lfw):
    with pytest.warns(UserWarning, match="truncated"):
        photo = load_photo(tiny_lfw["folder"] / TRUNCATED)
    assert photo.mode == "RGB" and photo.size == (250, 250)
    assert np.asarray(photo)[:60].std() > 5  # the part that decodes is a real photo


@pytest.mark.parametrize("detector, limit", [("haar", 20), ("mtcnn", 26)])
def test_detector_cuts_look_like_lfw_central_crops(single, detector, limit):
    prep = Preprocessing(crop=128, size=64)
    central, detected = [], []
    for path in single:
        photo = load_photo(path)
        box = next((b for b in detect_faces(photo, detector=detector) if _centred(b)), None)
        if box is not None:
            central.append(decode_face(path.read_bytes(), prep)[0].astype(float))
            detected.append(cut_face(photo, box, prep).astype(float))
    central, detected = np.stack(central), np.stack(detected)
    assert detected.shape[1:] == (64, 64, 3)
    # Measured on 401 LFW photos (benchmarks/face_crop_check.py): Haar box crops 14.5 grey
    # levels on average, MTCNN aligned cuts 20.1; two different LFW faces differ by 55.5.
    same = np.abs(central - detected).mean()
    others = np.abs(central - np.roll(central, 1, axis=0)).mean()
    assert same < limit and others > 2 * same


def test_alignment_undoes_a_tilted_head(single):
    """A photo turned by 15 degrees is cut upright again: its aligned cut is close to the
    upright photo's, far closer than a cut around its box is."""
    prep = Preprocessing(crop=128, size=64)
    upright = load_photo(single[0])
    tilted = upright.rotate(15, resample=Image.Resampling.BILINEAR)
    cuts = []
    for photo in (upright, tilted):
        box = next(b for b in detect_faces(photo, detector="mtcnn") if _centred(b))
        cuts.append((cut_face(photo, box, prep).astype(float),
                     crop_like_lfw(photo, box, prep).astype(float)))
    (aligned, boxed), (tilted_aligned, tilted_boxed) = cuts
    assert np.abs(aligned - tilted_aligned).mean() < 0.6 * np.abs(boxed - tilted_boxed).mean()


def test_missing_mtcnn_weights_say_what_to_install(monkeypatch):
    monkeypatch.setattr(mtcnn, "WEIGHTS_PACKAGE", "facenet_pytorch_not_installed")
    assert faces.default_detector() == "haar"
    with pytest.raises(FacesslError, match=r"pip install --no-deps facenet-pytorch==2\.6\.0"):
        mtcnn.weights_folder()


def test_crops_keep_the_preprocessing_and_pad_outside_the_photo(single):
    photo = load_photo(single[0])
    corner = crop_like_lfw(photo, Box(-50, -50, 100, 100, 1), Preprocessing(200, 48, True))
    assert corner.shape == (48, 48, 1) and corner.dtype == np.uint8
    assert (corner[:10, :10] == 0).all() and corner[-10:, -10:].std() > 0
    found = faces_in_photo(photo, Preprocessing(crop=128, size=32))
    assert len(found) == 1 and found[0][1].shape == (32, 32, 3)


def test_min_size_below_the_detector_window_is_refused(single):
    with pytest.raises(FacesslError, match="min_size must be at least 24 px.*got 10"):
        detect_faces(load_photo(single[0]), min_size=10)


def test_cascade_loads_on_first_use_and_missing_file_says_what_to_install(monkeypatch, tmp_path):
    code = "import facessl.data.faces as f; assert f._cascade.cache_info().currsize == 0"
    subprocess.run([sys.executable, "-c", code], check=True)
    faces._cascade.cache_clear()
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path))
    try:
        with pytest.raises(FacesslError, match=r"pip install 'opencv-python-headless<5'"):
            detect_faces(Image.new("RGB", (100, 100)), detector="haar")
    finally:
        faces._cascade.cache_clear()


def test_caches_of_detected_faces_are_named_by_the_detector_settings(monkeypatch):
    assert faces.detector_tag("haar") == "haar"
    before = faces.detector_tag("mtcnn")
    monkeypatch.setattr(mtcnn, "THRESHOLDS", (0.6, 0.7, 0.7))
    assert faces.detector_tag("mtcnn") != before  # a face space cut otherwise is not reused
    thresholds_changed = faces.detector_tag("mtcnn")
    monkeypatch.setattr(faces, "ALIGN_BORDER", "black")
    assert faces.detector_tag("mtcnn") != thresholds_changed  # nor one filled otherwise


def test_a_headshot_cut_tight_is_aligned_without_black_borders(single):
    """Where the aligned frame leaves the photo (a face filling a tight headshot), the
    photo's edge is mirrored in: no black band that every such face would share."""
    prep = Preprocessing(crop=128, size=96)
    photo = load_photo(single[0])
    frame, full = (cut_face(p, detect_faces(p, detector="mtcnn", largest_only=True)[0], prep)
                   for p in (photo.crop((70, 70, 180, 180)), photo))
    dark = (frame.max(2) < 8).mean(0)  # share of near-black pixels in each column
    assert dark.max() < 0.5, "a black band where the photo ended"
    assert np.abs(frame[30:66, 30:66].astype(float) - full[30:66, 30:66]).mean() < 12
