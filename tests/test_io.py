"""Files: params and training states round-trip bit for bit, writes are atomic
and go to exactly the path given, bad files give clear errors, nothing
unpickles; run records are reproducible JSON."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import tracemalloc
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fgraph import io, optim
from fgraph.io import FileFormatError
from fgraph.train import TrainState

REPO = Path(__file__).resolve().parent.parent
SETTINGS = settings(deadline=None, max_examples=settings().max_examples)  # the loaded profile's budget


# ------------------------------------------------------------------ helpers


def bits(x):
    """Type family, dtype, shape and raw bytes: what "bit for bit" compares."""
    if isinstance(x, (bool, int, float, str, type(None))) and not isinstance(x, np.generic):
        return (type(x).__name__, repr(x))
    a = np.asarray(x)
    return ("ndarray" if isinstance(x, np.ndarray) else "numpy scalar", a.dtype.str, a.shape, a.tobytes())


def tree_bits(tree):
    """:func:`bits` of every leaf, with the container types and dict key order."""
    if isinstance(tree, dict):
        return ("dict", [(k, tree_bits(v)) for k, v in tree.items()])
    if isinstance(tree, (tuple, list)):
        return (type(tree).__name__, [tree_bits(v) for v in tree])
    return bits(tree)


def as_array_bits(params):
    """The bits a params file must give back: every value as an array."""
    return [(k, bits(np.asarray(v))) for k, v in params.items()]


def write_npz(path, **members):
    """A hand-made .npz (the tests' stand-in for files written by other programs)."""
    with open(path, "wb") as f, zipfile.ZipFile(f, "w") as zf:
        for key, value in members.items():
            with zf.open(f"{key}.npy", "w") as m:
                np.lib.format.write_array(m, np.asarray(value), allow_pickle=True)


def manifest_json(fmt="fgraph.params", version=1, **body):
    """A manifest member as fgraph.io writes it, with whatever content a test needs."""
    return np.array(json.dumps({"format": fmt, "version": version, **body}))


PARAMS = {
    "W1": np.arange(6.0).reshape(2, 3), "b1": np.array([0.1, -0.2]),
    "w2": np.array([1e-300, -0.0]), "b2": np.float64(0.3),
}


def adam_state(steps=2):
    """A TrainState whose opt_state is a chain(clip, adam) state after ``steps`` steps."""
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-2))
    rng = np.random.default_rng(0)
    params = {"W": rng.standard_normal((3, 2)), "b": np.float64(0.5), "c": np.array(-1.0)}
    state = opt.init(params)
    for _ in range(steps):
        grads = {"W": rng.standard_normal((3, 2)), "b": np.float64(rng.standard_normal()), "c": np.array(0.25)}
        params, state = opt.step(grads, state, params)
    return opt, TrainState(
        params=params, opt_state=state, epoch=3, step=steps, seed=12345, batch_size=16,
        history=(0.1 + 0.2, 1 / 3, 5e-324, -0.0, np.float64(2.5)), running=0.7000000000000001,
    )


# --------------------------------------------------------- params round trip


# Param names: path-like pieces ('/', '.') mixed with any unicode character.
names = st.lists(
    st.one_of(st.sampled_from(["/", ".", "\\", " ", "W1", "layer", "ü", "中"]), st.characters(codec="utf-8")),
    max_size=6,
).map("".join)
DTYPES = [np.dtype(t) for t in ("<f8", ">f8", "<f4", "<f2", "<i8", "<i4", "<u1")]


@st.composite
def param_values(draw):
    """A finite array of any dtype in DTYPES and any small shape, or a NumPy scalar."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3))
    elements = {"allow_nan": False, "allow_infinity": False} if dtype.kind == "f" else None
    arr = draw(hnp.arrays(dtype, shape, elements=elements))
    if shape == () and draw(st.booleans()):
        return arr[()]  # a NumPy scalar
    return arr


@SETTINGS
@given(params=st.dictionaries(names, param_values(), max_size=5))
def test_params_round_trip_bit_for_bit(params):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "params")
        io.save_params(path, params)
        loaded = io.load_params(path)
        assert os.listdir(d) == ["params"]
    assert as_array_bits(loaded) == as_array_bits(params)  # names, order, dtype, shape, bytes
    assert all(isinstance(v, np.ndarray) and not v.flags.writeable for v in loaded.values())
    assert io.params_digest(loaded) == io.params_digest(params)


def test_python_numbers_load_as_arrays(tmp_path):
    io.save_params(tmp_path / "p", {"a": 1.5, "b": 2, "c": np.float64(-0.0)})
    loaded = io.load_params(tmp_path / "p")
    assert bits(loaded["a"]) == bits(np.array(1.5)) and bits(loaded["b"]) == bits(np.array(2))
    assert bits(loaded["c"]) == bits(np.array(-0.0))


@pytest.mark.parametrize("name", ["weights", "weights.bin", "w.npz.tmp", "model.npy"])
def test_save_writes_exactly_the_path_given(tmp_path, name):
    io.save_params(tmp_path / name, PARAMS)
    assert os.listdir(tmp_path) == [name]
    io.save_params(str(tmp_path / name), PARAMS)  # str paths too: np.savez would add .npz
    assert os.listdir(tmp_path) == [name]


def test_equal_params_give_equal_bytes(tmp_path):
    io.save_params(tmp_path / "a", PARAMS)
    io.save_params(tmp_path / "b", {k: np.array(v) for k, v in PARAMS.items()})
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_saving_again_replaces_the_file(tmp_path):
    io.save_params(tmp_path / "p", PARAMS)
    io.save_params(tmp_path / "p", {"x": np.ones(2)})
    assert as_array_bits(io.load_params(tmp_path / "p")) == as_array_bits({"x": np.ones(2)})


def test_the_file_is_plain_npz_with_generic_keys(tmp_path):
    io.save_params(tmp_path / "p", {"a/b.c": np.ones(2), "ü": np.float64(3.0)})
    with np.load(tmp_path / "p", allow_pickle=False) as npz:
        assert sorted(npz.files) == ["a0", "a1", "manifest"]
        manifest = json.loads(str(npz["manifest"][()]))
    assert manifest == {"format": "fgraph.params", "version": 2, "params": [["a/b.c", "a0"], ["ü", "a1"]],
                        "arrays": {"a0": ["<f8", [2]], "a1": ["<f8", []]}}


# --------------------------------------------------------------- atomicity


def test_a_crash_in_os_replace_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "p"
    io.save_params(path, PARAMS)
    old = path.read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        io.save_params(path, {"x": np.ones(3)})
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["p"]


def test_a_crash_mid_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "p"
    io.save_params(path, PARAMS)
    old = path.read_bytes()
    real_write = np.lib.format.write_array
    written = []

    def write_then_crash(fp, array, *args, **kwargs):
        if written:  # the manifest went through; die inside the first array
            fp.write(b"\x93NUMPY half an array")
            raise KeyboardInterrupt
        written.append(array)
        return real_write(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_params(path, {"x": np.ones(1000)})
    assert written, "the writer never reached the arrays"
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["p"]


def test_the_temp_file_is_fsynced_then_renamed_from_the_same_directory(tmp_path, monkeypatch):
    events = []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.fstat(fd).st_size)), real_fsync(fd))[1])
    monkeypatch.setattr(
        os, "replace", lambda src, dst: (events.append(("replace", src, dst)), real_replace(src, dst))[1]
    )
    path = tmp_path / "p"
    io.save_params(path, PARAMS)
    replace = [e for e in events if e[0] == "replace"]
    assert len(replace) == 1
    _, src, dst = replace[0]
    assert os.path.dirname(os.path.abspath(src)) == str(tmp_path) and os.fspath(dst) == str(path) and src != dst
    first_fsync = events.index(next(e for e in events if e[0] == "fsync"))
    assert first_fsync < events.index(replace[0])
    assert events[first_fsync][1] == path.stat().st_size  # the whole file was synced, not a part


KILLER = r"""
import os, signal, sys
import numpy as np
from fgraph import io

def write_then_die(fp, array, *args, **kwargs):
    fp.write(b"\x93NUMPY partial")
    fp.flush()
    os.kill(os.getpid(), signal.SIGKILL)

np.lib.format.write_array = write_then_die
io.save_params(sys.argv[1], {"x": np.zeros(10)})
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_writer_killed_mid_write_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "p"
    io.save_params(path, PARAMS)
    old = path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", KILLER, str(path)], cwd=REPO, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert path.read_bytes() == old
    assert as_array_bits(io.load_params(path)) == as_array_bits(PARAMS)
    # The killed writer leaves its stray temporary file, and only that.
    assert sorted(os.listdir(tmp_path))[0].startswith(".p.") and len(os.listdir(tmp_path)) == 2


def test_a_new_file_is_readable_by_others_and_a_replaced_one_keeps_its_mode(tmp_path):
    io.save_params(tmp_path / "new", PARAMS)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o644
    (tmp_path / "old").write_bytes(b"")
    os.chmod(tmp_path / "old", 0o640)
    io.save_params(tmp_path / "old", PARAMS)
    assert (tmp_path / "old").stat().st_mode & 0o777 == 0o640


KILL_REPEATEDLY = r"""
import json, os, signal, sys
import numpy as np
from fgraph import io

path = sys.argv[1]


def write_then_die(fp, array, *args, **kwargs):
    fp.write(b"\x93NUMPY partial" * 1000)
    fp.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def strays():
    return sorted(n for n in os.listdir(os.path.dirname(path)) if n != os.path.basename(path))


seen = []
for _ in range(5):
    pid = os.fork()
    if pid == 0:  # a writer, killed mid-write
        np.lib.format.write_array = write_then_die
        io.save_params(path, {"x": np.zeros(10)})
        os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    seen.append(strays())
io.save_params(path, {"x": np.ones(2)})
seen.append(strays())
print(json.dumps(seen))
"""


@pytest.mark.skipif(not hasattr(os, "fork") or not hasattr(signal, "SIGKILL"), reason="needs fork and SIGKILL")
def test_temp_files_of_killed_writers_do_not_pile_up(tmp_path):
    path = tmp_path / "p"
    io.save_params(path, PARAMS)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_REPEATEDLY, str(path)], cwd=REPO, capture_output=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    seen = json.loads(proc.stdout)
    # Each killed writer leaves its own temporary file; the next write removes the previous one's.
    assert [len(s) for s in seen] == [1, 1, 1, 1, 1, 0], seen
    assert all(s[0].startswith(".p.") and s[0].endswith(".tmp") for s in seen[:-1])
    assert len({s[0] for s in seen[:-1]}) == 5
    assert as_array_bits(io.load_params(path)) == as_array_bits({"x": np.ones(2)})


BLOCKED_WRITER = r"""
import sys
import numpy as np
from fgraph import io

real = np.lib.format.write_array


def wait_then_write(fp, array, *args, **kwargs):
    np.lib.format.write_array = real
    print("writing", flush=True)
    sys.stdin.readline()  # until the test says go on
    return real(fp, array, *args, **kwargs)


np.lib.format.write_array = wait_then_write
io.save_params(sys.argv[1], {"x": np.arange(3.0)})
"""


def test_a_live_writers_temp_file_is_left_alone(tmp_path):
    path = tmp_path / "p"
    io.save_params(path, PARAMS)
    proc = subprocess.Popen([sys.executable, "-c", BLOCKED_WRITER, str(path)], cwd=REPO, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"writing\n", proc.stderr.read().decode()
        (live,) = [n for n in os.listdir(tmp_path) if n != "p"]
        io.save_params(path, {"y": np.ones(2)})  # another writer, while the first one writes
        assert sorted(os.listdir(tmp_path)) == sorted([live, "p"])
        _, err = proc.communicate(b"go on\n", timeout=60)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert os.listdir(tmp_path) == ["p"]
    assert as_array_bits(io.load_params(path)) == as_array_bits({"x": np.arange(3.0)})  # the last rename wins


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_saving_through_a_symbolic_link_writes_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    link, target = tmp_path / "link", tmp_path / "real" / "weights"
    link.symlink_to(os.path.join("real", "weights"))  # relative, and dangling until the first save
    io.save_params(link, PARAMS)
    assert link.is_symlink() and target.is_file()
    io.save_params(link, {"x": np.ones(2)})
    assert link.is_symlink() and as_array_bits(io.load_params(target)) == as_array_bits({"x": np.ones(2)})
    io.save_state(link, adam_state()[1])
    assert link.is_symlink() and io.load_state(target).step == adam_state()[1].step
    io.save_run_record(link, io.run_record({}, 0, {}, {}))
    assert link.is_symlink() and io.load_run_record(target)["format"] == "fgraph.run"
    assert sorted(os.listdir(tmp_path)) == ["link", "real"] and os.listdir(tmp_path / "real") == ["weights"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_saving_to_a_loop_of_links_is_refused_and_leaves_the_links(tmp_path):
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    with pytest.raises(OSError, match="loop of symbolic links"):
        io.save_params(tmp_path / "a", PARAMS)
    assert (tmp_path / "a").is_symlink() and (tmp_path / "b").is_symlink() and len(os.listdir(tmp_path)) == 2


# -------------------------------------------------------------- bad files


@pytest.mark.parametrize("load", [io.load_params, io.load_state, io.load_run_record])
def test_a_missing_file_is_file_not_found_naming_the_path(tmp_path, load):
    path = tmp_path / "nope"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        load(path)


def test_saving_into_a_missing_directory_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory"):
        io.save_params(tmp_path / "missing" / "p", PARAMS)


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.99])
def test_a_truncated_file_is_a_clear_error(tmp_path, keep):
    path = tmp_path / "p"
    io.save_params(path, PARAMS)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(FileFormatError, match=re.escape(repr(str(path))) + ".*(corrupt or truncated|not an .npz)"):
        io.load_params(path)


def test_a_flipped_byte_in_the_data_is_caught(tmp_path):
    path = tmp_path / "p"
    io.save_params(path, {"x": np.full(8, 1.0)})
    data = bytearray(path.read_bytes())
    at = data.find(np.float64(1.0).tobytes())
    data[at + 3] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="corrupt or truncated.*CRC"):
        io.load_params(path)


@SETTINGS
@given(data=st.data())
def test_any_damaged_byte_is_caught_or_harmless(data):
    """Flip one byte anywhere: the load fails with a FileFormatError, or the byte
    was zip metadata that nothing reads (the CRC-32 guards every member) and
    the params come back unchanged. Never a raw zipfile/NumPy exception."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "p")
        io.save_params(path, PARAMS)
        raw = bytearray(Path(path).read_bytes())
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        raw[at] ^= data.draw(st.integers(1, 255), label="xor")
        Path(path).write_bytes(bytes(raw))
        try:
            loaded = io.load_params(path)
        except FileFormatError:
            return
    assert as_array_bits(loaded) == as_array_bits(PARAMS)


def test_a_file_that_is_not_a_zip_is_a_clear_error(tmp_path):
    path = tmp_path / "p.npy"
    np.save(path, np.ones(3))
    with pytest.raises(FileFormatError, match="not an .npz"):
        io.load_params(path)


MARKER = []


def _unpickled(path):
    """Runs only if something unpickles the payload below."""
    MARKER.append(path)
    Path(path).write_text("unpickled!")
    return "pwned"


class Payload:
    """Unpickling this writes a marker file: the proof that something unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return _unpickled, (self.path,)


@pytest.mark.parametrize("with_manifest", [True, False])
def test_an_object_array_is_refused_and_never_unpickled(tmp_path, with_manifest):
    marker = tmp_path / "marker"
    evil = np.array([Payload(str(marker))], dtype=object)
    path = tmp_path / "evil.npz"
    members = {"a0": evil}
    if with_manifest:
        members["manifest"] = manifest_json(params=[["w", "a0"]])
    write_npz(path, **members)
    with pytest.raises(FileFormatError, match="object array .*refused.*never unpickles"):
        io.load_params(path)
    with pytest.raises(FileFormatError, match="refused"):
        io.load_state(path)
    assert not marker.exists() and not MARKER


def test_a_foreign_npz_is_a_clear_error(tmp_path):
    path = tmp_path / "foreign.npz"
    with open(path, "wb") as f:
        np.savez(f, x=np.arange(3), y=np.ones(2))
    with pytest.raises(FileFormatError, match=r"not written by fgraph.io.*arrays: x, y.*expected an 'fgraph.params'"):
        io.load_params(path)
    with pytest.raises(FileFormatError, match=r"expected an 'fgraph.state'"):
        io.load_state(path)


def test_the_homework_data_file_is_foreign(tmp_path):
    data = REPO / "data" / "hw7_regression.npz"
    if not data.exists():
        pytest.skip("no data/hw7_regression.npz")
    with pytest.raises(FileFormatError, match="not written by fgraph.io"):
        io.load_params(data)


def test_a_params_file_is_not_a_state_and_vice_versa(tmp_path):
    io.save_params(tmp_path / "p", PARAMS)
    io.save_state(tmp_path / "s", adam_state()[1])
    with pytest.raises(
        FileFormatError,
        match=r"expected an 'fgraph.state' file, found format 'fgraph.params'; load it with fgraph.io.load_params",
    ):
        io.load_state(tmp_path / "p")
    with pytest.raises(FileFormatError, match=r"expected an 'fgraph.params' file, found format 'fgraph.state'"):
        io.load_params(tmp_path / "s")


@pytest.mark.parametrize(
    "manifest, message",
    [
        (manifest_json(version=3, params=[["w", "a0"]]), "version 3 is not supported"),
        (manifest_json(fmt="other.tool", params=[]), "found format 'other.tool'"),
        (np.array("{not json"), "manifest is corrupt"),
        (np.arange(3.0), "manifest is corrupt"),
        (manifest_json(params=[["w", "a7"]]), "refers to array 'a7'"),
        (manifest_json(params=[["w", "a0"], ["w", "a0"]]), "bad params entry"),
        (manifest_json(params=[]), r"arrays \['a0'\] are not described"),
        (manifest_json(), "no list of params"),
    ],
)
def test_a_bad_manifest_is_a_clear_error(tmp_path, manifest, message):
    path = tmp_path / "p"
    write_npz(path, manifest=manifest, a0=np.ones(2))
    with pytest.raises(FileFormatError, match=message):
        io.load_params(path)


# ----------------------------------------------------------- bounded reads


def npy(shape, dtype="<f8", data=b""):
    """The bytes of an .npy member whose header declares ``shape`` and ``dtype``, followed by ``data``."""
    buf = BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buf.getvalue() + data


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    """A zip of raw members ``{name: bytes}``."""
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)


def peak_bytes_while(call):
    """(the exception ``call`` raised or None, the peak of memory it traced)."""
    tracemalloc.start()
    try:
        call()
        error = None
    except Exception as e:  # noqa: BLE001 - returned to the test
        error = e
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return error, peak


def v1_manifest():
    return {"manifest.npy": npy((), "<U100", np.array(json.dumps({"format": "fgraph.params", "version": 1,
                                                               "params": [["w", "a0"]]}), "<U100").tobytes())}


def test_a_small_file_whose_directory_declares_gigabytes_is_refused_before_reading(tmp_path):
    path = tmp_path / "bomb"
    declared = 1 << 31  # 2 GiB of float64, more than io.MAX_BYTES
    raw = npy((declared // 8,), data=bytes(4096))
    write_zip(path, {**v1_manifest(), "a0.npy": raw}, zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    entry = data.rindex(b"PK\x01\x02")  # the central directory entry of a0.npy, the last member written
    assert data[entry + 24 : entry + 28] == struct.pack("<I", len(raw))
    data[entry + 24 : entry + 28] = struct.pack("<I", len(raw) - 4096 + declared)  # the uncompressed size it claims
    path.write_bytes(bytes(data))
    error, peak = peak_bytes_while(lambda: io.load_params(path))
    assert peak < 1 << 20  # nothing of the claimed size was allocated
    assert isinstance(error, FileFormatError) and "more than max_bytes=1073741824" in str(error), error
    assert path.stat().st_size < 64 << 10 and io.MAX_BYTES == 1 << 30 < declared


def test_a_deflated_file_is_read_within_max_bytes_or_refused(tmp_path):
    path = tmp_path / "zeros"
    write_zip(path, {**v1_manifest(), "a0.npy": npy((1 << 21,), data=bytes(16 << 20))}, zipfile.ZIP_DEFLATED)
    assert path.stat().st_size < 1 << 20  # 16 MiB of zeros, deflated
    error, peak = peak_bytes_while(lambda: io.load_params(path, max_bytes=1 << 20))
    assert isinstance(error, FileFormatError) and "holds 16777" in str(error) and "max_bytes=1048576" in str(error)
    assert peak < 1 << 20
    loaded = io.load_params(path)  # within the default
    assert loaded["w"].shape == (1 << 21,) and not loaded["w"].any() and not loaded["w"].flags.writeable
    with pytest.raises(ValueError, match="max_bytes must be an int >= 0, got -1"):
        io.load_params(path, max_bytes=-1)


def test_a_member_holding_fewer_bytes_than_its_header_declares_is_refused_before_allocating(tmp_path):
    path = tmp_path / "short"
    write_zip(path, {**v1_manifest(), "a0.npy": npy((1 << 22,), data=bytes(64))})  # declares 32 MiB
    error, peak = peak_bytes_while(lambda: io.load_params(path))
    assert peak < 1 << 20
    assert isinstance(error, FileFormatError) and "header declares a <f8 array of shape (4194304,)" in str(error), error


def test_an_array_unlike_the_manifests_declaration_is_refused(tmp_path):
    io.save_params(tmp_path / "p", {"w": np.ones(3)})
    with np.load(tmp_path / "p", allow_pickle=False) as npz:
        manifest = json.loads(str(npz["manifest"][()]))
    assert manifest["arrays"] == {"a0": ["<f8", [3]]}
    for arrays, message in [
        ({"a0": ["<f8", [2]]}, r"is <f8 of shape \(3,\), the manifest declares <f8 of shape \(2,\)"),
        ({"a0": ["<i8", [3]]}, "the manifest declares <i8"),
        ({"a0": ["<f8", [1 << 28]]}, "declares arrays of 2147483648 bytes .* more than max_bytes"),
        ({}, r"does not declare the file's arrays \['a0'\]"),
        ({"a0": ["<f8", [-3]]}, "entry for array 'a0' is corrupt"),
    ]:
        write_npz(tmp_path / "q", manifest=manifest_json(version=2, params=[["w", "a0"]], arrays=arrays), a0=np.ones(3))
        with pytest.raises(FileFormatError, match=message):
            io.load_params(tmp_path / "q")


def test_duplicate_and_foreign_members_are_refused(tmp_path):
    write_zip(tmp_path / "dup", {**v1_manifest(), "a0.npy": npy((2,), data=bytes(16))})
    with zipfile.ZipFile(tmp_path / "dup", "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("a0.npy", npy((2,), data=np.ones(2).tobytes()))
    with pytest.raises(FileFormatError, match="'a0.npy' appears twice"):
        io.load_params(tmp_path / "dup")
    write_zip(tmp_path / "other", {**v1_manifest(), "a0.npy": npy((2,), data=bytes(16)), "notes.txt": b"hi"})
    with pytest.raises(FileFormatError, match="'notes.txt' is not an .npy array"):
        io.load_params(tmp_path / "other")


# ---------------------------------------------------------- bad params


@pytest.mark.parametrize(
    "params, error, message",
    [
        ({3: np.ones(2)}, TypeError, "every name must be a str, got 3"),
        ({"w": np.array([1.0, np.nan])}, ValueError, r"params\['w'\] contains NaN or inf"),
        ({"w": np.float64(np.inf)}, ValueError, r"params\['w'\] contains NaN or inf"),
        ({"w": np.array([{"a": 1}], dtype=object)}, TypeError, r"params\['w'\] must hold real numbers"),
        ({"w": np.array(["1.0"])}, TypeError, r"params\['w'\] must hold real numbers"),
        ({"w": np.array([1j])}, TypeError, r"params\['w'\] must hold real numbers"),
        ({"w": "1.0"}, TypeError, r"params\['w'\] must hold real numbers"),
        ([("w", np.ones(2))], TypeError, "must be a dict"),
    ],
)
def test_params_that_cannot_be_saved_are_refused_and_nothing_is_written(tmp_path, params, error, message):
    io.save_params(tmp_path / "p", PARAMS)
    old = (tmp_path / "p").read_bytes()
    with pytest.raises(error, match=message):
        io.save_params(tmp_path / "p", params)
    assert (tmp_path / "p").read_bytes() == old and os.listdir(tmp_path) == ["p"]


# ------------------------------------------------------------------ states


def test_state_round_trip_with_a_nested_adam_state(tmp_path):
    _, state = adam_state()
    io.save_state(tmp_path / "s", state)
    loaded = io.load_state(tmp_path / "s")
    assert isinstance(loaded, TrainState)
    assert as_array_bits(loaded.params) == as_array_bits(state.params)
    assert loaded.params["b"].shape == () and loaded.params["b"].dtype == np.float64
    assert tree_bits(loaded.opt_state) == tree_bits(state.opt_state)
    assert type(loaded.opt_state["1"]["count"]) is int and loaded.opt_state["1"]["count"] == 2
    assert tree_bits(loaded.history) == tree_bits(state.history) and type(loaded.history) is tuple
    for field in ("epoch", "step", "seed", "batch_size", "running"):
        assert bits(getattr(loaded, field)) == bits(getattr(state, field)), field


def test_a_resumed_fold_is_bit_identical_to_one_that_never_stopped(tmp_path):
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adam(1e-2))
    rng = np.random.default_rng(7)
    grads = [{"W": rng.standard_normal((3, 2)), "b": np.float64(rng.standard_normal())} for _ in range(6)]
    start = {"W": np.ones((3, 2)), "b": np.float64(0.0)}

    def fold(params, state, gs):
        for g in gs:
            params, state = opt.step(g, state, params)
        return params, state

    straight, _ = fold(start, opt.init(start), grads)
    params, opt_state = fold(start, opt.init(start), grads[:3])
    state = TrainState(params=params, opt_state=opt_state, epoch=0, step=3, seed=0, batch_size=1)
    io.save_state(tmp_path / "s", state)
    loaded = io.load_state(tmp_path / "s")  # read-only arrays: the optimiser must not mind
    resumed, _ = fold(loaded.params, loaded.opt_state, grads[3:])
    assert [bits(np.asarray(resumed[k])) for k in start] == [bits(np.asarray(straight[k])) for k in start]


leaf = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int64), np.dtype(np.bool_)]).flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3),
                              elements={"allow_nan": False, "allow_infinity": False} if dt.kind == "f" else None)
    ),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(np.float32),
    st.floats(allow_nan=False, allow_infinity=False).map(np.float64),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
trees = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.dictionaries(names, children, max_size=3),
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
    ),
    max_leaves=12,
)


@SETTINGS
@given(
    opt_state=st.dictionaries(names, trees, max_size=4),
    history=st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4),
)
def test_any_plain_data_state_round_trips(opt_state, history):
    state = TrainState(params={"w": np.ones(2)}, opt_state=opt_state, epoch=1, step=2, seed=3, batch_size=4,
                       history=tuple(history), running=0.5)
    with tempfile.TemporaryDirectory() as d:
        io.save_state(os.path.join(d, "s"), state)
        loaded = io.load_state(os.path.join(d, "s"))
    assert tree_bits(loaded.opt_state) == tree_bits(opt_state)
    assert tree_bits(loaded.history) == tree_bits(tuple(history))


class Opaque:
    """Something a state cannot hold."""


@pytest.mark.parametrize(
    "opt_state, error, message",
    [
        ({"mu": {"w": np.array([np.nan])}}, ValueError, r"state.opt_state\['mu'\]\['w'\] contains NaN"),
        ({"lr": float("inf")}, ValueError, r"state.opt_state\['lr'\] is inf"),
        ({"x": Opaque()}, TypeError, r"state.opt_state\['x'\]: cannot save a Opaque"),
        ({"s": {1, 2}}, TypeError, r"state.opt_state\['s'\]: cannot save a set"),
        ({1: np.ones(2)}, TypeError, "every dict key must be a str, got 1"),
        ({"o": np.array([None], dtype=object)}, TypeError, r"state.opt_state\['o'\] must hold real numbers"),
    ],
)
def test_a_state_that_cannot_be_saved_is_refused_naming_the_path(tmp_path, opt_state, error, message):
    state = TrainState(params={"w": np.ones(2)}, opt_state=opt_state, epoch=0, step=0, seed=0, batch_size=1)
    with pytest.raises(error, match=message):
        io.save_state(tmp_path / "s", state)
    assert os.listdir(tmp_path) == []


def test_save_state_wants_a_train_state(tmp_path):
    with pytest.raises(TypeError, match="TrainState"):
        io.save_state(tmp_path / "s", {"params": {}})
    with pytest.raises(ValueError, match=r"state.params\['w'\] contains NaN"):
        io.save_state(
            tmp_path / "s",
            TrainState(params={"w": np.array(np.nan)}, opt_state={}, epoch=0, step=0, seed=0, batch_size=1),
        )


def test_a_state_file_with_unknown_or_missing_fields_is_a_clear_error(tmp_path):
    path = tmp_path / "s"
    fields = {"params": {"dict": []}, "opt_state": {"dict": []}, "epoch": {"int": 1}, "bogus": {"int": 2}}
    write_npz(path, manifest=manifest_json(fmt="fgraph.state", fields=fields))
    with pytest.raises(
        FileFormatError, match=r"unknown fields \['bogus'\], missing fields \['batch_size', 'seed', 'step'\]"
    ):
        io.load_state(path)


# ------------------------------------------------------------- run records


def test_run_record_is_reproducible_json_without_a_timestamp():
    config = {"model": "mlp", "hidden": np.int64(10), "lrs": (0.1, np.float64(0.01)), "grid": np.array([1.0, 2.0])}
    metrics = {"test_loss": np.float64(0.123), "history": [1.0, 0.5]}
    a = io.run_record(config, 0, metrics, PARAMS)
    b = io.run_record(dict(config), 0, dict(metrics), dict(PARAMS))
    assert a == b and json.loads(json.dumps(a)) == a
    assert set(a) == {"format", "version", "config", "seed", "metrics", "params_digest", "versions"}
    assert set(a["versions"]) == {"python", "numpy", "attrs", "toolz", "fgraph"}
    assert a["config"] == {"model": "mlp", "hidden": 10, "lrs": [0.1, 0.01], "grid": [1.0, 2.0]}
    assert a["params_digest"] == io.params_digest(PARAMS)
    assert "created" not in json.dumps(a)


def test_run_record_round_trips_every_float_exactly(tmp_path):
    floats = [0.1 + 0.2, 1 / 3, 1e-300, 5e-324, 1.7976931348623157e308, -0.0, 2.0**-1074 * 3]
    record = io.run_record({"ü/β": "ok"}, 42, {"values": floats}, PARAMS)
    path = tmp_path / "run.json"
    io.save_run_record(path, record)
    assert os.listdir(tmp_path) == ["run.json"]
    loaded = io.load_run_record(path)
    assert loaded == record
    assert [bits(x) for x in loaded["metrics"]["values"]] == [bits(x) for x in floats]
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    keys = [m.group(1) for m in re.finditer(r'^  "(\w+)":', text, re.M)]
    assert keys == sorted(keys) == ["config", "format", "metrics", "params_digest", "seed", "version", "versions"]


@pytest.mark.parametrize(
    "metrics, error, message",
    [
        ({"loss": float("nan")}, ValueError, r"metrics\['loss'\] is nan"),
        ({"loss": np.array([1.0, np.inf])}, ValueError, r"metrics\['loss'\]\[1\] is inf"),
        ({1: 0.5}, TypeError, "every key must be a str"),
        ({"f": object()}, TypeError, r"metrics\['f'\]: a object cannot be written"),
    ],
)
def test_run_record_refuses_what_json_cannot_hold(metrics, error, message):
    with pytest.raises(error, match=message):
        io.run_record({}, 0, metrics, PARAMS)


def test_run_record_checks_its_seed():
    with pytest.raises(ValueError, match="seed"):
        io.run_record({}, -1, {}, PARAMS)


def test_save_run_record_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    io.save_run_record(path, io.run_record({}, 0, {"a": 1.0}, PARAMS))
    old = path.read_bytes()
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("simulated crash")))
    with pytest.raises(OSError, match="simulated crash"):
        io.save_run_record(path, io.run_record({}, 1, {"a": 2.0}, PARAMS))
    assert path.read_bytes() == old and os.listdir(tmp_path) == ["run.json"]


def test_save_run_record_wants_a_run_record(tmp_path):
    with pytest.raises(ValueError, match="run_record"):
        io.save_run_record(tmp_path / "r.json", {"loss": 1.0})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "is not valid JSON"),
        ('{"format": "fgraph.run", "x": NaN}', "is not valid JSON"),
        ('[1, 2]', "expected an 'fgraph.run' file, found format None"),
        ('{"format": "fgraph.params"}', "found format 'fgraph.params'"),
    ],
)
def test_load_run_record_errors_name_the_path(tmp_path, text, message):
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=re.escape(repr(str(path))) + ".*" + message):
        io.load_run_record(path)


def test_load_run_record_of_binary_junk(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(FileFormatError, match="not UTF-8"):
        io.load_run_record(path)


# ------------------------------------------------------------------ digest


def test_digest_ignores_representation_but_not_content():
    base = io.params_digest(PARAMS)
    assert len(base) == 64 and int(base, 16) >= 0
    same = {k: PARAMS[k] for k in reversed(list(PARAMS))}
    same["W1"] = np.asfortranarray(PARAMS["W1"])
    same["b1"] = PARAMS["b1"].astype(">f8")
    same["b2"] = np.array(0.3)  # a 0-d array, not a NumPy scalar
    assert io.params_digest(same) == base
    assert io.params_digest({**PARAMS, "b2": 0.3}) == base  # a Python float is float64
    changed = [
        {**PARAMS, "b2": np.nextafter(0.3, 1.0)},                # one ulp
        {**PARAMS, "w2": np.array([1e-300, 0.0])},               # -0.0 -> 0.0
        {**PARAMS, "W1": PARAMS["W1"].reshape(3, 2)},            # shape
        {**PARAMS, "b1": PARAMS["b1"].astype(np.float32)},       # dtype
        {**{k: v for k, v in PARAMS.items() if k != "b2"}, "B2": PARAMS["b2"]},  # name
        {**PARAMS, "extra": np.zeros(0)},                        # one more param, even empty
        {k: v for k, v in PARAMS.items() if k != "w2"},          # one fewer
    ]
    digests = [io.params_digest(p) for p in changed]
    assert base not in digests and len(set(digests)) == len(digests)


def test_digest_does_not_confuse_name_and_data_boundaries():
    a = {"a": np.array([1.0]), "b": np.array([2.0, 3.0])}
    b = {"a": np.array([1.0, 2.0]), "b": np.array([3.0])}
    assert io.params_digest(a) != io.params_digest(b)


# ------------------------------------------------------------- no pickle

FORBIDDEN = re.compile(r"allow_pickle\s*=\s*True|pickle\.load")


def forbidden_uses(roots) -> list:
    """``grep -rn "allow_pickle=True\\|pickle.load"`` over ``roots``, skipping caches."""
    hits = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for name in filenames:
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8", errors="replace") as f:
                    for lineno, line in enumerate(f, 1):
                        if FORBIDDEN.search(line):
                            hits.append(f"{path}:{lineno}: {line.strip()}")
    return hits


def test_nothing_outside_tests_can_unpickle():
    roots = [REPO / d for d in ("fgraph", "models", "scripts")]
    assert (REPO / "fgraph" / "io.py").exists()
    assert forbidden_uses(roots) == []


def test_the_pickle_scan_finds_a_planted_use(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "bad.py").write_text("import numpy as np\nx = np.load('f', allow_pickle=True)\n")
    (tmp_path / "pkg" / "worse.py").write_text("import pickle\nobj = pickle.loads(blob)\n")
    hits = forbidden_uses([tmp_path / "pkg"])
    assert len(hits) == 2 and "bad.py:2" in hits[0] + hits[1] and "worse.py:2" in hits[0] + hits[1]


# ------------------------------------------------- forged, odd and hostile files


def _rewritten(path, manifest=None, **arrays):
    """The fgraph file at ``path`` written again with its manifest text passed through
    ``manifest`` and the arrays named in ``arrays`` replaced: a forged or damaged file."""
    with np.load(path, allow_pickle=False) as z:
        members = {key: z[key] for key in z.files}
    if manifest is not None:
        members["manifest"] = np.array(manifest(str(members["manifest"][()])))
    members.update(arrays)
    write_npz(path, **members)
    return path


@pytest.mark.parametrize("edit, words", [
    (lambda m: m.replace('"running":{"float":0.7000000000000001}', '"running":{"float":NaN}'), "NaN is not valid"),
    (lambda m: m.replace('"running":{"float":0.7000000000000001}', '"running":{"float":1e400}'), "beyond float64"),
    (lambda m: m.replace('"running":{"float":0.7000000000000001}', '"running":{"float":' + "9" * 400 + "}"),
     "beyond float64"),
    (lambda m: m.replace('"epoch":{"int":3}', '"epoch":{"int":3},"epoch":{"int":4}'), "'epoch' appears twice"),
    (lambda m: m.replace('["b",{"array":"a1"}]', '["W",{"array":"a1"}]'), "repeated dict entries"),
    (lambda m: m.replace('"version":2', '"version":true'), "version True is not supported"),
    (lambda m: m.replace('["b",{"scalar":"a4"}]', '["b",{"scalar":"a3"}]').replace('["W",{"array":"a3"}]',
                                                                                  '["W",{"array":"a4"}]'),
     r"scalar 'a3' has shape \(3, 2\)"),
])
def test_a_state_file_whose_manifest_fgraph_would_not_write_is_refused(tmp_path, edit, words):
    """NaN and Infinity (which JSON lacks and Python reads), numbers beyond float64, a key twice (Python
    keeps the last silently), a version that is a bool, a scalar that is not 0-d: each a FileFormatError,
    never a value a resumed fit would train from."""
    path = tmp_path / "s.npz"
    io.save_state(path, adam_state()[1])
    _rewritten(path, manifest=edit)
    with pytest.raises(FileFormatError, match=words):
        io.load_state(path)


def test_arrays_holding_nan_or_inf_are_refused_on_loading_as_on_saving(tmp_path):
    io.save_params(tmp_path / "p.npz", {"w": np.zeros(3)})
    _rewritten(tmp_path / "p.npz", a0=np.array([0.0, np.nan, np.inf]))
    with pytest.raises(FileFormatError, match="array 'a0' holds NaN or inf"):
        io.load_params(tmp_path / "p.npz")
    io.save_state(tmp_path / "s.npz", adam_state()[1])
    _rewritten(tmp_path / "s.npz", a6=np.full((3, 2), np.inf))  # adam's second moment
    with pytest.raises(FileFormatError, match="array 'a6' holds NaN or inf"):
        io.load_state(tmp_path / "s.npz")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_saving_onto_what_is_not_a_regular_file_is_refused_and_leaves_it_as_it_was(tmp_path):
    """Replacing it would swap a FIFO or a device (as root: /dev/null) for a zip file."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="exists and is not a regular file"):
        io.save_params(fifo, {"w": np.zeros(2)})
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and os.listdir(tmp_path) == ["fifo"]


def test_paths_as_bytes_a_trailing_separator_and_names_too_long_for_the_temporary_file(tmp_path):
    io.save_params(os.fsencode(tmp_path / "b.npz"), {"w": np.ones(2)})
    assert io.load_params(tmp_path / "b.npz")["w"].tolist() == [1.0, 1.0]
    with pytest.raises(IsADirectoryError, match="names a directory"):
        io.save_params(str(tmp_path / "t.npz") + os.sep, {"w": np.ones(2)})
    long = tmp_path / ("n" * 240 + ".npz")  # fits the file system's 255 bytes; its temporary name does not
    with pytest.raises(OSError, match="name is too long for the temporary file"):
        io.save_params(long, {"w": np.ones(2)})
    assert not (tmp_path / "t.npz").exists()


def test_a_message_about_a_file_of_many_arrays_stays_short(tmp_path):
    io.save_params(tmp_path / "p.npz", {"w": np.zeros(2)})
    _rewritten(tmp_path / "p.npz", **{f"x{i}": np.zeros(1) for i in range(2000)})
    with pytest.raises(FileFormatError, match=r"\(2001 in all\)") as caught:
        io.load_params(tmp_path / "p.npz")
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("text, words", [
    ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
    ('{"format": "fgraph.run", "metrics": {"loss": 1e400}}', "beyond float64"),
    ('{"format": "fgraph.run", "metrics": {"loss": 1, "loss": 2}}', "'loss' appears twice"),
    ('{"format": "fgraph.run", "config": {"note": "a\\ud800b"}}', r"record\['config'\]\['note'\].*lone surrogate"),
])
def test_a_run_record_fgraph_would_not_write_is_refused(tmp_path, text, words):
    (tmp_path / "r.json").write_text(text)
    with pytest.raises(FileFormatError, match=words):
        io.load_run_record(tmp_path / "r.json")


def test_a_run_record_with_text_that_is_not_unicode_is_refused_naming_where(tmp_path):
    with pytest.raises(ValueError, match=r"config\['note'\].*lone surrogate"):
        io.run_record({"note": "a\ud800b"}, 0, {}, {"w": np.zeros(1)})
