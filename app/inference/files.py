"""Big prediction inputs as `.npy` files on disk, for the helper to memory-map: an uploaded .npz,
.npy or CSV is streamed there; a stored dataset is there already."""

import csv
import uuid
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
from pyarrow import csv as pa_csv

from app import ingest
from app.errors import FieldError, InvalidInput, PayloadTooLarge
from app.inference.signature import Signature
from app.inference.validate import check_array

CHUNK = 1024 * 1024
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(f"file: {message}", [FieldError("file", message)])


def work_path(work_dir: Path, suffix: str) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir / f"{uuid.uuid4().hex}{suffix}"


def receive_inputs(
    stream: BinaryIO, work_dir: Path, max_bytes: int, max_expanded_bytes: int, signature: Signature
) -> dict[str, Path]:
    """Stream an upload to disk and turn it into one checked `.npy` per model input. The caller
    removes the returned files (and nothing is left behind on a refusal). A compressed .npz or a CSV
    grows as it is unpacked or parsed: past `max_expanded_bytes` it is refused, as a dataset would be."""
    try:
        upload = ingest.receive(stream, work_dir, max_bytes)
    except ingest.UploadTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    made: dict[str, Path] = {}
    try:
        if upload.size_bytes == 0:
            raise _refuse("the file is empty")
        with upload.path.open("rb") as f:
            magic = f.read(6)
        if magic.startswith(ZIP_MAGIC):
            _from_npz(upload.path, work_dir, signature, made, max_expanded_bytes)
        elif magic == NPY_MAGIC:
            only = _only_input(signature, "a .npy")
            made[only] = upload.path.rename(upload.path.with_suffix(".npy"))
        else:
            only = _only_input(signature, "a CSV")
            made[only] = work_path(work_dir, ".npy")
            _csv_to_npy(upload.path, made[only], np.dtype(signature.inputs[0].dtype), max_expanded_bytes)
        for name, path in made.items():
            made[name] = _checked(path, signature, name)
        return made
    except BaseException:
        for path in made.values():
            path.unlink(missing_ok=True)
        raise
    finally:
        upload.path.unlink(missing_ok=True)


def _only_input(signature: Signature, what: str) -> str:
    if len(signature.inputs) != 1:
        names = ", ".join(i.name for i in signature.inputs)
        raise _refuse(f"the model has several inputs ({names}); send a .npz with one array per input name, not {what}")
    return signature.inputs[0].name


def _from_npz(path: Path, work_dir: Path, signature: Signature, made: dict[str, Path], max_expanded_bytes: int) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise _refuse("the file looks like a zip archive but cannot be read as .npz") from None
    with archive:
        members = {Path(n).stem: n for n in archive.namelist() if n.endswith(".npy")}
        if len(signature.inputs) == 1:
            name = signature.inputs[0].name
            # The dataset convention (x, x_<input>), the input's own name, or the archive's only array.
            key = next((k for k in ("x", f"x_{name}", name) if k in members), next(iter(members)) if len(members) == 1 else None)
            wanted = {name: key}
        else:
            # By input name, as is or as a dataset names it (x_<input>).
            wanted = {i.name: next((k for k in (i.name, f"x_{i.name}") if k in members), None) for i in signature.inputs}
        for name, key in wanted.items():
            if key is None:
                found = ", ".join(sorted(members)) or "none"
                raise _refuse(f"the .npz has no array {'x' if len(wanted) == 1 else name!r} (arrays found: {found})")
        try:
            # Sized from the .npy headers before anything is inflated, then held to those sizes while copying.
            declared = {name: ingest.declared_npy_bytes(archive, members[key], key) for name, key in wanted.items() if key}
            expanded = sum(size for size, _ in declared.values())
            if expanded > max_expanded_bytes:
                shapes = "; ".join(f"array {wanted[name]!r}: {words}" for name, (_, words) in declared.items())
                raise PayloadTooLarge(
                    f"file: the .npz expands to {expanded:,} bytes ({shapes}); over the {max_expanded_bytes:,}-byte limit"
                )
            for name, key in wanted.items():
                assert key is not None
                made[name] = work_path(work_dir, ".npy")
                ingest.copy_member(archive, members[key], made[name], key, declared[name][0])
        except ingest.StoredTooLarge as exc:
            raise PayloadTooLarge(f"file: {exc}") from None
        except ingest.DatasetRejected as exc:
            raise _refuse(str(exc)) from None


def _checked(path: Path, signature: Signature, name: str) -> Path:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise _refuse(f"array {name!r} cannot be read without running code (object arrays are refused): {exc}") from None
    except Exception as exc:
        raise _refuse(f"array {name!r} is not a valid .npy array: {exc}") from None
    spec = signature.input_named(name)
    assert spec is not None
    if array.ndim == 1 and spec.shape == (1,):  # one number per row: give it the (n, 1) shape
        reshaped = np.array(array).reshape(-1, 1)  # a copy: the file is about to be rewritten
        del array
        np.save(path, reshaped)
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    what = "the file's array" if len(signature.inputs) == 1 else f"array {name!r}"
    check_array("file", array, spec, what)
    return path


def _csv_to_npy(path: Path, target: Path, dtype: np.dtype, max_expanded_bytes: int) -> None:
    """Every column is a feature. Arrow parses the CSV a block at a time into raw rows on disk."""
    with path.open("r", encoding="utf-8", newline="", errors="replace") as f:
        header = [h.strip() for h in next(csv.reader([f.readline()]), [])]
    if not header or all(h == "" for h in header):
        raise _refuse("the CSV has no header row")
    names = [f"c{i}" for i in range(len(header))]
    raw = target.with_suffix(".raw")
    rows = 0
    try:
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1, block_size=CHUNK),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.float64()), null_values=[], quoted_strings_can_be_null=False
            ),
        )
        with raw.open("wb") as out:
            for batch in reader:
                block = np.column_stack([batch.column(i).to_numpy(zero_copy_only=False) for i in range(len(names))])
                out.write(block.astype(dtype).tobytes())
                rows += batch.num_rows
                # CSV text expands too ("0," is 2 bytes, a float32 4): refuse as soon as it runs past the limit.
                if out.tell() > max_expanded_bytes:
                    raise PayloadTooLarge(
                        f"file: the CSV passes {out.tell():,} bytes once parsed by row {rows:,}; over the {max_expanded_bytes:,}-byte limit"
                    )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raw.unlink(missing_ok=True)
        raise _refuse(ingest.locate_csv_problem(path, header)) from None
    except PayloadTooLarge:
        raw.unlink(missing_ok=True)
        raise
    if rows == 0:
        raw.unlink(missing_ok=True)
        raise _refuse("the CSV has a header but no data rows")
    ingest.raw_to_npy(raw, target, dtype, (rows, len(names)))
