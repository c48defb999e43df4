"""Parse and store uploaded datasets (CSV, .npz) as x.npy / y.npy under a content-named folder, or,
for a model's named inputs and outputs, as x_<input>.npy / y_<output>.npy.

Nothing here trusts a file name: storage names come from the content hash, and every rejection
says what is wrong in terms of the user's file (row, column, array name).
"""

import csv
import hashlib
import math
import shutil
import uuid
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import pyarrow as pa
from pyarrow import csv as pa_csv

from app.named_arrays import Arrays, valid_name

CHUNK = 1024 * 1024
# Stored labels are int32 or float32 (see _labels).
LABEL_BYTES = 4
NUMERIC_KINDS = "biuf"
# A CSV feature column `age@demo` is column `age` of the model input `demo`.
GROUP_SEPARATOR = "@"
SIDES = ("x", "y")


class DatasetRejected(Exception):
    """The upload is not a usable dataset; the message says why in the user's terms."""


class StoredTooLarge(Exception):
    """The dataset would take more than its limit once expanded; the message names the array and its size."""


@dataclass(frozen=True)
class StoredLimit:
    """The most bytes a dataset may take on disk once parsed, and which limit that is, in words."""

    max_bytes: int
    described: str


UNLIMITED = StoredLimit(2**63, "no limit")


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is larger than the {limit:,}-byte limit")
        self.limit = limit


@dataclass(frozen=True)
class Upload:
    path: Path
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class StoredArrays:
    storage_key: str
    n_samples: int
    x_shape: list[int]
    y_shape: list[int]
    x_dtype: str
    y_dtype: str
    stored_bytes: int
    # Every stored array as {role, name, shape, dtype} when a side is named (name None for plain x / y);
    # None when the dataset is one x and one y.
    arrays: list[dict[str, Any]] | None = None


def receive(stream: BinaryIO, uploads_dir: Path, max_bytes: int) -> Upload:
    """Copy an upload to disk in chunks, hashing as it goes, so memory stays flat whatever the size."""
    uploads_dir.mkdir(parents=True, exist_ok=True)
    path = uploads_dir / f"{uuid.uuid4().hex}.upload"
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Upload(path=path, sha256=digest.hexdigest(), size_bytes=size)


def detect_format(upload: Upload, filename: str | None) -> str:
    if upload.size_bytes == 0:
        raise DatasetRejected("the file is empty")
    with upload.path.open("rb") as f:
        magic = f.read(4)
    suffix = Path(filename or "").suffix.lower()
    if magic == b"PK\x03\x04":
        if suffix not in ("", ".npz", ".zip"):
            raise DatasetRejected(f"the file is a zip archive but is named {suffix!r}; send an .npz")
        return "npz"
    if suffix in ("", ".csv", ".txt"):
        return "csv"
    raise DatasetRejected(f"unknown format {suffix!r}: send a CSV with a header row or an .npz with arrays x and y")


def store_csv(upload: Upload, target: str | None, datasets_dir: Path, limit: StoredLimit = UNLIMITED) -> StoredArrays:
    header = _csv_header(upload.path)
    if len(header) < 2:
        raise DatasetRejected(f"the CSV needs at least two columns (features and a label); its header has {len(header)}")
    if target is None:
        target_index = len(header) - 1
    elif target in header:
        target_index = header.index(target)
    else:
        raise DatasetRejected(f"target column {target!r} is not in the header ({', '.join(header)})")
    groups = _column_groups(header, target_index)
    staging = _staging_dir(datasets_dir)
    try:
        _csv_to_npy(upload.path, header, target_index, staging, limit)
        if groups:
            _split_groups(staging, groups)
        return _publish(staging, f"{upload.sha256}-t{target_index}", datasets_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def store_npz(upload: Upload, datasets_dir: Path, limit: StoredLimit = UNLIMITED) -> StoredArrays:
    """Stream the x/y members out of the archive to disk; they are .npy files already.

    Each member's expanded size is known from its .npy header (shape x dtype) before anything else
    is decompressed, so an archive that declares more than `limit` is refused at once; a member whose
    data runs past what its header declares is refused as it streams."""
    staging = _staging_dir(datasets_dir)
    try:
        try:
            archive = zipfile.ZipFile(upload.path)
        except zipfile.BadZipFile:
            raise DatasetRejected("the file looks like a zip archive but cannot be read as .npz") from None
        with archive:
            members = {Path(n).stem: n for n in archive.namelist() if n.endswith(".npy")}
            wanted = _npz_arrays(members)
            declared = {name: declared_npy_bytes(archive, members[name], name) for name in wanted}
            total = 0
            for name in wanted:
                total += declared[name][0]
                if total > limit.max_bytes:
                    size, description = declared[name]
                    raise StoredTooLarge(
                        f"array {name!r} declares {description}: {size:,} bytes once expanded, which brings the dataset to "
                        f"{total:,} bytes; over {limit.described}"
                    )
            for name in wanted:
                copy_member(archive, members[name], staging / f"{name}.npy", name, declared[name][0])
        opened = {name: _open_array(staging / f"{name}.npy", name) for name in wanted}
        first = wanted[0]
        for name in wanted[1:]:
            if len(opened[name]) != len(opened[first]):
                raise DatasetRejected(
                    f"{first} has {len(opened[first])} samples but {name} has {len(opened[name])}; they must have the same length"
                )
        if len(opened[first]) == 0:
            raise DatasetRejected("the arrays have no samples")
        for name, array in opened.items():
            if name.startswith("x") and array.ndim == 1:  # one feature per sample: the (n, 1) shape Keras' Input expects
                np.save(staging / f"{name}.npy", np.asarray(array).reshape(-1, 1))
        return _publish(staging, f"{upload.sha256}", datasets_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _npz_arrays(members: dict[str, str]) -> list[str]:
    """The members to store: `x` or `x_<input name>` ones, then `y` or `y_<output name>` ones."""
    found = ", ".join(sorted(members)) or "none"
    wanted: list[str] = []
    for side in SIDES:
        named = sorted(name for name in members if name.startswith(f"{side}_"))
        for name in named:
            if not valid_name(name[2:]):
                raise DatasetRejected(
                    f"array {name!r}: {name[2:]!r} is not a usable {'input' if side == 'x' else 'output'} name "
                    "(letters, digits and _, not starting with a digit, at most 64)"
                )
        if side in members and named:
            raise DatasetRejected(f"the .npz has both {side!r} and {', '.join(named)}; give one {side!r} or {side}_<name> arrays")
        if side not in members and not named:
            raise DatasetRejected(
                f"the .npz has no array {side!r} (arrays found: {found}); name several {side}_<{'input' if side == 'x' else 'output'} name>"
            )
        wanted.extend(named or [side])
    return wanted


def declared_npy_bytes(archive: zipfile.ZipFile, member: str, name: str) -> tuple[int, str]:
    """The member's size once expanded (its header plus shape x itemsize), read from its .npy header
    alone; and the shape and dtype in words."""
    try:
        with archive.open(member) as src:
            version = np.lib.format.read_magic(src)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(src)
            elif version in ((2, 0), (3, 0)):
                shape, _, dtype = np.lib.format.read_array_header_2_0(src)
            else:
                raise ValueError(f"unknown .npy version {version}")
            header_bytes = src.tell()
    except (ValueError, EOFError, zipfile.BadZipFile, OSError, zlib.error) as exc:
        raise DatasetRejected(f"array {name!r} is not a valid .npy array: {exc}") from None
    if dtype.hasobject or dtype.kind not in NUMERIC_KINDS:
        raise DatasetRejected(f"array {name!r} has dtype {dtype}; only numeric arrays can be trained on")
    size = header_bytes + math.prod(shape) * dtype.itemsize
    return size, f"shape {tuple(shape)} of {dtype}"


def copy_member(archive: zipfile.ZipFile, member: str, target: Path, name: str, declared_bytes: int) -> None:
    """Copy one member out, refusing it as soon as it runs past its header's declared size."""
    written = 0
    try:
        with archive.open(member) as src, target.open("wb") as dst:
            while chunk := src.read(CHUNK):
                written += len(chunk)
                if written > declared_bytes:
                    raise StoredTooLarge(
                        f"array {name!r} holds more data than its header declares ({declared_bytes:,} bytes); refused"
                    )
                dst.write(chunk)
    except (zipfile.BadZipFile, OSError, zlib.error, EOFError) as exc:
        raise DatasetRejected(f"array {name!r} cannot be read from the archive: {exc}") from None


def store_arrays(x: np.ndarray, y: np.ndarray, datasets_dir: Path) -> tuple[StoredArrays, str, int]:
    """Store arrays made by the service itself; returns the stored arrays, their sha256 and byte size."""
    digest = hashlib.sha256(x.tobytes() + y.tobytes()).hexdigest()
    stored = _store(x, y, digest, datasets_dir)
    return stored, digest, x.nbytes + y.nbytes


def array_files(datasets_dir: Path, storage_key: str) -> tuple[Path | dict[str, Path], Path | dict[str, Path]]:
    """The stored x and y files: x.npy, or x_<input>.npy by input name (likewise y)."""
    folder = datasets_dir / storage_key
    x, y = (_side_files(folder, side) for side in SIDES)
    return x, y


def load_arrays(datasets_dir: Path, storage_key: str, mmap: bool = False) -> tuple[Arrays, Arrays]:
    """x and y: each one array, or arrays by input (output) name for a dataset stored that way."""
    mode: Literal["r"] | None = "r" if mmap else None

    def load(files: Path | dict[str, Path]) -> Arrays:
        if isinstance(files, dict):
            return {name: np.load(path, mmap_mode=mode, allow_pickle=False) for name, path in files.items()}
        return np.load(files, mmap_mode=mode, allow_pickle=False)

    x, y = array_files(datasets_dir, storage_key)
    return load(x), load(y)


def _side_files(folder: Path, side: str) -> Path | dict[str, Path]:
    plain = folder / f"{side}.npy"
    if plain.exists():
        return plain
    # The folder holds only what this module wrote, under names checked by valid_name.
    return {path.stem[2:]: path for path in sorted(folder.glob(f"{side}_*.npy"))}


def _csv_header(path: Path) -> list[str]:
    with path.open("r", encoding="utf-8", newline="", errors="replace") as f:
        first = f.readline()
    header = next(csv.reader([first]), [])
    header = [h.strip() for h in header]
    if not header or all(h == "" for h in header):
        raise DatasetRejected("the CSV has no header row")
    return header


def _column_groups(header: list[str], target_index: int) -> dict[str, list[int]]:
    """`age@demo,weight@demo,p0@pixels,label`: feature columns by input name, in header order; {} for a
    CSV whose feature columns name no input."""
    features = [i for i in range(len(header)) if i != target_index]
    if not any(GROUP_SEPARATOR in header[i] for i in features):
        return {}
    groups: dict[str, list[int]] = {}
    for position, index in enumerate(features):
        column, _, group = header[index].rpartition(GROUP_SEPARATOR)
        if not column:
            raise DatasetRejected(
                f"column {header[index]!r}: when one feature column names its input (age{GROUP_SEPARATOR}demo), "
                "every feature column must"
            )
        if not valid_name(group):
            raise DatasetRejected(
                f"column {header[index]!r}: {group!r} is not a usable input name "
                "(letters, digits and _, not starting with a digit, at most 64)"
            )
        groups.setdefault(group, []).append(position)
    return groups


def _split_groups(staging: Path, groups: dict[str, list[int]]) -> None:
    """x.npy's columns into x_<input>.npy per group, a block of rows at a time."""
    x = np.load(staging / "x.npy", mmap_mode="r", allow_pickle=False)
    for group, columns in groups.items():
        with (staging / f"x_{group}.npy").open("wb") as out:
            np.lib.format.write_array_header_1_0(
                out, {"descr": np.lib.format.dtype_to_descr(x.dtype), "fortran_order": False, "shape": (len(x), len(columns))}
            )
            for start in range(0, len(x), 65_536):
                out.write(np.ascontiguousarray(x[start : start + 65_536][:, columns]).tobytes())
    del x
    (staging / "x.npy").unlink()


def _csv_to_npy(path: Path, header: list[str], target_index: int, staging: Path, limit: StoredLimit) -> None:
    """Stream the CSV through Arrow's parser one block at a time into x.npy / y.npy on disk, so memory
    stays at a block or two whatever the file's size. Features become float32; the label is kept as
    float64 until the end, so integer class ids survive exactly."""
    names = [f"c{i}" for i in range(len(header))]
    feature_indexes = [i for i in range(len(header)) if i != target_index]
    try:
        reader = pa_csv.open_csv(
            path,
            # Arrow reads ~30 blocks ahead: 1 MiB blocks bound that to tens of MB at full speed.
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1, block_size=CHUNK),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.float64() if i == target_index else pa.float32() for i, name in enumerate(names)},
                null_values=[],  # an empty cell is an error to report, not a silent NaN
                quoted_strings_can_be_null=False,
            ),
        )
        rows = 0
        with (staging / "x.raw").open("wb") as x_raw, (staging / "y.raw").open("wb") as y_raw:
            for batch in reader:
                block = np.empty((batch.num_rows, len(feature_indexes)), dtype=np.float32)
                for column, index in enumerate(feature_indexes):
                    block[:, column] = _finite_column(batch.column(index), header[index], rows)
                x_raw.write(block.tobytes())
                y_raw.write(_finite_column(batch.column(target_index), header[target_index], rows).tobytes())
                rows += batch.num_rows
                # CSV text expands too ("0," is 2 bytes, a float32 4): refuse as soon as it runs past the limit.
                stored = x_raw.tell() + rows * LABEL_BYTES
                if stored > limit.max_bytes:
                    raise StoredTooLarge(
                        f"array 'x' of the CSV passes {stored:,} bytes once parsed by row {rows:,}; over {limit.described}"
                    )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise DatasetRejected(locate_csv_problem(path, header)) from None
    if rows == 0:
        raise DatasetRejected("the CSV has a header but no data rows")
    raw_to_npy(staging / "x.raw", staging / "x.npy", np.dtype(np.float32), (rows, len(feature_indexes)))
    labels = np.fromfile(staging / "y.raw", dtype=np.float64)
    (staging / "y.raw").unlink()
    np.save(staging / "y.npy", _labels(labels))


def _finite_column(column: "pa.Array", name: str, first_row: int) -> np.ndarray:
    values = column.to_numpy(zero_copy_only=False)
    finite = np.isfinite(values)
    if not finite.all():
        row = first_row + int(np.argmin(finite))
        raise DatasetRejected(f"row {row + 1}, column {name!r}: {values[row - first_row]} is not a finite number")
    return values


def raw_to_npy(raw: Path, target: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Prefix raw C-order data with a .npy header, copying in chunks rather than loading it."""
    with target.open("wb") as out, raw.open("rb") as src:
        np.lib.format.write_array_header_1_0(
            out, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        )
        shutil.copyfileobj(src, out, CHUNK)
    raw.unlink()


def locate_csv_problem(path: Path, header: list[str]) -> str:
    """The slow, exact pass, run only once the fast parser has failed: find the first bad row and cell."""
    with path.open("r", encoding="utf-8", newline="", errors="replace") as f:
        reader = csv.reader(f)
        next(reader, None)
        for row_number, row in enumerate(reader, start=1):
            if not row:
                continue
            if len(row) != len(header):
                return f"row {row_number} has {len(row)} columns but the header has {len(header)}"
            for column, cell in zip(header, row, strict=True):
                try:
                    value = float(cell)
                except ValueError:
                    return f"row {row_number}, column {column!r}: {cell.strip()!r} is not a number"
                if not math.isfinite(value):
                    return f"row {row_number}, column {column!r}: {cell.strip()!r} is not a finite number"
    return "the CSV could not be read as numbers"


def _labels(column: np.ndarray) -> np.ndarray:
    # Integral labels stay integers, so sparse losses and accuracy see class ids.
    if np.all(np.mod(column, 1) == 0) and np.abs(column).max(initial=0) < 2**31:
        return column.astype(np.int32)
    return column.astype(np.float32)


def _open_array(path: Path, name: str) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise DatasetRejected(f"array {name!r} cannot be read without running code (object arrays are refused): {exc}") from None
    except Exception as exc:
        raise DatasetRejected(f"array {name!r} is not a valid .npy array: {exc}") from None
    if array.dtype.kind not in NUMERIC_KINDS:
        raise DatasetRejected(f"array {name!r} has dtype {array.dtype}; only numeric arrays can be trained on")
    if array.ndim == 0:
        raise DatasetRejected(f"array {name!r} is a scalar; it needs one entry per sample")
    return array


def _store(x: np.ndarray, y: np.ndarray, key: str, datasets_dir: Path) -> StoredArrays:
    staging = _staging_dir(datasets_dir)
    try:
        np.save(staging / "x.npy", x)
        np.save(staging / "y.npy", y)
        return _publish(staging, key, datasets_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, key: str, datasets_dir: Path) -> StoredArrays:
    x_files, y_files = (_side_files(staging, side) for side in SIDES)
    described: list[dict[str, Any]] = []
    for side, files in (("x", x_files), ("y", y_files)):
        for name, path in files.items() if isinstance(files, dict) else [(None, files)]:
            array = _open_array(path, path.stem)
            described.append({"role": side, "name": name, "shape": [int(d) for d in array.shape[1:]], "dtype": str(array.dtype)})
            del array
    x = next(a for a in described if a["role"] == "x")
    y = next(a for a in described if a["role"] == "y")
    n_samples = len(np.load(next(staging.glob("*.npy")), mmap_mode="r", allow_pickle=False))
    final = datasets_dir / key
    if not final.exists():
        try:
            staging.rename(final)
        except OSError:
            if not final.exists():  # a concurrent upload of the same content won the rename
                raise
    return StoredArrays(
        stored_bytes=sum(path.stat().st_size for path in final.glob("*.npy")),
        storage_key=key,
        n_samples=n_samples,
        x_shape=x["shape"],
        y_shape=y["shape"],
        x_dtype=x["dtype"],
        y_dtype=y["dtype"],
        arrays=None if all(a["name"] is None for a in described) else described,
    )


def _staging_dir(datasets_dir: Path) -> Path:
    path = datasets_dir / f".staging-{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    return path
