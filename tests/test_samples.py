"""Reading generated samples (`genbench.samples.load_samples`): folders and arrays, and the bad-input zoo.

Every case is built in tmp_path from tiny deterministic images."""

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genbench import GenbenchError, GenbenchWarning
from genbench.data import content_hash
from genbench.samples import SIZE_AND_CHANNEL_POLICY, SampleSet, TooFewSamples, load_samples


def save(path: Path, array: np.ndarray, mode: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path, **kw)
    return path


def gray(value: int, size=(6, 5)) -> np.ndarray:
    return np.full(size, value, np.uint8)


def png16(path: Path, a: np.ndarray, color_type: int) -> Path:
    """A 16-bit PNG written chunk by chunk (PIL cannot write 16-bit colour): a is (H, W, C) uint16."""
    h, w = a.shape[:2]

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + a[i].astype(">u2").tobytes() for i in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return path


def load(path, **kw) -> tuple[SampleSet, list[str]]:
    """load_samples without a progress bar, and the GenbenchWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = load_samples(path, progress=False, **kw)
    return s, [str(w.message) for w in caught if issubclass(w.category, GenbenchWarning)]


# --- folders --------------------------------------------------------------------------------------------------


def test_folder_nested_sorted_deterministic(tmp_path):
    for i, rel in enumerate(["b/1.png", "a.png", "b/0.PNG", "c/d/e.bmp", "c/z.JPEG"]):
        save(tmp_path / rel, gray(10 * i), "L", **({"quality": 100} if rel.endswith("JPEG") else {}))
    (tmp_path / "notes.txt").write_text("not an image")
    s, warned = load(tmp_path)
    assert warned == [] and isinstance(s, SampleSet)
    assert s.images.shape == (5, 1, 6, 5) and s.images.dtype == np.uint8 and not s.images.flags.writeable
    assert s.images[:, 0, 0, 0].tolist() == [10, 20, 0, 30, 40]  # a.png, b/0.PNG, b/1.png, c/d/e.bmp, c/z.JPEG
    assert s.source == str(tmp_path) and s.files == len(s) == 5 and s.skipped == ()
    assert s.content_hash == content_hash(np.array(s.images), None)

    again, _ = load(tmp_path, workers=1)  # single-threaded decoding gives the same set
    threaded, _ = load(tmp_path, workers=4)
    assert again.content_hash == threaded.content_hash == s.content_hash
    assert np.array_equal(again.images, s.images)


def test_folder_and_array_of_the_same_images_hash_alike(tmp_path):
    x = np.arange(3 * 5 * 6 * 3, dtype=np.uint8).reshape(3, 5, 6, 3)  # (N, H, W, C)
    for i in range(3):
        save(tmp_path / "png" / f"{i}.png", x[i], "RGB")
    np.save(tmp_path / "x.npy", np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    a, _ = load(tmp_path / "png")
    b, _ = load(tmp_path / "x.npy")
    assert np.array_equal(a.images, x.transpose(0, 3, 1, 2)) and a.content_hash == b.content_hash


def test_gray_colour_palette_and_alpha(tmp_path):
    save(tmp_path / "0.png", gray(50, (4, 4)), "L")
    save(tmp_path / "1.jpg", np.full((4, 4, 3), (255, 0, 0), np.uint8), "RGB", quality=95)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 200, 0  # fully transparent green: the green is kept
    save(tmp_path / "2.png", rgba, "RGBA")
    pal = Image.fromarray(np.full((4, 4), 1, np.uint8), "P")
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.save(tmp_path / "3.png")
    save(tmp_path / "4.png", np.dstack([gray(70, (4, 4)), gray(0, (4, 4))]), "LA")
    save(tmp_path / "5.webp", np.full((4, 4, 3), (0, 0, 255), np.uint8), "RGB", lossless=True)
    s, warned = load(tmp_path)
    assert s.images.shape == (6, 3, 4, 4)
    assert s.images[0, :, 0, 0].tolist() == [50, 50, 50]  # gray copied to RGB once any image is in colour
    assert s.images[1, 0].min() > 240 and s.images[1, 1:].max() < 15  # jpeg-compressed red
    assert s.images[2, :, 0, 0].tolist() == [0, 200, 0]
    assert s.images[3, :, 0, 0].tolist() == [10, 20, 30]  # palette expanded
    assert s.images[4, :, 0, 0].tolist() == [70, 70, 70]
    assert s.images[5, :, 0, 0].tolist() == [0, 0, 255]
    alpha = [w for w in warned if "transparent" in w]
    assert len(alpha) == 1 and "2 image(s)" in alpha[0] and "2.png" in alpha[0]
    # the mix is named: 4 colour files among 2 grayscale ones (0.png, and 4.png without its alpha)
    mixed = [w for w in warned if "in colour" in w]
    assert len(mixed) == 1 and "4 of the 6 images" in mixed[0] and "1.jpg" in mixed[0] and "read as RGB" in mixed[0]


def test_all_grayscale_stays_one_channel_and_channels_argument(tmp_path):
    save(tmp_path / "g/a.png", gray(5), "L")
    save(tmp_path / "g/b.png", np.dstack([gray(9)] * 3), "RGB")  # a colour file holding gray values
    s, warned = load(tmp_path / "g")
    assert s.images.shape == (2, 1, 6, 5) and s.images[:, 0, 0, 0].tolist() == [5, 9]  # among grayscale: gray
    assert len(warned) == 1 and "b.png" in warned[0] and "read as grayscale" in warned[0]
    save(tmp_path / "rgb/b.png", np.dstack([gray(9)] * 3), "RGB")  # colour files only: kept as they are
    assert load(tmp_path / "rgb")[0].images.shape == (1, 3, 6, 5)
    one, _ = load(tmp_path / "g", channels=1)
    assert one.images.shape == (2, 1, 6, 5) and one.images[:, 0, 0, 0].tolist() == [5, 9]

    save(tmp_path / "l/a.png", gray(5), "L")
    assert load(tmp_path / "l")[0].images.shape == (1, 1, 6, 5)
    rgb, _ = load(tmp_path / "l", channels=3)
    assert rgb.images.shape == (1, 3, 6, 5) and (rgb.images == 5).all()

    save(tmp_path / "c/a.png", np.full((6, 5, 3), (1, 2, 3), np.uint8), "RGB")
    with pytest.raises(GenbenchError, match=r"a\.png is in colour.*channels=1"):
        load(tmp_path / "c", channels=1)
    with pytest.raises(GenbenchError, match="channels must be None, 1 or 3"):
        load(tmp_path / "c", channels=4)


def test_16_bit_images_are_refused_with_the_conversion(tmp_path):
    save(tmp_path / "g16/a.png", np.full((4, 4), 40000, np.uint16))
    assert Image.open(tmp_path / "g16/a.png").mode.startswith("I;16")
    with pytest.raises(GenbenchError, match=r"(?s)g16/a\.png has 16 bits.*round\(v16 / 257\)"):
        load(tmp_path / "g16")
    (tmp_path / "c16").mkdir()
    png16(tmp_path / "c16/a.png", np.full((4, 4, 3), 40000, np.uint16), color_type=2)  # PIL reads it as "RGB"
    with pytest.raises(GenbenchError, match=r"c16/a\.png has 16 bits"):
        load(tmp_path / "c16", strict=True)
    # not strict: one 16-bit file among 8-bit ones is skipped and listed, with the conversion
    save(tmp_path / "mixed/a.png", gray(3), "L")
    save(tmp_path / "mixed/b.png", np.full((6, 5), 40000, np.uint16))
    save(tmp_path / "mixed/c.png", gray(4), "L")
    s, warned = load(tmp_path / "mixed")
    assert s.images[:, 0, 0, 0].tolist() == [3, 4] and len(s.skipped) == 1 and "b.png: 16 bits" in s.skipped[0]
    assert len(warned) == 1 and "b.png" in warned[0] and "round(v16 / 257)" in warned[0]
    with pytest.raises(GenbenchError, match=r"(?s)mixed/b\.png has 16 bits.*round\(v16 / 257\)"):
        load(tmp_path / "mixed", strict=True)


def test_gray_pictures_in_palette_or_cmyk_files_among_grayscale_ones_are_grayscale(tmp_path):
    for i in range(3):
        save(tmp_path / f"g/{i}.png", gray(10 * i), "L")
    pal = Image.fromarray(np.full((6, 5), 2, np.uint8), "P")
    pal.putpalette([v for g in (0, 100, 200) for v in (g, g, g)] + [0] * 759)  # a palette of grays
    pal.save(tmp_path / "g/3.png")
    Image.fromarray(np.dstack([gray(0)] * 3 + [gray(155)]), "CMYK").save(tmp_path / "g/4.jpg", quality=100)
    s, warned = load(tmp_path / "g")
    assert s.images.shape == (5, 1, 6, 5)
    assert s.images[3, 0, 0, 0] == 200 and abs(int(s.images[4, 0, 0, 0]) - 100) <= 2  # K 155: 255 - 155
    assert len(warned) == 1 and "4.jpg" in warned[0] and "3.png" not in warned[0]  # the palette is gray: silent
    # a colour palette among grayscale images: RGB, and the warning names it
    pal.putpalette([0, 0, 0, 0, 0, 0, 250, 0, 0] + [0] * 759)
    pal.save(tmp_path / "g/3.png")
    s, warned = load(tmp_path / "g")
    assert s.images.shape == (5, 3, 6, 5) and s.images[3, :, 0, 0].tolist() == [250, 0, 0]
    assert len(warned) == 1 and "2 of the 5 images" in warned[0] and "3.png" in warned[0] and "4.jpg" in warned[0]


def corrupt_zoo(root: Path) -> list[str]:
    """Two good images and four bad ones; returns the names of the bad ones, in sorted order."""
    save(root / "good0.png", gray(1), "L")
    save(root / "sub/good1.png", gray(2), "L")
    (root / "notes.png").write_text("this is text, not a PNG")
    (root / "empty.jpg").write_bytes(b"")
    whole = save(root / "tmp.png", np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8), "RGB")
    (root / "half.png").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    save(root / "tmp.jpg", np.random.default_rng(1).integers(0, 256, (32, 32, 3), np.uint8), "RGB")
    (root / "half.jpeg").write_bytes((root / "tmp.jpg").read_bytes()[:300])
    (root / "tmp.jpg").unlink()
    return ["empty.jpg", "half.jpeg", "half.png", "notes.png"]


def test_corrupt_files_are_skipped_with_one_warning(tmp_path):
    bad = corrupt_zoo(tmp_path)
    s, warned = load(tmp_path)
    assert s.images[:, 0, 0, 0].tolist() == [1, 2] and s.files == 2
    assert [Path(x.split(": ")[0]).name for x in s.skipped] == bad
    reasons = [x.split(": ", 1)[1] for x in s.skipped]  # "path: reason"
    assert reasons[0] == "empty file (0 bytes)" and "truncated" in reasons[2] and "not an image file" in reasons[3]
    assert len(warned) == 1
    assert "skipped 4 unreadable" in warned[0] and all(name in warned[0] for name in bad) and "strict" in warned[0]


def test_strict_makes_the_first_unreadable_file_an_error(tmp_path):
    corrupt_zoo(tmp_path)
    with pytest.raises(GenbenchError, match=r"cannot read image .*empty\.jpg.*Replace or delete"):
        load(tmp_path, strict=True)


def test_all_files_corrupt_is_an_error(tmp_path):
    (tmp_path / "a.png").write_text("nope")
    (tmp_path / "b.jpg").write_bytes(b"")
    with pytest.raises(GenbenchError, match=r"none of the 2 image files under .* could be read, e\.g\. .*a\.png"):
        load(tmp_path)


def test_mixed_sizes_name_one_file_of_each_size(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        save(tmp_path / name, gray(0, (4, 4)), "L")
    save(tmp_path / "d/e.png", gray(0, (8, 6)), "L")
    with pytest.raises(GenbenchError) as err:
        load(tmp_path)
    msg = str(err.value)
    assert "2 different sizes" in msg and "a.png is 4x4 (3 image(s)" in msg and "e.png is 6x8 (1 image(s)" in msg
    assert "Resize them all to one size" in msg


def test_symlink_loop_is_skipped_and_symlinked_files_are_read(tmp_path):
    root = tmp_path / "samples"
    save(root / "a.png", gray(1), "L")
    save(root / "sub/b.png", gray(2), "L")
    os.symlink(root, root / "sub" / "loop")  # a folder leading back to an ancestor
    os.symlink(root / "sub", root / "again")  # a second way to a folder
    save(tmp_path / "elsewhere/c.png", gray(3), "L")
    os.symlink(tmp_path / "elsewhere" / "c.png", root / "c.png")  # symlinked files are fine
    s, warned = load(root)
    assert s.images[:, 0, 0, 0].tolist() == [1, 3, 2]  # a.png, c.png, sub/b.png; again/ and sub/loop left out
    assert len(warned) == 1 and "symlink loop" in warned[0] and "second way to the same folder" in warned[0]
    assert s.skipped == ()


def test_missing_empty_and_wrong_kinds_of_path(tmp_path):
    with pytest.raises(GenbenchError, match=r"missing do not exist"):
        load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("")
    looked = r"no images in .*empty.*\.png, \.jpg, \.jpeg, \.webp, \.bmp.*\.npy / \.npz"
    with pytest.raises(GenbenchError, match=looked):
        load(tmp_path / "empty")
    one = save(tmp_path / "one.png", gray(0), "L")
    with pytest.raises(GenbenchError, match=r"one\.png is a single image; pass the folder"):
        load(one)
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(GenbenchError, match=r"x\.csv is neither a folder of images nor a \.npy / \.npz file"):
        load(tmp_path / "x.csv")


# --- num_samples ----------------------------------------------------------------------------------------------


def test_num_samples_takes_the_first_readable_in_order(tmp_path):
    for i in range(5):
        save(tmp_path / f"{i}.png", gray(i), "L")
    (tmp_path / "1a.png").write_text("broken")  # sorts between 1.png and 2.png
    s, warned = load(tmp_path, num_samples=3)
    assert s.images[:, 0, 0, 0].tolist() == [0, 1, 2] and len(warned) == 1 and "1a.png" in warned[0]
    assert load(tmp_path, num_samples=2)[0].images[:, 0, 0, 0].tolist() == [0, 1]

    with pytest.raises(TooFewSamples, match=r"10 samples were asked for, but .* holds 5 readable image\(s\) "
                                            r"\(1 skipped\)") as err:
        load(tmp_path, num_samples=10)
    assert err.value.found == 5 and err.value.requested == 10 and len(err.value.samples) == 5
    assert isinstance(err.value, GenbenchError)
    with pytest.raises(GenbenchError, match="num_samples must be a positive"):
        load(tmp_path, num_samples=0)


def test_num_samples_on_arrays(tmp_path):
    x = np.arange(4 * 5 * 5, dtype=np.uint8).reshape(4, 5, 5)
    np.save(tmp_path / "x.npy", x)
    s, _ = load(tmp_path / "x.npy", num_samples=2)
    assert np.array_equal(s.images[:, 0], x[:2]) and s.files == 2
    with pytest.raises(TooFewSamples, match=r"holds 4 image\(s\)") as err:
        load(tmp_path / "x.npy", num_samples=5)
    assert err.value.found == 4 and err.value.samples.content_hash == load(tmp_path / "x.npy")[0].content_hash


# --- arrays ---------------------------------------------------------------------------------------------------


def reference_nchw(c: int) -> np.ndarray:
    return (np.arange(2 * c * 6 * 5) % 251).astype(np.uint8).reshape(2, c, 6, 5)


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_npy_layouts(tmp_path, c, layout):
    x = reference_nchw(c)
    stored = x if layout == "NCHW" else x.transpose(0, 2, 3, 1)
    np.save(tmp_path / "x.npy", np.ascontiguousarray(stored))
    s, warned = load(tmp_path / "x.npy")
    assert np.array_equal(s.images, x) and warned == [] and s.source == str(tmp_path / "x.npy")


def test_npy_grayscale_rgba_and_fortran_order(tmp_path):
    x = reference_nchw(1)
    np.save(tmp_path / "g.npy", x[:, 0])  # (N, H, W)
    assert np.array_equal(load(tmp_path / "g.npy")[0].images, x)
    np.save(tmp_path / "f.npy", np.asfortranarray(x))
    assert np.array_equal(load(tmp_path / "f.npy")[0].images, x)

    rgba = reference_nchw(4)
    np.save(tmp_path / "rgba.npy", np.ascontiguousarray(rgba.transpose(0, 2, 3, 1)))  # (N, H, W, 4)
    s, warned = load(tmp_path / "rgba.npy")
    assert np.array_equal(s.images, rgba[:, :3]) and len(warned) == 1 and "alpha" in warned[0]
    rgb, _ = load(tmp_path / "g.npy", channels=3)
    assert rgb.images.shape == (2, 3, 6, 5) and (rgb.images == x).all()


def test_array_shapes_that_cannot_be_read(tmp_path):
    cases = {
        "ambiguous": (np.zeros((2, 3, 4, 3), np.uint8), r"cannot tell whether shape \(2, 3, 4, 3\)"),
        "nochannel": (np.zeros((2, 5, 6, 7), np.uint8), r"no channel axis of size 1, 3 or 4"),
        "single": (np.zeros((6, 5), np.uint8), r"x\[None\]"),
        "empty": (np.zeros((0, 6, 5), np.uint8), r"holds no images"),
    }
    for name, (a, pattern) in cases.items():
        np.save(tmp_path / f"{name}.npy", a)
        with pytest.raises(GenbenchError, match=rf"{name}\.npy.*{pattern}"):
            load(tmp_path / f"{name}.npy")


def test_npz_key_variants(tmp_path):
    x = reference_nchw(3)
    np.savez(tmp_path / "images.npz", labels=np.zeros(2), images=x)
    np.savez(tmp_path / "positional.npz", x, np.zeros(3))  # arr_0, arr_1
    np.savez_compressed(tmp_path / "only.npz", samples=x)
    for name in ("images", "positional", "only"):
        assert np.array_equal(load(tmp_path / f"{name}.npz")[0].images, x), name

    np.savez(tmp_path / "two.npz", fake=x, real=x)
    with pytest.raises(GenbenchError, match=r"two\.npz holds the arrays fake, real.*'images'"):
        load(tmp_path / "two.npz")
    np.savez(tmp_path / "stats.npz", mu=np.zeros(3), sigma=np.eye(3))
    with pytest.raises(GenbenchError, match=r"Fréchet statistics"):
        load(tmp_path / "stats.npz")
    np.savez(tmp_path / "nothing.npz")
    with pytest.raises(GenbenchError, match=r"nothing\.npz holds no arrays"):
        load(tmp_path / "nothing.npz")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(GenbenchError, match=r"cannot read .*broken\.npz"):
        load(tmp_path / "broken.npz")


def test_object_arrays_are_never_unpickled(tmp_path, monkeypatch):
    import pickle

    def refuse(*a, **k):
        raise AssertionError("genbench must not unpickle")

    objects = np.empty(2, dtype=object)
    objects[0], objects[1] = np.zeros((4, 4), np.uint8), np.ones((4, 4), np.uint8)
    np.savez(tmp_path / "obj.npz", images=objects)
    np.save(tmp_path / "obj.npy", objects, allow_pickle=True)
    (tmp_path / "pickled.npy").write_bytes(pickle.dumps([1, 2, 3]))
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    for name in ("obj.npz", "obj.npy", "pickled.npy"):
        with pytest.raises(GenbenchError, match=rf"{name}.*never unpickles"):
            load(tmp_path / name)


def test_float_arrays(tmp_path):
    x = np.array([0.0, 0.5, 1.0, 1 / 255, 0.2]).reshape(1, 1, 1, 5).repeat(2, axis=0)
    np.save(tmp_path / "unit.npy", x.astype(np.float32))
    s, warned = load(tmp_path / "unit.npy")
    assert s.images[0, 0, 0].tolist() == [0, 128, 255, 1, 51]  # floor(255 x + 0.5)
    assert len(warned) == 1 and "floor(255 * x + 0.5)" in warned[0]

    whole = np.array([0.0, 7.0, 255.0, 100.0]).reshape(1, 1, 2, 2)
    np.save(tmp_path / "whole.npy", whole)
    s, warned = load(tmp_path / "whole.npy")
    assert s.images.ravel().tolist() == [0, 7, 255, 100] and warned == []

    np.save(tmp_path / "frac.npy", whole * 0.5 + 0.25)
    with pytest.raises(GenbenchError, match=r"frac\.npy.*not all whole numbers.*np\.floor\(x \+ 0\.5\)"):
        load(tmp_path / "frac.npy")
    np.save(tmp_path / "signed.npy", whole / 127.5 - 1)
    with pytest.raises(GenbenchError, match=r"signed\.npy.*from -1 to 1.*clip.*\(x \+ 1\) \* 127\.5"):
        load(tmp_path / "signed.npy")


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_name_the_count_and_first_index(tmp_path, bad_value):
    x = np.full((3, 4, 4), 0.5, np.float32)
    x[1, 2, 3] = bad_value
    x[2, 0, 0] = bad_value
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(GenbenchError, match=r"x\.npy: 2 value\(s\) are NaN or infinite, the first at index "
                                            r"\(1, 2, 3\) of shape \(3, 4, 4\)"):
        load(tmp_path / "x.npy")


def test_integer_arrays(tmp_path):
    x = reference_nchw(1)
    np.save(tmp_path / "i64.npy", x.astype(np.int64))
    assert np.array_equal(load(tmp_path / "i64.npy")[0].images, x)
    np.save(tmp_path / "u16.npy", x.astype(np.uint16) * 257)
    with pytest.raises(GenbenchError, match=r"u16\.npy.*run from 0 to 15163.*x / 257"):
        load(tmp_path / "u16.npy")
    np.save(tmp_path / "bool.npy", x > 100)
    with pytest.raises(GenbenchError, match=r"bool\.npy.*dtype bool.*\* 255"):
        load(tmp_path / "bool.npy")
    np.save(tmp_path / "binary.npy", (x > 30).astype(np.uint8))
    s, warned = load(tmp_path / "binary.npy")
    assert s.images.max() == 1 and len(warned) == 1 and "0 or 1" in warned[0]


def test_policy_text_names_the_rules():
    for words in ("never resizes", "RGB", "alpha", "16-bit", "--strict", "[0, 1]", "NaN"):
        assert words in SIZE_AND_CHANNEL_POLICY


def test_broken_symlink_is_an_unreadable_file(tmp_path):
    save(tmp_path / "a.png", gray(1), "L")
    os.symlink(tmp_path / "gone.png", tmp_path / "b.png")
    s, warned = load(tmp_path)
    assert len(s) == 1 and s.skipped == (f"{tmp_path / 'b.png'}: the file is gone (a broken symlink?)",)
    assert len(warned) == 1 and "b.png" in warned[0]
    with pytest.raises(GenbenchError, match="workers must be a positive"):
        load(tmp_path, workers=0)
