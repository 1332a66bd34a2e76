"""Parameters, training states and run records on disk: .npz and JSON, never pickle.

::

    save_params(path, params);  params = load_params(path)
    save_state(path, state);    state = load_state(path)        # a fgraph.train.TrainState
    record = run_record(config, seed, metrics, params)
    save_run_record(path, record);  record = load_run_record(path)

Format of params and state files: a NumPy ``.npz`` (a zip of ``.npy``
members) holding the arrays under generic keys ``a0``, ``a1``, ... (so any
name works, with '/', '.' or any unicode) and a member ``manifest``: a 0-d
unicode array with a JSON object that records the format (``"fgraph.params"``
or ``"fgraph.state"``), its version, which key holds which array, every
value that is not an array and (since version 2) the dtype and shape of
every array: ``"arrays": {"a0": ["<f8", [2, 3]], ...}``. The zip entries
carry a fixed timestamp, so equal content gives equal bytes.

Reading is bounded and pickle-free: nothing is ever unpickled (a file
holding an object array is refused), and before any array is read the
sizes the file declares (its zip directory, the manifest's dtypes and
shapes, each member's ``.npy`` header) must agree with one another and sum
to at most ``max_bytes`` (default :data:`MAX_BYTES`). Each member is then
read with a bounded read of exactly its declared size into one buffer of
that size, so a small file that would inflate to gigabytes (a "zip bomb")
is refused without allocating it. Version 1 files (no ``"arrays"``) are
read with each member's header as its declaration.

A training state is stored as a tree: dicts (str keys), tuples and lists
whose leaves are arrays, NumPy scalars (stored as 0-d arrays, loaded back
as scalars of the same dtype), Python ints, floats (JSON, whose ``repr``
round-trips every float exactly), bools, strings and None. Every field of
:class:`fgraph.train.TrainState` round-trips bit for bit; its params always
load as arrays (a NumPy-scalar param comes back as a 0-d array). Loaded
arrays are read-only.

Every writer goes through :func:`atomic_write`: a temporary file in the
target's directory, flushed and fsynced, then ``os.replace``-d onto the
target, so a writer that dies mid-write leaves the previous file intact;
the next write of the same target removes such leftovers, so they cannot
pile up. ``save_*`` write exactly the path given (no extension is added);
a path that is a symbolic link is written through: the file it points to
is replaced and the link stays.

Errors name the path and what is wrong: ``FileNotFoundError`` for a missing
file, :class:`FileFormatError` (a ``ValueError``) for a corrupt or
truncated file, a refused object array, a file larger than ``max_bytes``,
a file from another program or of another fgraph format;
``TypeError``/``ValueError`` naming the key for params or states that
cannot be saved (masked arrays included: their mask would be lost).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.metadata
import io as _io
import json
import math
import os
import platform
import re
import stat
import struct
import zipfile
from collections.abc import Mapping

import attrs
import numpy as np
import toolz

from fgraph import validate
from fgraph.errors import FileFormatError
from fgraph.init import check_seed
from fgraph.version import __version__

try:  # POSIX: temporary files are locked while written, so leftovers can be told from live ones
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = [
    "MAX_BYTES", "FileFormatError", "atomic_write", "library_versions", "load_params", "load_run_record",
    "load_state", "params_digest", "run_record", "save_params", "save_run_record", "save_state",
]

PARAMS_FORMAT = "fgraph.params"
STATE_FORMAT = "fgraph.state"
RUN_FORMAT = "fgraph.run"
VERSION = 2
MANIFEST = "manifest"
#: The most bytes a params or state file may hold uncompressed (all arrays,
#: their headers and the manifest), unless a loader is given ``max_bytes``.
MAX_BYTES = 1 << 30
# The longest .npy header read (NumPy's own limit for untrusted files).
_MAX_HEADER = 10_000
_CHUNK = 1 << 20
_LOADER = {PARAMS_FORMAT: "load_params", STATE_FORMAT: "load_state", RUN_FORMAT: "load_run_record"}
# Fixed zip timestamp (the earliest zip can store): equal content -> equal bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_NEW_FILE_MODE = 0o644


_FLOAT64_MAX = float(np.finfo(np.float64).max)

# ------------------------------------------------------------ atomic writes


@contextlib.contextmanager
def atomic_write(path, mode: str = "wb", encoding: str | None = None):
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically.

    ``with atomic_write(path) as f: f.write(...)``. On leaving the block the
    file is flushed and fsynced, given the permissions of the file it
    replaces (0o644 for a new one) and ``os.replace``-d onto ``path``, which
    POSIX and Windows make atomic within one directory. On any exception
    the temporary file is removed and ``path`` is untouched.

    If ``path`` is a symbolic link, the file it points to is written (and
    the link stays). A process killed mid-write leaves ``path`` intact and
    a stray ``.<name>.<16 hex digits>.tmp``; on POSIX each writer holds a
    lock on its temporary file until the rename, and every write first
    removes the unlocked ones of its target, whose writers died.
    """
    target = os.fsdecode(os.fspath(path))
    if target.endswith((os.sep, os.altsep or os.sep)):
        raise IsADirectoryError(errno.EISDIR, f"cannot write {target!r}: it names a directory", target)
    resolved = _resolve(target)
    directory, base = os.path.split(resolved)
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, f"cannot write {target!r}: no such directory", directory)
    if os.path.lexists(resolved) and not stat.S_ISREG(os.stat(resolved).st_mode):
        # Replacing it would swap a directory, a FIFO or a device (/dev/null) for a regular file.
        raise OSError(errno.EINVAL, f"cannot write {target!r}: it exists and is not a regular file", target)
    _remove_stale_temps(directory, base)
    fd, tmp = _locked_temp(directory, base)
    # A second descriptor keeps the lock after the file is closed, until the
    # rename is done (Windows, without locks, cannot rename an open file).
    lock = os.dup(fd) if fcntl is not None else None
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_of(resolved))
        os.replace(tmp, resolved)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        if lock is not None:
            os.close(lock)
    _fsync_directory(directory)


def _resolve(target: str) -> str:
    """The absolute path of the file ``target`` names, through any symbolic links."""
    resolved = os.path.realpath(target)
    if os.path.islink(resolved):  # realpath stops at a loop of links
        raise OSError(errno.ELOOP, f"cannot write {target!r}: a loop of symbolic links", target)
    return resolved


def _temp_pattern(base: str) -> re.Pattern:
    return re.compile(r"\." + re.escape(base) + r"\.[0-9a-f]{16}\.tmp")


def _locked_temp(directory: str, base: str) -> tuple[int, str]:
    """A new temporary file ``.<base>.<16 hex>.tmp`` in ``directory``, open
    for writing and (on POSIX) locked; ``(fd, path)``."""
    while True:
        tmp = os.path.join(directory, f".{base}.{os.urandom(8).hex()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        except FileExistsError:
            continue
        except OSError as e:
            if e.errno != errno.ENAMETOOLONG:
                raise
            raise OSError(errno.ENAMETOOLONG, f"cannot write {base!r} atomically: its name is too long for the"
                          f" temporary file beside it (.{base}.<16 hex digits>.tmp, 22 bytes longer)", base) from None
        if fcntl is None:
            return fd, tmp
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits while another writer's cleanup inspects the file
            if os.path.samestat(os.fstat(fd), os.stat(tmp, follow_symlinks=False)):
                return fd, tmp
        except FileNotFoundError:  # that cleanup saw it unlocked, before the lock, and removed it
            pass
        except OSError:  # no locks on this file system: no cleanup can remove it either
            return fd, tmp
        os.close(fd)


def _remove_stale_temps(directory: str, base: str) -> None:
    """Remove the temporary files of ``base`` whose writers died (no lock held).

    Without ``fcntl`` (Windows) a live writer cannot be told from a dead
    one, and nothing is removed.
    """
    if fcntl is None:
        return
    pattern = _temp_pattern(base)
    try:
        names = [e.name for e in os.scandir(directory) if pattern.fullmatch(e.name)]
    except OSError:
        return
    for name in names:
        _remove_if_unlocked(os.path.join(directory, name))


def _remove_if_unlocked(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer lives
        if os.path.samestat(os.fstat(fd), os.stat(path, follow_symlinks=False)):
            os.unlink(path)
    except OSError:
        pass
    finally:
        os.close(fd)


def _mode_of(target: str) -> int:
    """Permission bits for the new file: those of the file it replaces, else 0o644.

    (mkstemp creates files 0o600, which would silently hide results from
    other users; the umask cannot be read without changing it.)
    """
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return _NEW_FILE_MODE


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------- checks on saving


def _array(value, where: str, kinds: str = "iuf", finite: bool = True) -> np.ndarray:
    """``value`` as an array of real numbers (dtype kind in ``kinds``), finite
    unless ``finite`` is false; else an error naming ``where``."""
    validate.refuse_masked(value, where)
    arr = np.asarray(value) if not isinstance(value, np.ndarray) else value
    if arr.dtype.kind not in kinds:
        raise TypeError(f"{where} must hold real numbers, got dtype {arr.dtype} ({type(value).__name__})")
    if finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{where} contains NaN or inf; refusing to save it")
    return arr


def _param_arrays(params, what: str = "params", finite: bool = True) -> dict:
    """Validated ``{name: array}``: str names, real arrays (scalars become 0-d
    arrays), finite unless ``finite`` is false."""
    if not isinstance(params, Mapping):
        raise TypeError(f"{what} must be a dict of name -> array, got {type(params).__name__}")
    out = {}
    for name, value in params.items():
        if not isinstance(name, str):
            raise TypeError(f"{what}: every name must be a str, got {name!r} ({type(name).__name__})")
        out[name] = _array(value, f"{what}[{name!r}]", kinds="biuf" if not finite else "iuf", finite=finite)
    return out


# ----------------------------------------------------------- npz writing


def _write_npz(f, manifest: dict, arrays: list) -> None:
    """Write the manifest and ``arrays`` (as a0, a1, ...) as an .npz into the open file ``f``."""
    text = json.dumps(manifest, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        _write_member(zf, MANIFEST, np.array(text))
        for i, arr in enumerate(arrays):
            _write_member(zf, f"a{i}", arr)


def _write_member(zf: zipfile.ZipFile, key: str, arr: np.ndarray) -> None:
    info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_STORED
    with zf.open(info, mode="w", force_zip64=True) as member:
        np.lib.format.write_array(member, arr, allow_pickle=False)


def _save_npz(path, fmt: str, body: dict, arrays: list) -> None:
    declared = {f"a{i}": [arr.dtype.str, list(arr.shape)] for i, arr in enumerate(arrays)}
    manifest = {"format": fmt, "version": VERSION, **body, "arrays": declared}
    with atomic_write(path) as f:
        _write_npz(f, manifest, arrays)


# ----------------------------------------------------------- npz reading


def _open_for_reading(path, expected: str):
    target = os.fspath(path)
    try:
        return target, open(target, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"no such file (expected an {expected!r} file)", target) from None


@attrs.frozen
class _Member:
    """One ``.npy`` member of an .npz: its zip entry and what its header declares."""

    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: tuple
    fortran: bool
    offset: int  # where the data starts

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _check_max_bytes(max_bytes) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 0:
        raise ValueError(f"max_bytes must be an int >= 0, got {max_bytes!r}")
    return int(max_bytes)


def _size(n: int) -> str:
    return f"{n} bytes" if n < 1 << 20 else f"{n} bytes ({n / (1 << 30):.3g} GiB)"


def _too_big(target: str, what: str, n: int, max_bytes: int) -> FileFormatError:
    return FileFormatError(
        f"{target!r} {what} {_size(n)}, more than max_bytes={max_bytes} (fgraph.io.MAX_BYTES by default);"
        " refused before reading: pass a larger max_bytes if you trust the file"
    )


def _read_npz(f, target: str, expected: str, max_bytes: int) -> tuple[dict, dict]:
    """(manifest, {key: read-only array}) of the fgraph .npz open as ``f``, read within ``max_bytes``."""
    if f.read(2) != b"PK":
        raise FileFormatError(f"{target!r} is not an .npz (zip) archive; expected an {expected!r} file")
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            members = _members(zf, target, max_bytes)
            refused = [k for k, m in members.items() if m.dtype.hasobject]
            if refused:
                raise FileFormatError(
                    f"{target!r} holds an object array ({refused[0]!r}: pickled Python objects); refused:"
                    " fgraph never unpickles, since unpickling can run arbitrary code"
                )
            text = _read_data(zf, members.pop(MANIFEST)) if MANIFEST in members else None
            manifest = _parse_manifest(text, sorted(members), target, expected)
            _check_declarations(manifest, members, target, max_bytes)
            return manifest, {key: _read_data(zf, m) for key, m in members.items()}
    except FileFormatError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to parse the bytes means a damaged file
        raise FileFormatError(f"{target!r} is corrupt or truncated ({type(e).__name__}: {e})") from None


def _members(zf: zipfile.ZipFile, target: str, max_bytes: int) -> dict:
    """``{key: _Member}`` from the zip directory and every member's header,
    after checking that the members hold at most ``max_bytes`` in all."""
    infos = {}
    for info in zf.infolist():
        if not info.filename.endswith(".npy") or info.is_dir():
            raise FileFormatError(f"{target!r}: member {info.filename!r} is not an .npy array (not an fgraph file)")
        key = info.filename[: -len(".npy")]
        if key in infos:
            raise FileFormatError(f"{target!r}: member {info.filename!r} appears twice (corrupt file)")
        infos[key] = info
    total = sum(info.file_size for info in infos.values())
    if total > max_bytes:
        raise _too_big(target, "holds", total, max_bytes)
    return {key: _header(zf, info, target) for key, info in infos.items()}


def _header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: str) -> _Member:
    """The dtype, shape and data offset a member's ``.npy`` header declares;
    the member must hold exactly that many bytes."""
    with zf.open(info) as m:
        version = np.lib.format.read_magic(m)
        readers = {
            (1, 0): ("<H", np.lib.format.read_array_header_1_0),
            (2, 0): ("<I", np.lib.format.read_array_header_2_0),
        }
        if version not in readers:
            raise FileFormatError(
                f"{target!r}: member {info.filename!r} is .npy version {version}, which fgraph does not read"
            )
        size_format, read_header = readers[version]
        size_bytes = m.read(struct.calcsize(size_format))
        (length,) = struct.unpack(size_format, size_bytes)
        if length > _MAX_HEADER:
            raise FileFormatError(f"{target!r}: member {info.filename!r} has a {length}-byte header (corrupt file)")
        header = m.read(length)
    shape, fortran, dtype = read_header(_io.BytesIO(size_bytes + header), max_header_size=_MAX_HEADER)
    if any(n < 0 for n in shape):
        raise FileFormatError(f"{target!r}: member {info.filename!r} declares the shape {shape} (corrupt file)")
    member = _Member(info, dtype, shape, fortran, len(np.lib.format.MAGIC_PREFIX) + 2 + len(size_bytes) + length)
    if not dtype.hasobject and info.file_size != member.offset + member.nbytes:
        raise FileFormatError(
            f"{target!r}: member {info.filename!r} holds {info.file_size} bytes, but its header declares"
            f" a {dtype.str} array of shape {shape}, {member.offset + member.nbytes} bytes"
            " with the header (corrupt file)"
        )
    return member


def _read_data(zf: zipfile.ZipFile, member: _Member) -> np.ndarray:
    """A member's array, read-only, read in bounded chunks into one buffer of
    exactly the declared size; the zip's CRC-32 is checked at the end."""
    buffer = np.empty(member.nbytes, dtype=np.uint8)
    with zf.open(member.info) as m:
        m.read(member.offset)
        done = 0
        while done < member.nbytes:
            chunk = m.read(min(_CHUNK, member.nbytes - done))
            if not chunk:
                raise EOFError(f"member {member.info.filename!r} ends after {done} of {member.nbytes} data bytes")
            buffer[done : done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            done += len(chunk)
        if m.read(1):  # also where the CRC-32 is checked, if it was not yet
            raise EOFError(f"member {member.info.filename!r} holds more than its header declares")
    flat = buffer.view(member.dtype)
    arr = flat.reshape(member.shape[::-1]).T if member.fortran else flat.reshape(member.shape)
    arr.flags.writeable = False
    return arr


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond float64's range")
    return value


def _unique_keys(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = [k for k, _ in pairs]
        raise ValueError(f"key {next(k for k in seen if seen.count(k) > 1)!r:.80} appears twice in one object")
    return out


def _strict_json(text: str):
    """``json.loads`` of what fgraph wrote: finite numbers only (no NaN,
    Infinity or 1e400), no key twice in one object (Python keeps the last
    silently). Raises ValueError or RecursionError."""
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys)


def _parse_manifest(arr, keys: list, target: str, expected: str) -> dict:
    """The JSON manifest, checked to be of format ``expected`` and a version this code reads."""
    if arr is None:
        shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
        raise FileFormatError(
            f"{target!r} was not written by fgraph.io (it has no manifest; its arrays: {shown or 'none'});"
            f" expected an {expected!r} file"
        )
    try:
        if arr.dtype.kind != "U" or arr.shape != ():
            raise ValueError(f"a {arr.dtype} array of shape {arr.shape}, not a 0-d string")
        manifest = _strict_json(str(arr[()]))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (ValueError, RecursionError) as e:
        raise FileFormatError(f"{target!r}: the manifest is corrupt ({e})") from None
    found = manifest.get("format")
    if found != expected:
        hint = f"; load it with fgraph.io.{_LOADER[found]}" if isinstance(found, str) and found in _LOADER else ""
        raise FileFormatError(f"{target!r}: expected an {expected!r} file, found format {found!r}{hint}")
    version = manifest.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= VERSION:
        raise FileFormatError(
            f"{target!r}: {expected!r} version {version!r} is not supported; this fgraph reads versions 1 to {VERSION}"
            " (a newer fgraph wrote it?)"
        )
    return manifest


def _listed(keys: list, shown: int = 8) -> str:
    """The first ``shown`` of ``keys``, and how many there are when that is not all: a message
    about a file of 60,000 arrays stays a line."""
    return "[" + ", ".join(map(repr, keys[:shown])) + (f", ... ({len(keys)} in all)]" if len(keys) > shown else "]")


def _check_declarations(manifest: dict, members: dict, target: str, max_bytes: int) -> None:
    """Every array is of real numbers and, from version 2 on, exactly as the
    manifest declares; the declared arrays fit in ``max_bytes``."""
    if manifest["version"] >= 2:
        declared = manifest.get("arrays")
        if not isinstance(declared, dict) or set(declared) != set(members):
            raise FileFormatError(
                f"{target!r}: the manifest does not declare the file's arrays {_listed(sorted(members))} (corrupt file)"
            )
        shapes = {key: _declared(value, key, target) for key, value in declared.items()}
        total = sum(math.prod(shape) * dtype.itemsize for dtype, shape in shapes.values())
        if total > max_bytes:
            raise _too_big(target, "declares arrays of", total, max_bytes)
        for key, member in members.items():
            if shapes[key] != (member.dtype, member.shape):
                dtype, shape = shapes[key]
                raise FileFormatError(
                    f"{target!r}: array {key!r} is {member.dtype.str} of shape {member.shape}, the manifest declares"
                    f" {dtype.str} of shape {shape} (corrupt file)"
                )
    for key, member in members.items():
        if member.dtype.kind not in "biuf":
            raise FileFormatError(
                f"{target!r}: array {key!r} holds {member.dtype}, not real numbers (not an fgraph file)"
            )


def _declared(value, key: str, target: str) -> tuple:
    """``(dtype, shape)`` from a manifest entry ``[dtype str, [n, ...]]``."""
    try:
        dtype_str, shape = value
        if not (isinstance(dtype_str, str) and isinstance(shape, list)):
            raise TypeError
        if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
            raise TypeError
        return np.dtype(dtype_str), tuple(shape)
    except (TypeError, ValueError):
        raise FileFormatError(f"{target!r}: the manifest's entry for array {key!r} is corrupt: {value!r:.80}") from None


def _load_npz(path, expected: str, max_bytes: int) -> tuple[str, dict, dict]:
    """(path as str, manifest, {key: read-only array}) of an fgraph .npz of format ``expected``."""
    max_bytes = _check_max_bytes(max_bytes)
    target, f = _open_for_reading(path, expected)
    with f:
        manifest, members = _read_npz(f, target, expected, max_bytes)
    return target, manifest, members


class _Arrays:
    """The arrays of a file being decoded; every key must be used exactly once."""

    def __init__(self, members: dict, target: str):
        self.members, self.target, self.used = members, target, set()

    def take(self, key) -> np.ndarray:
        if not isinstance(key, str) or key not in self.members or key in self.used:
            raise FileFormatError(
                f"{self.target!r}: the manifest refers to array {key!r}, which the file does not hold"
            )
        self.used.add(key)
        arr = self.members[key]
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():  # fgraph never saves one: a forged or damaged file
            raise FileFormatError(f"{self.target!r}: array {key!r} holds NaN or inf, which fgraph never saves")
        return arr

    def check_all_used(self) -> None:
        extra = sorted(set(self.members) - self.used)
        if extra:
            raise FileFormatError(
                f"{self.target!r}: arrays {_listed(extra)} are not described by the manifest (corrupt file)"
            )


# ------------------------------------------------------------------ params


def save_params(path, params: Mapping) -> None:
    """Write ``{name: array}`` to ``path`` (exactly that path) as an fgraph params .npz.

    Names are any strings; values are arrays of real numbers (int or float,
    any shape, including NumPy scalars, kept with their dtype), all finite.
    Atomic: see :func:`atomic_write`.
    """
    arrays = _param_arrays(params)
    names = [[name, f"a{i}"] for i, name in enumerate(arrays)]
    _save_npz(path, PARAMS_FORMAT, {"params": names}, list(arrays.values()))


def load_params(path, *, max_bytes: int = MAX_BYTES) -> dict:
    """Read a file written by :func:`save_params`: ``{name: read-only array}``, in the saved order.

    A file holding more than ``max_bytes`` uncompressed is refused before
    anything is read (see the module docstring).
    """
    target, manifest, members = _load_npz(path, PARAMS_FORMAT, max_bytes)
    arrays = _Arrays(members, target)
    entries = manifest.get("params")
    if not isinstance(entries, list):
        raise FileFormatError(f"{target!r}: the manifest has no list of params")
    out = {}
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)) or entry[0] in out:
            raise FileFormatError(f"{target!r}: bad params entry {entry!r:.120} in the manifest")
        out[entry[0]] = arrays.take(entry[1])
    arrays.check_all_used()
    return out


# ------------------------------------------------------------------- state


def _encode(value, where: str, arrays: list) -> dict:
    """A JSON node for ``value``; its arrays are appended to ``arrays`` (key ``a<index>``).

    Nodes are one-key objects, so no user key can be mistaken for a tag:
    ``{"array": key}``, ``{"scalar": key}``, ``{"int": n}``, ``{"float": x}``,
    ``{"json": bool | str | None}``, ``{"dict": [[key, node], ...]}``,
    ``{"tuple": [node, ...]}``, ``{"list": [node, ...]}``.
    """
    if isinstance(value, (np.ndarray, np.generic)):  # before int/float: np.float64 is a float
        tag = "array" if isinstance(value, np.ndarray) else "scalar"
        arrays.append(_array(value, where, kinds="biuf"))
        return {tag: f"a{len(arrays) - 1}"}
    if value is None or isinstance(value, (bool, str)):
        return {"json": value}
    if isinstance(value, int):
        return {"int": int(value)}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}; refusing to save a non-finite number")
        return {"float": float(value)}
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: every dict key must be a str, got {key!r} ({type(key).__name__})")
            items.append([key, _encode(item, f"{where}[{key!r}]", arrays)])
        return {"dict": items}
    if isinstance(value, (tuple, list)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        return {kind: [_encode(item, f"{where}[{i}]", arrays) for i, item in enumerate(value)]}
    raise TypeError(
        f"{where}: cannot save a {type(value).__name__}; a state holds dicts with str keys, tuples, lists,"
        " NumPy arrays and scalars, ints, floats, bools, strings and None"
    )


def _decode(node, arrays: _Arrays):
    """The value of a node made by :func:`_encode`."""
    if not (isinstance(node, dict) and len(node) == 1):
        raise FileFormatError(f"{arrays.target!r}: the manifest is corrupt (bad node {node!r:.80})")
    ((tag, payload),) = node.items()
    if tag == "array":
        return arrays.take(payload)
    if tag == "scalar":
        scalar = arrays.take(payload)
        if scalar.ndim:
            raise FileFormatError(
                f"{arrays.target!r}: the manifest is corrupt (scalar {payload!r} has shape {scalar.shape})"
            )
        return scalar[()]
    if tag == "int" and isinstance(payload, int) and not isinstance(payload, bool):
        return payload
    if tag == "float" and isinstance(payload, (int, float)) and not isinstance(payload, bool):
        if not (isinstance(payload, float) or abs(payload) <= _FLOAT64_MAX):  # a huge int overflows a float
            raise FileFormatError(
                f"{arrays.target!r}: the manifest is corrupt (float {str(payload)[:12]}... is beyond float64's range)"
            )
        return float(payload)
    if tag == "json" and (payload is None or isinstance(payload, (bool, str))):
        return payload
    if tag == "dict" and isinstance(payload, list):
        if not all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) for e in payload) or (
            len({e[0] for e in payload}) != len(payload)
        ):
            raise FileFormatError(f"{arrays.target!r}: the manifest is corrupt (bad or repeated dict entries)")
        return {key: _decode(item, arrays) for key, item in payload}
    if tag in ("tuple", "list") and isinstance(payload, list):
        items = [_decode(item, arrays) for item in payload]
        return tuple(items) if tag == "tuple" else items
    raise FileFormatError(f"{arrays.target!r}: the manifest is corrupt (unknown node {tag!r})")


def _train_state_class():
    # Imported here, not at the top: fgraph.train may well import fgraph.io.
    from fgraph.train import TrainState

    return TrainState


def save_state(path, state) -> None:
    """Write a :class:`fgraph.train.TrainState` to ``path`` (exactly that path) as an .npz.

    Every field is saved (see the module docstring for what a field may
    hold); params must be real and finite, as must every number in the
    optimiser state. Atomic: see :func:`atomic_write`.
    """
    TrainState = _train_state_class()
    if not isinstance(state, TrainState):
        raise TypeError(f"save_state needs a fgraph.train.TrainState, got {type(state).__name__}")
    fields = {f.name: getattr(state, f.name) for f in attrs.fields(TrainState) if f.init}
    fields["params"] = _param_arrays(state.params, "state.params")
    arrays: list = []
    tree = {name: _encode(value, f"state.{name}", arrays) for name, value in fields.items()}
    _save_npz(path, STATE_FORMAT, {"fields": tree}, arrays)


def load_state(path, *, max_bytes: int = MAX_BYTES):
    """Read a file written by :func:`save_state`: the same ``TrainState``, bit for bit.

    Params come back as read-only arrays (0-d for scalar params); the
    optimiser state with its ints, floats and read-only arrays as saved.
    A file holding more than ``max_bytes`` uncompressed is refused before
    anything is read (see the module docstring). A state saved before
    ``num_examples`` and ``optimizer`` were recorded loads with None there.
    """
    TrainState = _train_state_class()
    target, manifest, members = _load_npz(path, STATE_FORMAT, max_bytes)
    arrays = _Arrays(members, target)
    tree = manifest.get("fields")
    if not isinstance(tree, dict):
        raise FileFormatError(f"{target!r}: the manifest has no state fields")
    try:
        values = {name: _decode(node, arrays) for name, node in tree.items()}
    except RecursionError:
        raise FileFormatError(f"{target!r}: the manifest is corrupt (nested too deeply)") from None
    arrays.check_all_used()
    known = {f.name: f for f in attrs.fields(TrainState) if f.init}
    unknown = sorted(set(values) - set(known))
    missing = sorted(n for n, f in known.items() if n not in values and f.default is attrs.NOTHING)
    if unknown or missing:
        raise FileFormatError(
            f"{target!r}: the saved state does not fit this fgraph's TrainState"
            f" (unknown fields {unknown}, missing fields {missing})"
        )
    if not isinstance(values.get("params"), dict) or not all(
        isinstance(v, np.ndarray) for v in values["params"].values()
    ):
        raise FileFormatError(f"{target!r}: the saved params are not a dict of arrays")
    # attrs names the __init__ argument of a field "_x" "x": its alias.
    return TrainState(**{getattr(known[name], "alias", None) or name: value for name, value in values.items()})


# ------------------------------------------------------------- run records


def params_digest(params: Mapping) -> str:
    """SHA-256 (hex) of params: equal params ⇔ equal digest.

    Hashes, for every name in sorted order, a header ``[name, dtype, shape]``
    (JSON, little-endian dtype) and the array's bytes in C order. Two param
    dicts are equal when they have the same names, and for every name the
    same dtype, shape and bits (so 0.0 and -0.0 differ; a NumPy scalar, a
    0-d array and a Python float of the same float64 value do not; neither
    does dict order, memory layout or byte order).
    """
    arrays = _param_arrays(params, finite=False)  # a digest describes, it does not judge: NaN is allowed
    h = hashlib.sha256(b"fgraph.params_digest.v1\n")
    for name in sorted(arrays):
        arr = arrays[name]
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        header = json.dumps([name, arr.dtype.str, list(arr.shape)], ensure_ascii=True)
        h.update(header.encode("ascii") + b"\n")
        h.update(arr.tobytes(order="C"))  # the header fixes the byte count, so the stream parses one way
    return h.hexdigest()


def library_versions() -> dict:
    """Versions of python, numpy, attrs, toolz and fgraph, for run records."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "attrs": _distribution_version("attrs"),
        "toolz": getattr(toolz, "__version__", None) or _distribution_version("toolz"),
        "fgraph": __version__,
    }


def _distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _check_unicode(text: str, where: str) -> None:
    """A ValueError naming ``where`` if ``text`` cannot be written as UTF-8 (a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: {text!r:.80} is not valid Unicode text (it holds a lone surrogate)") from None


def _jsonable(value, where: str):
    """``value`` as plain JSON data: dicts (str keys), lists, str, bool, None, int, finite float.

    Tuples and arrays become lists, NumPy scalars Python numbers. Anything
    else, or a NaN/inf (JSON has none), is an error naming ``where``.
    """
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        _check_unicode(value, where)
        return value
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value!r}; JSON has no NaN or inf (record None or a string instead)")
        return float(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: every key must be a str, got {key!r} ({type(key).__name__})")
            _check_unicode(key, where)
            out[key] = _jsonable(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{where}: a {type(value).__name__} cannot be written to JSON")


def run_record(config: Mapping, seed: int, metrics: Mapping, params: Mapping) -> dict:
    """A JSON-able record of a run, reproducible: the same run gives an equal record.

    ``{"format": "fgraph.run", "version": 1, "config": ..., "seed": ...,
    "metrics": ..., "params_digest": params_digest(params), "versions":
    library_versions()}``. There is deliberately no timestamp. Config and
    metrics are converted to plain JSON data (tuples and arrays to lists,
    NumPy numbers to Python ones); a NaN or inf in them is an error.
    """
    for what, value in (("config", config), ("metrics", metrics)):
        if not isinstance(value, Mapping):
            raise TypeError(f"run_record: {what} must be a dict, got {type(value).__name__}")
    return {
        "format": RUN_FORMAT,
        "version": VERSION,
        "config": _jsonable(config, "config"),
        "seed": check_seed(seed),
        "metrics": _jsonable(metrics, "metrics"),
        "params_digest": params_digest(params),
        "versions": library_versions(),
    }


def save_run_record(path, record: Mapping) -> None:
    """Write a record from :func:`run_record` to ``path`` (exactly) as JSON, atomically.

    Keys sorted, two-space indent, floats in their shortest exact ``repr``
    (so every float reads back bit for bit), UTF-8, a final newline.
    """
    if not isinstance(record, Mapping) or record.get("format") != RUN_FORMAT:
        raise ValueError(f"save_run_record needs a record made by fgraph.io.run_record, got {type(record).__name__}")
    text = json.dumps(_jsonable(record, "record"), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def load_run_record(path) -> dict:
    """Read a record written by :func:`save_run_record`."""
    target, f = _open_for_reading(path, RUN_FORMAT)
    with f:
        raw = f.read()
    try:
        record = _strict_json(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise FileFormatError(f"{target!r} is not UTF-8 text ({e}); expected an {RUN_FORMAT!r} JSON file") from None
    except RecursionError:
        raise FileFormatError(f"{target!r} nests too deeply; expected an {RUN_FORMAT!r} file") from None
    except ValueError as e:  # json.JSONDecodeError included: it says line and column
        raise FileFormatError(f"{target!r} is not valid JSON ({e}); expected an {RUN_FORMAT!r} file") from None
    found = record.get("format") if isinstance(record, dict) else None
    if found != RUN_FORMAT:
        raise FileFormatError(f"{target!r}: expected an {RUN_FORMAT!r} file, found format {found!r}")
    try:  # what save_run_record refuses, JSON can still spell: a lone surrogate escaped as \ud800
        _jsonable(record, "record")
    except ValueError as e:
        raise FileFormatError(f"{target!r}: {e}") from None
    return record
